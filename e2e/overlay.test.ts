// Two hosts joined by a real underlay link: VMs on one Network reach each other across hosts over
// VXLAN (also with packets near the overlay's 1450-byte MTU), a VM on another Network with the
// same addresses does not; then the power actions of a running VM, watched on its console.
import './quiet';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestCloud } from './cloud';
import { SerialConsole } from './console';
import { serveImages, timing, type ImageServer } from './images';
import { buildTestBootDisk, CLOUDINIT_DONE_MARKER } from '../agent/drivers/testing/bootdisk';

jest.setTimeout(900_000);

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const PIN = 'n0core/provisioning/virtual_machine/request_node_name';
const BS_PIN = 'n0core/provisioning/block_storage/request_node_name';
const SCENARIO = 'overlay';

let cloud: TestCloud;
let images: ImageServer;
const consoles: SerialConsole[] = [];
const call = (service: string, method: string, req: unknown) => cloud.client.call<any>(service, method, req);

beforeAll(async () => {
  const disk = await buildTestBootDisk();
  images = await serveImages([disk]);
  cloud = await TestCloud.start({ store: 'embedded', nodes: ['host-a', 'host-b'] });
}, 300_000);

afterAll(async () => {
  for (const c of consoles) c.close();
  await cloud?.stop();
  await images?.close();
});

async function openConsole(vm: string): Promise<SerialConsole> {
  const info = await call('VirtualMachineService', 'OpenConsole', { name: vm });
  const c = await SerialConsole.open(info.console_url, undefined, fs.readFileSync(cloud.caFile));
  consoles.push(c);
  return c;
}

/** Disk on the host, then the VM pinned there; returns its console once the guest's shell answers. */
async function bootVm(name: string, host: string, network: string, ip: string): Promise<SerialConsole> {
  const started = Date.now();
  const bs = await call('BlockStorageService', 'FetchBlockStorage', {
    name: `${name}-disk`, annotations: { [BS_PIN]: host }, request_bytes: 64 * MiB, limit_bytes: GiB, source_url: images.url(path.basename(await buildTestBootDisk())),
  });
  expect(bs.node_name).toBe(host);
  const createStarted = Date.now();
  const vm = await call('VirtualMachineService', 'CreateVirtualMachine', {
    name, annotations: { [PIN]: host },
    request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 256 * MiB, limit_memory_bytes: 256 * MiB,
    block_storage_names: [`${name}-disk`], nics: [{ network_name: network, ipv4_address: ip }],
  });
  const running = Date.now();
  timing(SCENARIO, `${name} create→Running`, running - createStarted);
  expect(vm.state).toBe('RUNNING');
  expect(vm.compute_node_name).toBe(host);
  expect(vm.nics[0].ipv4_address).toBe(ip);
  const c = await openConsole(name);
  await c.waitShell(600_000);
  timing(SCENARIO, `${name} boot→ready (shell after cloud-init)`, Date.now() - running);
  timing(SCENARIO, `${name} fetch+create→ready`, Date.now() - started);
  return c;
}

async function pingUntil(c: SerialConsole, args: string, attempts: number): Promise<{ code: number; output: string }> {
  let last = { code: -1, output: '' };
  for (let i = 0; i < attempts; i++) {
    last = await c.run(`ping ${args}`, 60_000);
    if (last.code === 0) return last;
  }
  return last;
}

