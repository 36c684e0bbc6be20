// The test boot disk end to end: built from Debian packages, used as the backing file of a qcow2
// overlay (as a BlockStorage made from an image would be), booted by SeaBIOS under QemuDriver with
// a real NoCloud seed ISO and one NIC on a tap in a test network namespace. The guest must read the
// seed, configure its address, answer ping and HTTP from the namespace, keep a shell on the serial
// console and power off on the ACPI button.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NetnsLab } from '../../../e2e/netns';
import { run } from '../../exec';
import { AgentPaths, bridgeName, tapName } from '../../paths';
import { NoCloudDriver, renderSeedFiles } from '../cloudinit';
import { IprouteNetworkDriver } from '../network';
import { QemuDriver } from '../qemu';
import { QemuImgDriver } from '../qemuimg';
import type { NicSpec, VmLaunchSpec } from '../types';
import { buildTestBootDisk, CLOUDINIT_DONE_MARKER, NET_CONFIGURED_MARKER, NETWORK_CONFIG_AWK } from './bootdisk';
import { GUEST_READY_MARKER } from './guest';
import { SerialConsole } from './serial';

jest.setTimeout(300_000);

const MiB = 1024 * 1024;
const VM = 'bootdisk-vm';
const NET = 'bootdisk-net';
const GUEST_IP = '192.168.99.10';
const MAC = '52:54:00:99:00:10';

/** `node -e HTTP_GET <ip>`: prints the body of http://<ip>/, exits 0 only on 200. */
const HTTP_GET = `const req = require('node:http').get({ host: process.argv[1], port: 80, path: '/', timeout: 5000 }, (res) => {
  let body = ''; res.setEncoding('utf8'); res.on('data', (d) => { body += d; });
  res.on('end', () => { process.stdout.write(body); process.exit(res.statusCode === 200 ? 0 : 2); });
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (err) => { process.stderr.write(err.message); process.exit(1); });`;

const lab = new NetnsLab();
const consoles: SerialConsole[] = [];
const measured: Record<string, number | string> = {};
let tmp = '';
let ns = '';
let qemu: QemuDriver | undefined;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'n0-bootdisk-'));
  ns = await lab.create();
});

afterAll(async () => {
  for (const c of consoles) c.close();
  try {
    await qemu?.destroy(VM);
  } finally {
    await lab.cleanupAll();
    fs.rmSync(tmp, { recursive: true, force: true });
    // eslint-disable-next-line no-console
    console.log(`boot disk measurements: ${JSON.stringify(measured)}`);
  }
  const { stdout } = await run('ip', ['netns', 'list']);
  expect(stdout).not.toContain(ns);
});

async function awk(program: string, input: string): Promise<string[]> {
  const prog = path.join(tmp, 'prog.awk');
  const file = path.join(tmp, 'input.yaml');
  fs.writeFileSync(prog, program);
  fs.writeFileSync(file, input);
  const { stdout } = await run('busybox', ['awk', '-f', prog, file]);
  return stdout.trim().split('\n').filter(Boolean);
}

