// The node agent end to end on this host, through its gRPC client with mTLS: runAgent with the
// real drivers (qemu-img, http fetch, NoCloud ISO, iproute2 in a test network namespace, QEMU
// launched into that namespace), a loopback HTTP image server, the busybox test guest.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { FailedPreconditionError, InvalidArgumentError, UnavailableError, isN0Error } from '../api/errors';
import { createCa, issueClientCert, issueServerCert, type PemPair } from '../api/pki';
import { openStore, type Store } from '../api/store';
import { NetnsLab } from '../e2e/netns';
import type { ConsoleStream, EnsureVmRequest } from './api';
import { AgentClient } from './client';
import { isOurQemu } from './drivers/qemu';
import { buildTestGuest, GUEST_READY_MARKER, type TestGuest } from './drivers/testing/guest';
import { run } from './exec';
import { runAgent, type RunningAgent } from './main';
import { StoreNodeRegistrar } from './registration';

jest.setTimeout(300_000);

const MiB = 1024 * 1024;
const BOOT_TIMEOUT = 120_000;

let tmp: string;
let dataDir: string;
let lab: NetnsLab;
let ns: string;
let ca: PemPair;
let serverPair: PemPair;
let clientPair: PemPair;
let guest: TestGuest;
let store: Store;
let httpServer: http.Server;
let httpPort: number;
let imageRequests = 0;
const agents: { running: RunningAgent; stop: AbortController }[] = [];
const clients: AgentClient[] = [];
const consoles: ConsoleStream[] = [];
const pids = new Set<number>();

async function startAgent(): Promise<{ running: RunningAgent; client: AgentClient }> {
  const stop = new AbortController();
  const running = await runAgent({
    listen: '127.0.0.1:0',
    dataDir,
    nodeName: 'node1',
    address: '127.0.0.1',
    tls: { ca: ca.certPem, cert: serverPair.certPem, key: serverPair.keyPem },
    registrar: new StoreNodeRegistrar(store),
    heartbeatIntervalMs: 200,
    netns: ns,
    signal: stop.signal,
  });
  agents.push({ running, stop });
  const client = new AgentClient({ endpoint: running.endpoint, tls: { ca: ca.certPem, cert: clientPair.certPem, key: clientPair.keyPem }, deadlineMs: 30_000 });
  clients.push(client);
  return { running, client };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Collects a console's output; waitFor resolves when text appears after `from`. */
function collect(stream: ConsoleStream) {
  let text = '';
  stream.onData((c) => { text += c.toString('utf8'); });
  return {
    get text() { return text; },
    waitFor: (needle: string | RegExp, timeoutMs: number, from = 0) =>
      until(`${String(needle)} on the serial console (last output: ${JSON.stringify(text.slice(-300))})`, async () => {
        const tail = text.slice(from);
        const hit = typeof needle === 'string' ? tail.includes(needle) : needle.test(tail);
        return hit ? true : undefined;
      }, timeoutMs, 50),
  };
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'n0agent-'));
  dataDir = path.join(tmp, 'data');
  lab = new NetnsLab();
  ns = await lab.create();
  ca = createCa();
  serverPair = issueServerCert(ca, { commonName: 'node1', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  clientPair = issueClientCert(ca, { commonName: 'controller' });
  guest = await buildTestGuest();
  store = await openStore({ backend: 'embedded', dataDir: path.join(tmp, 'db') });

  // The image the agent fetches: a small qcow2 made by qemu-img, served slowly enough that a
  // second ensure arrives while the first download still runs.
  const image = path.join(tmp, 'base.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', image, String(64 * MiB)]);
  const body = fs.readFileSync(image);
  httpServer = http.createServer((req, res) => {
    if (req.url !== '/base.qcow2') {
      res.writeHead(404).end('no such image');
      return;
    }
    imageRequests++;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    const half = Math.floor(body.length / 2);
    res.write(body.subarray(0, half));
    setTimeout(() => res.end(body.subarray(half)), 2500);
  });
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
  httpPort = (httpServer.address() as { port: number }).port;
});

