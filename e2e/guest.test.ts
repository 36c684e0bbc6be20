// A real cloud guest through the agent's drivers, as the seed's "Boot VirtualMachine from Image"
// promises: the Debian image built by hack/build-guest-image.sh, a qcow2 overlay on it
// (QemuImgDriver), a NoCloud seed with the seed's CreateVirtualMachine values (NoCloudDriver),
// a bridge with the gateway and a tap inside a test namespace (IprouteNetworkDriver), QEMU started
// in that namespace (QemuDriver, TCG here), and then an SSH login as n0user with the private key
// printed in the seed docs, using Debian's ssh client from inside the namespace.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import { AgentPaths, bridgeName, tapName } from '../agent/paths';
import { NoCloudDriver } from '../agent/drivers/cloudinit';
import { IprouteNetworkDriver } from '../agent/drivers/network';
import { isOurQemu, QemuDriver } from '../agent/drivers/qemu';
import { QemuImgDriver } from '../agent/drivers/qemuimg';
import { SerialConsole } from '../agent/drivers/testing/serial';
import type { NicSpec } from '../agent/drivers/types';
import { ensureGuestImage, GUEST_IMAGE_BUILD_TIMEOUT_MS } from './guest-image';
import { NetnsLab, type ExecResult } from './netns';

const SEED_DIR = path.join(__dirname, 'seed');
const GATEWAY_CIDR = '192.168.0.254/24';
const GUEST_IP = '192.168.0.1';
/** TCG boots this guest in 1-2 minutes on an idle 2-core machine; others may be busy too. */
const SSH_READY_TIMEOUT_MS = 6 * 60_000;

interface SeedVm {
  name: string;
  uuid: string;
  request_memory_bytes: number;
  block_storage_names: string[];
  nics: { network_name: string; ipv4_address: string }[];
  login_username: string;
  ssh_authorized_keys: string[];
}
interface SeedBlockStorage { block_storage_name: string; limit_bytes: number }

function readSeed(): { vm: SeedVm; disk: SeedBlockStorage } {
  const doc = YAML.parse(fs.readFileSync(path.join(SEED_DIR, 'boot-vm-from-image.yaml'), 'utf8')) as Record<string, { args: unknown }>;
  return { vm: doc['CreateVirtualMachine'].args as SeedVm, disk: doc['GenerateBlockStorage'].args as SeedBlockStorage };
}

/** The PEM block of e2e/seed/n0user_ecdsa (its comment header stripped), in a 0600 file. */
function writeSeedKey(dir: string): string {
  const text = fs.readFileSync(path.join(SEED_DIR, 'n0user_ecdsa'), 'utf8');
  const pem = /-----BEGIN EC PRIVATE KEY-----[\s\S]+?-----END EC PRIVATE KEY-----\n/.exec(text);
  if (!pem) throw new Error('e2e/seed/n0user_ecdsa holds no EC private key');
  const file = path.join(dir, 'n0user_ecdsa');
  fs.writeFileSync(file, pem[0], { mode: 0o600 });
  return file;
}

const seed = readSeed();
const vmName = seed.vm.name;
const networkName = seed.vm.nics[0].network_name;
const user = seed.vm.login_username;

let tmp: string;
let lab: NetnsLab;
let ns: string;
let net: IprouteNetworkDriver;
let qemu: QemuDriver;
let paths: AgentPaths;
let image: string;
let keyFile: string;
let serial: SerialConsole | undefined;
let qemuPid: number | undefined;
let bootStartedAt = 0;
let bridgeMtu: number | undefined;
const nic: NicSpec = {
  tapName: tapName(vmName, 0),
  bridgeName: bridgeName(networkName),
  hardwareAddress: `52:54:00:${randomBytes(3).toString('hex').match(/../g)!.join(':')}`,
  ipv4Address: seed.vm.nics[0].ipv4_address,
  ipv4PrefixLength: 24,
  ipv4Gateway: GATEWAY_CIDR.split('/')[0],
};

/** ssh's own failures (exit 255) that mean "sshd is not answering right now", not a refusal. */
const TRANSIENT_SSH = /Connection (refused|reset|closed)|timed out|kex_exchange_identification|Broken pipe/;

/**
 * Runs a command in the guest. cloud-init's late stages restart sshd on a slow (TCG) guest, so a
 * connection-level failure is retried for up to a minute; a command's own exit code is returned.
 */