test('two VMs on one Network on different hosts talk over VXLAN; another Network is isolated', async () => {
  const netA = await call('NetworkService', 'ApplyNetwork', { name: 'overlay-one', ipv4_cidr: '192.168.10.0/24' });
  // The same addresses in another segment: only the segment keeps them apart.
  const netB = await call('NetworkService', 'ApplyNetwork', { name: 'overlay-two', ipv4_cidr: '192.168.10.0/24' });
  expect(netA.state).toBe('AVAILABLE');
  expect(netB.segment_id).not.toBe(netA.segment_id);

  // Boots overlap to save wall time (TCG boots are slow); each still reports its own timings.
  const [a, b, other] = await Promise.all([
    bootVm('vm-a', 'host-a', 'overlay-one', '192.168.10.1'),
    bootVm('vm-b', 'host-b', 'overlay-one', '192.168.10.2'),
    bootVm('vm-other', 'host-a', 'overlay-two', '192.168.10.3'),
  ]);

  // The overlay really uses the underlay: each host's VXLAN device sends to the other's Node address.
  const hostA = cloud.host('host-a');
  const hostB = cloud.host('host-b');
  const netOnA = (await cloud.observe('host-a')).networks.find((n) => n.name === 'overlay-one')!;
  expect(netOnA.peers).toEqual([hostB.address]);
  expect((await cloud.observe('host-b')).networks.find((n) => n.name === 'overlay-one')!.peers).toEqual([hostA.address]);
  expect(hostA.address).toMatch(/^10\.250\.0\./);
  // Guests got the overlay's MTU through cloud-init.
  expect(netOnA.mtu).toBe(1450);
  expect((await a.run('cat /sys/class/net/eth0/mtu')).output.trim()).toBe('1450');

  const pingStarted = Date.now();
  const ping = await pingUntil(a, '-c 1 -W 5 192.168.10.2', 5);
  expect(ping.code).toBe(0);
  expect(ping.output).toMatch(/bytes from 192\.168\.10\.2/);
  timing(SCENARIO, 'first ping A→B across hosts', Date.now() - pingStarted);
  const large = await pingUntil(a, '-c 1 -s 1400 -W 5 192.168.10.2', 3);
  expect(large.code).toBe(0);
  expect(large.output).toMatch(/1408 bytes from 192\.168\.10\.2/);
  const back = await pingUntil(b, '-c 1 -W 5 192.168.10.1', 3);
  expect(back.code).toBe(0);
  // B serves its hostname over HTTP: TCP across the overlay, too.
  // (busybox nc: the static busybox's wget crashes in this guest, which has no NSS files.)
  const http = await a.run("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 192.168.10.2 80", 60_000);
  expect(http.output).toMatch(/HTTP\/1\.[01] 200/);
  expect(http.output).toContain('vm-b');

  // Another segment reaches neither the VM on its own host nor the one across the underlay.
  for (const target of ['192.168.10.1', '192.168.10.2']) {
    const isolated = await other.run(`ping -c 2 -W 2 ${target}`, 60_000);
    expect(isolated.code).not.toBe(0);
    expect(isolated.output).not.toMatch(/bytes from/);
  }

  // Power actions of a running VM, with the console showing the guest come back each time.
  const pid = cloud.qemuPids('host-b', 'vm-b');
  expect(pid).toHaveLength(1);
  for (const hard of [false, true]) {
    const from = b.mark;
    const started = Date.now();
    const r = await call('VirtualMachineService', 'RebootVirtualMachine', { name: 'vm-b', hard });
    expect(r.state).toBe('RUNNING');
    await b.waitFor(new RegExp(CLOUDINIT_DONE_MARKER), 600_000, from);
    timing(SCENARIO, `${hard ? 'hard' : 'soft'} reboot→ready`, Date.now() - started);
    expect(cloud.qemuPids('host-b', 'vm-b')).toEqual(pid);
  }
  const shutdownStarted = Date.now();
  expect((await call('VirtualMachineService', 'ShutdownVirtualMachine', { name: 'vm-b' })).state).toBe('SHUTDOWN');
  timing(SCENARIO, 'ACPI shutdown→SHUTDOWN', Date.now() - shutdownStarted);
  expect(cloud.qemuPids('host-b', 'vm-b')).toHaveLength(0);
  const down = await a.run('ping -c 1 -W 2 192.168.10.2', 30_000);
  expect(down.code).not.toBe(0);
  const bootStarted = Date.now();
  expect((await call('VirtualMachineService', 'BootVirtualMachine', { name: 'vm-b' })).state).toBe('RUNNING');
  expect(cloud.qemuPids('host-b', 'vm-b')).toHaveLength(1);
  const b2 = await openConsole('vm-b');
  await b2.waitShell(600_000);
  timing(SCENARIO, 'boot after shutdown→ready', Date.now() - bootStarted);
  expect((await pingUntil(a, '-c 1 -W 5 192.168.10.2', 5)).code).toBe(0);

  // Tear down; nothing is left on either host.
  for (const c of consoles.splice(0)) c.close();
  for (const vm of ['vm-a', 'vm-b', 'vm-other']) await call('VirtualMachineService', 'DeleteVirtualMachine', { name: vm });
  for (const vm of ['vm-a', 'vm-b', 'vm-other']) await call('BlockStorageService', 'DeleteBlockStorage', { name: `${vm}-disk` });
  for (const n of ['overlay-one', 'overlay-two']) await call('NetworkService', 'DeleteNetwork', { name: n });
  for (const host of ['host-a', 'host-b']) {
    const after = await cloud.observe(host);
    expect(after.vms).toEqual([]);
    expect(after.blockStorages.filter((s) => s.present)).toEqual([]);
    expect(after.networks.filter((n) => n.present)).toEqual([]);
  }
});