afterAll(async () => {
  for (const c of consoles) c.close();
  for (const c of clients) c.close();
  for (const { running, stop } of agents) {
    stop.abort();
    await running.done;
  }
  // Kill any QEMU this test started that a failed assertion left behind.
  for (const pid of pids) {
    if (isOurQemu(pid, path.join(dataDir, 'vms', 'vm1'))) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
  await new Promise((r) => httpServer?.close(r));
  await store?.close();
  await lab?.cleanupAll();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('the agent lifecycle through the gRPC client', async () => {
  let { running, client } = await startAgent();
  // What the boot probe chose, whatever this host is: tcg without /dev/kvm, kvm only if it booted.
  expect(running.accelerator).toBe(running.probe.accelerator);
  if (!fs.existsSync('/dev/kvm')) expect(running.probe).toMatchObject({ accelerator: 'tcg', kvm: 'absent' });
  console.log(`agent: ${running.probe.reason}`);

  // Registration: the Node carries the advertised endpoint, heartbeats move, and says why this accelerator.
  const node = await store.get('Node', 'node1');
  expect(node.status).toMatchObject({ accelerator: running.accelerator, accelerator_reason: running.probe.reason, cpu_model: running.probe.cpuModel });
  expect(node.status?.conditions?.find((c) => c.type === 'KvmUsable')).toMatchObject({ status: running.probe.kvm === 'works' ? 'True' : 'False', reason: running.probe.conditionReason });
  expect(node.spec.agent_endpoint).toBe(running.advertisedEndpoint);
  expect(node.status?.state).toBe('Ready');
  const hb0 = node.status!.last_heartbeat_time!;
  await until('a heartbeat', async () => ((await store.get('NodeLease', 'node1').catch(() => undefined))?.spec.renew_time! > hb0 ? true : undefined), 5_000);

  // mTLS: no certificate, or one from another CA, is refused; the valid client gets in.
  const foreignCa = createCa({ commonName: 'foreign' });
  const foreign = issueClientCert(foreignCa, { commonName: 'mallory' });
  for (const tls of [{ ca: ca.certPem }, { ca: ca.certPem, cert: foreign.certPem, key: foreign.keyPem }]) {
    const bad = new AgentClient({ endpoint: running.endpoint, tls, deadlineMs: 3_000 });
    clients.push(bad);
    const err = await bad.observe().catch((e) => e);
    expect(err instanceof UnavailableError || isN0Error(err, 'DeadlineExceeded')).toBe(true);
  }

  // Validation happens before anything is touched.
  await expect(client.ensureBlockStorage({ name: '../escape', limitBytes: MiB })).rejects.toMatchObject({ field: 'name' });
  await expect(client.ensureBlockStorage({ name: 'x', limitBytes: MiB, copyFrom: 'a', backingFrom: 'b' })).rejects.toBeInstanceOf(InvalidArgumentError);
  expect(fs.readdirSync(path.join(dataDir, 'disks'))).toEqual([]);

  // Fetch: runs in the background, a second ensure during the download does not start another.
  // An ensure holds its answer up to a second for the work to end (the server stalls 2.5 s).
  const url = `http://127.0.0.1:${httpPort}/base.qcow2`;
  const asked = Date.now();
  const first = await client.ensureBlockStorage({ name: 'base', limitBytes: 64 * MiB, sourceUrl: url });
  expect(Date.now() - asked).toBeGreaterThanOrEqual(900);
  expect(first.present).toBe(false);
  expect(first.inProgress).toBeDefined();
  const second = await client.ensureBlockStorage({ name: 'base', limitBytes: 64 * MiB, sourceUrl: url });
  expect(second.inProgress).toBeDefined();
  // The call open when the download ends answers then, not at the end of its second.
  const base = await until('the fetch', async () => {
    const o = await client.ensureBlockStorage({ name: 'base', limitBytes: 64 * MiB, sourceUrl: url });
    return o.present ? o : undefined;
  }, 30_000);
  expect(Date.now() - asked).toBeLessThan(4000);
  expect(imageRequests).toBe(1);
  expect(base.info).toMatchObject({ format: 'qcow2', virtualSize: 64 * MiB, path: path.join(dataDir, 'disks', 'base.qcow2') });

  // A failed fetch is reported, then retried by the next ensure.
  await client.ensureBlockStorage({ name: 'gone', limitBytes: MiB, sourceUrl: `http://127.0.0.1:${httpPort}/missing.qcow2` });
  const failed = await until('the 404', async () => {
    const o = await client.ensureBlockStorage({ name: 'gone', limitBytes: MiB, sourceUrl: `http://127.0.0.1:${httpPort}/missing.qcow2` });
    return o.error ? o : undefined;
  }, 20_000);
  expect(failed.error).toMatch(/404/);
  expect(fs.existsSync(path.join(dataDir, 'disks', 'gone.qcow2'))).toBe(false);
  await client.deleteBlockStorage('gone');

  // Overlay (constant time) and full copy (background).
  const root = await client.ensureBlockStorage({ name: 'root', limitBytes: 128 * MiB, backingFrom: 'base' });
  expect(root.info).toMatchObject({ virtualSize: 128 * MiB, backingFile: path.join(dataDir, 'disks', 'base.qcow2') });
  await client.ensureBlockStorage({ name: 'copy1', limitBytes: 64 * MiB, copyFrom: 'base' });
  const copy = await until('the copy', async () => {
    const o = await client.ensureBlockStorage({ name: 'copy1', limitBytes: 64 * MiB, copyFrom: 'base' });
    return o.present ? o : undefined;
  }, 30_000);
  expect(copy.info?.backingFile).toBeUndefined();
  expect((await client.resizeBlockStorage('copy1', 96 * MiB)).info?.virtualSize).toBe(96 * MiB);

  // ReadBlockStorage (DownloadBlockStorage's source): the file byte for byte, in order; a name
  // that would leave the disks dir or a disk that is not there is refused before any byte.
  const read = await client.readBlockStorage('copy1', new AbortController().signal);
  const parts: Buffer[] = [];
  for await (const chunk of read.chunks) parts.push(chunk);
  const onDisk = fs.readFileSync(path.join(dataDir, 'disks', 'copy1.qcow2'));
  expect(read.size).toBe(onDisk.length);
  expect(Buffer.concat(parts).equals(onDisk)).toBe(true);
  await expect(client.readBlockStorage('../agent', new AbortController().signal)).rejects.toMatchObject({ code: 'InvalidArgument', field: 'name' });
  await expect(client.readBlockStorage('nope', new AbortController().signal)).rejects.toMatchObject({ code: 'NotFound' });

  // Network in the test namespace, with a gateway address the host side can ping from.
  const network = await client.ensureNetwork({ name: 'net1', segmentId: 4242, peers: [], gatewayCidr: '192.168.77.1/24' });
  expect(network.present).toBe(true);

  // A VM on a missing disk is refused before taps or ISO exist.
  const vmReq: EnsureVmRequest = {
    name: 'vm1',
    uuid: randomUUID(),
    vcpus: 1,
    memoryBytes: 256 * MiB,
    blockStorageNames: ['root'],
    nics: [{ networkName: 'net1', hardwareAddress: '52:54:00:77:00:0a', ipv4Address: '192.168.77.10', ipv4PrefixLength: 24, ipv4Gateway: '192.168.77.1' }],
    loginUsername: 'n0user',
    sshAuthorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly test@n0stack'],
    runState: 'RUNNING',
    kernel: guest.kernel,
    initrd: guest.initrd,
    kernelArgs: `${guest.cmdline} n0ip=192.168.77.10/24 n0gw=192.168.77.1 n0hostname=vm1`,
  };
  const missing = await client.ensureVm({ ...vmReq, blockStorageNames: ['nope'] }).catch((e) => e);
  expect(missing).toBeInstanceOf(FailedPreconditionError);
  expect(missing.field).toBe('block_storage_names');

  const t0 = Date.now();
  const vm = await client.ensureVm(vmReq);
  expect(vm).toMatchObject({ name: 'vm1', present: true, runState: 'running', uuid: vmReq.uuid });
  const pid = vm.pid!;
  pids.add(pid);
  const serial = await client.openConsole('vm1', 'serial');
  consoles.push(serial);
  const out = collect(serial);
  await out.waitFor(GUEST_READY_MARKER, BOOT_TIMEOUT);
  console.log(`ensureVm -> ${GUEST_READY_MARKER} on the streamed console: ${Date.now() - t0} ms`);
  const vmDir = path.join(dataDir, 'vms', 'vm1');
  expect(fs.existsSync(path.join(vmDir, 'seed.iso'))).toBe(true);
  const { stdout: isoFiles } = await run('isoinfo', ['-R', '-f', '-i', path.join(vmDir, 'seed.iso')]);
  expect(isoFiles).toMatch(/user-data/);
  expect(isoFiles).toMatch(/meta-data/);

  // Both directions of the console: the guest shell runs what we type.
  let mark = out.text.length;
  serial.write(Buffer.from('\necho N0$((40+2))OK\n'));
  await out.waitFor(/N042OK/, 30_000, mark);

  // The tap is on the bridge and the guest answers from inside the namespace.
  const observed = await client.observe();
  expect(observed.vms).toEqual([expect.objectContaining({ name: 'vm1', present: true, runState: 'running', pid, uuid: vmReq.uuid })]);
  expect(observed.blockStorages.map((b) => b.name).sort()).toEqual(['base', 'copy1', 'root']);
  const net1 = observed.networks.find((n) => n.bridgeName === network.bridgeName);
  expect(net1?.taps).toHaveLength(1);
  const ping = await until('the guest answering ping', async () => {
    const r = await lab.exec(ns, 'busybox', ['ping', '-c', '1', '-W', '1', '192.168.77.10'], { timeoutMs: 5_000 });
    return r.code === 0 ? r.stdout : undefined;
  }, 30_000, 200);
  expect(ping).toMatch(/1 packets received/);

  // Idempotent ensure: same process.
  expect((await client.ensureVm(vmReq)).pid).toBe(pid);

  // Hard reboot: same QEMU, the guest boots again.
  mark = out.text.length;
  const t1 = Date.now();
  expect((await client.vmAction('vm1', 'HARD_REBOOT')).pid).toBe(pid);
  await out.waitFor(GUEST_READY_MARKER, BOOT_TIMEOUT, mark);
  console.log(`HARD_REBOOT -> ${GUEST_READY_MARKER}: ${Date.now() - t1} ms`);

  // Pause and resume through runState.
  expect((await client.ensureVm({ ...vmReq, runState: 'PAUSED' })).runState).toBe('paused');
  expect((await client.ensureVm(vmReq)).runState).toBe('running');

  // Restart the agent on the same data dir: the VM keeps running and is re-adopted.
  serial.close();
  agents[0].stop.abort();
  await running.done;
  expect(isOurQemu(pid, vmDir)).toBe(true);
  ({ running, client } = await startAgent());
  const after = await client.observe();
  expect(after.vms).toEqual([expect.objectContaining({ name: 'vm1', runState: 'running', pid, uuid: vmReq.uuid })]);
  expect((await client.ensureVm(vmReq)).pid).toBe(pid);
  expect((await store.get('Node', 'node1')).spec.agent_endpoint).toBe(running.advertisedEndpoint);

  // A disk in use by a running VM is not deleted.
  await expect(client.deleteBlockStorage('root')).rejects.toBeInstanceOf(FailedPreconditionError);

  // Delete everything; nothing may be left: no file, process, bridge or tap.
  await client.deleteVm('vm1');
  expect(isOurQemu(pid, vmDir)).toBe(false);
  await client.deleteVm('vm1');
  await client.deleteNetwork('net1');
  for (const d of ['root', 'copy1', 'base']) await client.deleteBlockStorage(d);
  const final = await client.observe();
  expect(final).toMatchObject({ vms: [], blockStorages: [], networks: [] });
  expect(fs.readdirSync(path.join(dataDir, 'disks'))).toEqual([]);
  expect(fs.readdirSync(path.join(dataDir, 'vms'))).toEqual([]);
  const { stdout: links } = await run('ip', ['-n', ns, '-o', 'link', 'show']);
  expect(links).not.toMatch(/n0(br|tp|vx)/);
});