describe('network-config parser (busybox awk, as the guest runs it)', () => {
  it('reads what our renderer writes: MAC, set-name, addresses, default route; DHCP nics without addresses', async () => {
    const files = renderSeedFiles({
      instanceId: 'i-1', hostname: 'h', sshAuthorizedKeys: [], nics: [
        { tapName: 'n0a', bridgeName: 'n0b', hardwareAddress: '52:54:00:AA:00:01', ipv4Address: '10.1.2.3', ipv4PrefixLength: 16, ipv4Gateway: '10.1.0.1', ipv6Address: 'fd00::3', ipv6PrefixLength: 64 },
        { tapName: 'n0c', bridgeName: 'n0b', hardwareAddress: '52:54:00:aa:00:02' },
        { tapName: 'n0d', bridgeName: 'n0b', hardwareAddress: '52:54:00:aa:00:03', ipv4Address: '172.16.0.9', ipv4PrefixLength: 24 },
      ],
    });
    expect(await awk(NETWORK_CONFIG_AWK, files['network-config'])).toEqual([
      'eth0 52:54:00:aa:00:01 eth0 10.1.2.3/16,fd00::3/64 10.1.0.1 -',
      'eth1 52:54:00:aa:00:02 eth1 - - -',
      'eth2 52:54:00:aa:00:03 eth2 172.16.0.9/24 - -',
    ]);
  });

  it('also reads a network: wrapper, inline lists and maps, gateway4, mtu, comments, and ignores non-default routes', async () => {
    const text = [
      'network:',
      '  version: 2',
      '  ethernets:',
      '    ens3:',
      "      match: {macaddress: 'AA:BB:CC:DD:EE:FF'}",
      '      mtu: 1400',
      '      addresses: [10.0.0.5/8, "10.1.0.5/16"]',
      '      gateway4: 10.0.0.1   # old style',
      '      routes:',
      '        - via: 10.9.9.9',
      '          to: 10.9.0.0/16',
      '    byname:',
      '      addresses:',
      '        - 192.0.2.1/24',
      '',
    ].join('\n');
    expect(await awk(NETWORK_CONFIG_AWK, text)).toEqual([
      'ens3 aa:bb:cc:dd:ee:ff - 10.0.0.5/8,10.1.0.5/16 10.0.0.1 1400',
      'byname - - 192.0.2.1/24 - -',
    ]);
  });
});