async function sshOnce(identity: string, command: string[], timeoutMs: number): Promise<ExecResult> {
  return lab.exec(ns, 'ssh', [
    '-i', identity, '-o', 'IdentitiesOnly=yes',
    '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes',
    '-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR',
    `${user}@${GUEST_IP}`, '--', ...command,
  ], { timeoutMs });
}

async function sshAs(identity: string, command: string[], timeoutMs = 60_000): Promise<ExecResult> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await sshOnce(identity, command, timeoutMs);
    if (!(r.code === 255 && TRANSIENT_SSH.test(r.stderr)) || Date.now() > deadline) return r;
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
}

const ssh = (command: string[], timeoutMs = 60_000) => sshAs(keyFile, command, timeoutMs);

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, intervalMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; serial console tail: ${serial?.output.slice(-2000) ?? '(none)'}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'n0-guest-e2e-'));
  lab = new NetnsLab();
  const t0 = Date.now();
  image = await ensureGuestImage({ onProgress: (line) => console.log(line) });
  console.log(`guest image ${image} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  keyFile = writeSeedKey(tmp);
  ns = await lab.create();
  net = new IprouteNetworkDriver({ netns: ns });
  paths = new AgentPaths(tmp);
  qemu = new QemuDriver({ paths, netns: ns });
}, GUEST_IMAGE_BUILD_TIMEOUT_MS + 60_000);

afterAll(async () => {
  serial?.close();
  try {
    if (qemu) await qemu.destroy(vmName);
  } catch (err) {
    console.error(`destroying ${vmName}: ${(err as Error).message}`);
  }
  // Whatever destroy() could not stop (it never hangs on a dead QMP socket, but be sure).
  if (qemuPid !== undefined && isOurQemu(qemuPid, paths.vmDir(vmName))) {
    try { process.kill(qemuPid, 'SIGKILL'); } catch { /* gone */ }
  }
  // The tap and bridge live in the namespace and go with it.
  if (lab) await lab.cleanupAll();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}, 60_000);

describe('the Debian cloud guest booted by the agent drivers', () => {
  it('is a compressed qcow2 under 1 GiB virtual with its partitions', async () => {
    const info = await new QemuImgDriver().info(image);
    expect(info.format).toBe('qcow2');
    expect(info.virtualSize).toBeLessThan(1024 ** 3);
    expect(info.actualSize).toBeLessThan(600 * 1024 ** 2);
    console.log(`guest image: ${(info.virtualSize / 1024 ** 2).toFixed(0)} MiB virtual, ${(info.actualSize / 1024 ** 2).toFixed(0)} MiB actual`);
  });

  it('boots from an overlay with the seed ISO on a tap of the network bridge', async () => {
    const state = await net.ensureNetwork({ name: networkName, bridgeName: nic.bridgeName, segmentId: 100, peers: [], gatewayCidr: GATEWAY_CIDR });
    bridgeMtu = state.mtu;
    await net.ensureTap(nic);

    const disk = paths.disk(seed.vm.block_storage_names[0]);
    fs.mkdirSync(path.dirname(disk), { recursive: true });
    await new QemuImgDriver().createOverlay(disk, image, seed.disk.limit_bytes);
    expect((await new QemuImgDriver().info(disk)).backingFile).toBe(image);

    const seedIso = path.join(tmp, 'seed.iso');
    await new NoCloudDriver().buildSeedIso(seedIso, {
      instanceId: seed.vm.uuid,
      hostname: vmName,
      loginUsername: user,
      sshAuthorizedKeys: seed.vm.ssh_authorized_keys,
      nics: [nic],
    });

    bootStartedAt = Date.now();
    const st = await qemu.start({
      name: vmName,
      uuid: seed.vm.uuid,
      vcpus: 1,
      memoryBytes: seed.vm.request_memory_bytes,
      disks: [disk],
      seedIso,
      nics: [nic],
    });
    qemuPid = st.pid;
    expect(st.runState).toBe('running');
    expect(await qemu.accelerator()).toMatch(/^(kvm|tcg)$/);
    serial = await SerialConsole.connect(st.serialSocket, 10_000);
  }, 120_000);

  it('answers on port 22 at the seed address, and n0user logs in with the seed key', async () => {
    expect(qemuPid).toBeDefined();
    // ssh-keyscan succeeds once sshd answers with a host key: the port is open and keys exist.
    await until('sshd on port 22', async () => {
      const r = await lab.exec(ns, 'ssh-keyscan', ['-T', '5', '-t', 'ecdsa', GUEST_IP], { timeoutMs: 15_000 });
      return r.code === 0 && /ecdsa-sha2-nistp256 /.test(r.stdout) ? true : undefined;
    }, SSH_READY_TIMEOUT_MS, 3_000);
    const portMs = Date.now() - bootStartedAt;

    const login = await until('an ssh login as n0user', async () => {
      const r = await ssh(['hostname']);
      return r.code === 0 ? r : undefined;
    }, 60_000, 3_000);
    const loginMs = Date.now() - bootStartedAt;
    expect(login.stdout.trim()).toBe(vmName);
    // Let cloud-init finish (it may restart sshd on the way) before the checks that follow.
    await until('cloud-init to finish', async () => {
      const r = await ssh(['cloud-init', 'status', '--wait'], 240_000);
      return r.code === 0 ? r : undefined;
    }, 300_000, 5_000);
    console.log(`boot → ssh port open: ${(portMs / 1000).toFixed(1)} s; boot → first login: ${(loginMs / 1000).toFixed(1)} s`);
  }, SSH_READY_TIMEOUT_MS + 420_000);

  it('carries the static address, the user, sudo and a locked root as cloud-init made them', async () => {
    const addr = await ssh(['ip', '-4', '-o', 'addr', 'show']);
    expect(addr.code).toBe(0);
    expect(addr.stdout).toMatch(new RegExp(`inet ${GUEST_IP.replace(/\./g, '\\.')}/24 `));
    // The nic matched by MAC and renamed as network-config says.
    expect(addr.stdout).toMatch(/^\d+: eth0 +inet 192\.168\.0\.1\/24/m);

    const route = await ssh(['ip', '-4', 'route', 'show', 'default']);
    expect(route.stdout).toMatch(/default via 192\.168\.0\.254 dev eth0/);

    const id = await ssh(['id', '-un']);
    expect(id.stdout.trim()).toBe(user);
    const sudo = await ssh(['sudo', '-n', 'id', '-un']);
    expect(sudo.stdout.trim()).toBe('root');
    // cloud-init put the meta-data hostname into /etc/hosts (manage_etc_hosts), so sudo resolves it.
    expect(sudo.stderr).not.toMatch(/unable to resolve host/);
    const rootPw = await ssh(['sudo', '-n', 'passwd', '--status', 'root']);
    expect(rootPw.stdout).toMatch(/^root L /);

    // cloud-init ran every stage without an error; the guest sees it booted from the seed.
    const status = await ssh(['cloud-init', 'status', '--wait', '--long'], 180_000);
    expect(status.stdout).toMatch(/status: done/);
    expect(status.stdout).toMatch(/DataSourceNoCloud/);
    expect(status.code).toBe(0);

    // growpart + resizefs took the overlay's 10 GiB (the image itself is < 1 GiB).
    const df = await ssh(['df', '-B1', '--output=size', '/']);
    const rootBytes = Number(df.stdout.trim().split('\n').pop());
    expect(rootBytes).toBeGreaterThan(8 * 1024 ** 3);

    // The gateway on the bridge reaches the guest and the guest reaches it.
    const ping = await ssh(['ping', '-c', '1', '-W', '5', GATEWAY_CIDR.split('/')[0]]);
    expect(ping.code).toBe(0);
    console.log(`bridge MTU ${bridgeMtu ?? '?'} (VXLAN port of the driver), guest eth0 ${/mtu (\d+)/.exec((await ssh(['ip', 'link', 'show', 'eth0'])).stdout)?.[1] ?? '?'}`);
  }, 300_000);

  it('a wrong key is refused (no password fallback)', async () => {
    const other = path.join(tmp, 'other_ecdsa');
    const gen = await lab.exec(ns, 'ssh-keygen', ['-q', '-t', 'ecdsa', '-N', '', '-f', other], { timeoutMs: 30_000 });
    expect(gen.code).toBe(0);
    const r = await sshAs(other, ['true']);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Permission denied \(publickey\)/);
  }, 120_000);
});