describe('buildTestBootDisk', () => {
  it('builds a 64 MiB qcow2 with syslinux, kernel, initramfs and config in seconds, and caches it', async () => {
    const cacheDir = path.join(tmp, 'cache');
    let t = Date.now();
    const disk = await buildTestBootDisk({ cacheDir });
    measured.diskBuildMs = Date.now() - t;
    expect(disk.startsWith(`${cacheDir}/`)).toBe(true);
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', disk])).stdout) as { format: string; 'virtual-size': number };
    expect(info.format).toBe('qcow2');
    expect(info['virtual-size']).toBe(64 * MiB);

    // What SeaBIOS will read: a FAT boot sector at LBA 0, syslinux's files and our config.
    const raw = path.join(tmp, 'check.raw');
    await run('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'raw', disk, raw]);
    const sector = Buffer.alloc(512);
    const fd = fs.openSync(raw, 'r');
    try { fs.readSync(fd, sector, 0, 512, 0); } finally { fs.closeSync(fd); }
    expect(sector.readUInt16LE(510)).toBe(0xaa55);
    expect(sector.toString('latin1', 43, 54)).toBe('N0BOOT     ');
    const env = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
    const listing = (await run('mdir', ['-i', raw, '-a', '-b', '::/'], { env })).stdout;
    for (const f of ['ldlinux.sys', 'ldlinux.c32', 'vmlinuz', 'initrd.img', 'syslinux.cfg']) expect(listing).toContain(`::/${f}`);
    const cfg = (await run('mtype', ['-i', raw, '::/syslinux.cfg'], { env })).stdout;
    expect(cfg.split('\n')[0]).toBe('SERIAL 0 115200');
    expect(cfg).toMatch(/APPEND console=ttyS0/);
    fs.rmSync(raw);

    t = Date.now();
    expect(await buildTestBootDisk({ cacheDir })).toBe(disk);
    measured.cachedLookupMs = Date.now() - t;
    expect(measured.cachedLookupMs).toBeLessThan(1_000);
  });
});

describe('a VM booting from a BlockStorage overlay of the boot disk', () => {
  it('boots by BIOS, applies the NoCloud seed, answers ping and HTTP, keeps a shell and powers off on ACPI', async () => {
    const base = await buildTestBootDisk();
    const overlay = path.join(tmp, 'vm-disk.qcow2');
    await new QemuImgDriver().createOverlay(overlay, base, 128 * MiB);

    const nic: NicSpec = {
      tapName: tapName(VM, 0), bridgeName: bridgeName(NET), hardwareAddress: MAC,
      ipv4Address: GUEST_IP, ipv4PrefixLength: 24, ipv4Gateway: '192.168.99.1',
    };
    const seed = path.join(tmp, 'seed.iso');
    await new NoCloudDriver().buildSeedIso(seed, { instanceId: randomUUID(), hostname: VM, sshAuthorizedKeys: [], nics: [nic] });

    const network = new IprouteNetworkDriver({ netns: ns });
    await network.ensureNetwork({ name: NET, bridgeName: nic.bridgeName, segmentId: 4099, peers: [], gatewayCidr: '192.168.99.1/24' });
    await network.ensureTap(nic);

    const paths = new AgentPaths(path.join(tmp, 'agent'));
    qemu = new QemuDriver({ paths, netns: ns });
    const spec: VmLaunchSpec = { name: VM, uuid: randomUUID(), vcpus: 1, memoryBytes: 256 * MiB, disks: [overlay], seedIso: seed, nics: [nic] };
    const started = Date.now();
    const state = await qemu.start(spec);
    // The probed accelerator boots the guest, whatever kind of host this is.
    expect(state.accelerator).toBe(await qemu.accelerator());
    // Firmware boot from the disk: QEMU got no kernel of its own.
    const args = (JSON.parse(fs.readFileSync(path.join(paths.vmDir(VM), 'spec.json'), 'utf8')) as { args: string[] }).args;
    expect(args).not.toContain('-kernel');
    expect(args.join(' ')).toContain(`file=${overlay},if=none`);
    const serial = await SerialConsole.connect(state.serialSocket, 10_000);
    consoles.push(serial);

    // About 12-25 s on an idle 2-core machine under TCG; generous for a machine shared with other suites.
    await serial.waitFor(GUEST_READY_MARKER, 150_000);
    measured.biosBootToReadyMs = Date.now() - started;
    await serial.waitFor(`${NET_CONFIGURED_MARKER} ${GUEST_IP}`, 30_000);
    const doneAt = await serial.waitFor(CLOUDINIT_DONE_MARKER, 30_000);
    measured.bootToCloudInitDoneMs = Date.now() - started;
    expect(serial.output).not.toMatch(/n0boot: (no NoCloud seed|cannot|no interface)/);

    // Reachable from the namespace: ICMP, then TCP with the hostname the guest took from meta-data.
    let ping = await lab.exec(ns, 'busybox', ['ping', '-c', '1', '-W', '2', GUEST_IP], { timeoutMs: 8_000 });
    for (let i = 0; i < 2 && ping.code !== 0; i++) ping = await lab.exec(ns, 'busybox', ['ping', '-c', '1', '-W', '2', GUEST_IP], { timeoutMs: 8_000 });
    expect(ping.code).toBe(0);
    expect(ping.stdout).toMatch(/1 packets received/);
    // busybox-static's wget crashes on the host (static glibc), so Node fetches the page in the namespace.
    const page = await lab.exec(ns, process.execPath, ['-e', HTTP_GET, GUEST_IP], { timeoutMs: 15_000 });
    expect(page).toMatchObject({ code: 0, stderr: '' });
    expect(page.stdout.trim()).toBe(VM);

    // The serial shell answers; the arithmetic shows it ran the command rather than echoing it.
    // ash asks the terminal for the cursor position when it starts and may swallow input typed
    // before its prompt, so wait for the prompt and type again if the first line got lost.
    await serial.waitFor('# ', 15_000, doneAt);
    const command = 'echo n0-$((6*7)) $(hostname) $(ip -4 addr show dev eth0 | grep -c 192.168.99.10/24)\n';
    const mark = serial.mark;
    serial.write(command);
    await serial.waitFor(`n0-42 ${VM} 1`, 8_000, mark).catch(() => {
      serial.write(command);
      return serial.waitFor(`n0-42 ${VM} 1`, 8_000, mark);
    });

    // ACPI power button: acpid powers the guest off, QEMU exits without the quit fallback.
    const t = Date.now();
    await qemu.shutdown(VM, { hard: false, timeoutMs: 45_000 });
    measured.acpiShutdownMs = Date.now() - t;
    expect(measured.acpiShutdownMs).toBeLessThan(45_000);
    // QEMU may be gone before the console's last bytes are read here, so wait for them.
    await serial.waitFor('n0boot: power button, powering off', 5_000, doneAt);
    // The kernel's own last word: the guest powered itself off (a QMP quit would not print it).
    await serial.waitFor('reboot: Power down', 5_000, doneAt);
    expect((await qemu.state(VM))?.runState).toBe('shutdown');
  });
});
