// Issue [D]'s "done when": the seed's own use-case files (e2e/seed/, unchanged but for the image
// URL) run with the BUILT n0ctl against a whole control plane (embedded store, controllers,
// facade, a real agent with QEMU under TCG and its networks in a test network namespace), their
// inverse actions run, and `n0ctl apply -f` of the equivalent manifests reaches the same state.
// The steps build on each other, in the order a seed user would take them.
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import YAML from 'yaml';
import { TestCloud } from '../e2e/cloud';
import { buildTestBootDisk } from '../agent/drivers/testing/bootdisk';
import { CliRunner, ROOT, ensureBuilt, type CliResult } from './testing/n0ctl';
import { writeClientConfig } from './config';

jest.setTimeout(300_000);

const SEED = path.join(ROOT, 'e2e', 'seed');
const MANIFEST = path.join(ROOT, 'e2e', 'manifests', 'boot-vm-from-image.yaml');
const SEED_URL = 'https://cloud-images.ubuntu.com/bionic/current/bionic-server-cloudimg-amd64.img';
const SEED_KEY = 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBITowPn2Ol1eCvXN5XV+Lb6jfXzgDbXyEdtayadDUJtFrcN2m2mjC1B20VBAoJcZtSYkmjrllS06Q26Te5sTYvE= testkey';
/** The loopback image server's pace: slow enough that a fetch of the ~10 MiB test disk shows progress. */
const THROTTLE_BYTES_PER_S = 4 * 1024 * 1024;
const VM_STEP_MS = 240_000;

interface ImageServer { server: http.Server; url: string; requests: number }

/** Serves the test boot disk at ~4 MB/s, honouring back-pressure. */
async function startImageServer(disk: string): Promise<ImageServer> {
  const body = fs.readFileSync(disk);
  const state: ImageServer = { server: undefined as unknown as http.Server, url: '', requests: 0 };
  const chunk = 64 * 1024;
  state.server = http.createServer((req, res) => {
    if (req.url !== '/bionic-server-cloudimg-amd64.img') { res.writeHead(404).end(); return; }
    state.requests++;
    res.writeHead(200, { 'Content-Length': body.length, 'Content-Type': 'application/octet-stream' });
    let offset = 0;
    const interval = (1000 * chunk) / THROTTLE_BYTES_PER_S;
    const timer = setInterval(() => {
      if (offset >= body.length) { clearInterval(timer); res.end(); return; }
      if (res.writableNeedDrain) return;
      res.write(body.subarray(offset, offset + chunk));
      offset += chunk;
    }, interval);
    res.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((r) => state.server.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(state.server.address() as { port: number }).port}/bionic-server-cloudimg-amd64.img`;
  return state;
}

/** The desired part of a document (what apply compares) plus the facts that show it happened. */
interface StackState {
  network: unknown; blockStorage: unknown; vm: unknown;
  observed: { vm: string; ip: string; disk: string; backing: string; segment: number; reservedIp: string; qemu: string[] };
}

describe('the seed use-case files through the built n0ctl on a real control plane', () => {
  let cloud: TestCloud;
  let images: ImageServer;
  let dir: string;
  let cli: CliRunner;
  const console_: { child?: ChildProcess } = {};
  let afterDo: StackState;

  const rpc = (service: string, method: string, req: unknown) => cloud.client.call<any>(service, method, req);
  const n0ctl = (args: string[], timeoutMs = 60_000): Promise<CliResult> => cli.run(args, { timeoutMs });
  /** A seed file as the test runs it: byte for byte, but for the internet image URL. */
  const seedFile = (name: string): string => {
    const text = fs.readFileSync(path.join(SEED, name), 'utf8');
    const occurrences = text.split(SEED_URL).length - 1;
    const out = path.join(dir, name);
    fs.writeFileSync(out, text.split(SEED_URL).join(images.url));
    if (name === 'register-image.yaml' || name === 'boot-vm-from-iso.yaml') expect(occurrences).toBe(1);
    else expect(occurrences).toBe(0);
    return out;
  };
  const expectOk = (r: CliResult): void => {
    if (r.code !== 0) throw new Error(`n0ctl exited ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  };
  const notFound = async (service: string, method: string, name: string): Promise<void> => {
    const e = await rpc(service, method, { name }).then(() => undefined, (err: Error & { codeName?: string }) => err);
    expect(e?.codeName ?? `found ${service}.${method} ${name}`).toBe('NOT_FOUND');
  };
  const agentState = () => cloud.hosts.get('vm-host1')!.agent.agent.observe();
  const desired = (doc: { metadata: { labels?: object; annotations?: object }; spec: unknown }) => ({ labels: doc.metadata.labels ?? {}, annotations: doc.metadata.annotations ?? {}, spec: doc.spec });
  const okTasks = (r: CliResult): string[] => r.stdout.split('\n').filter((l) => l.startsWith('[ok] ')).map((l) => l.split(' ')[1]).sort();

  /** Asserts the state the seed's boot-vm-from-image flow makes, and returns it for comparison. */
  async function expectBootedFromImage(): Promise<StackState> {
    const vm = await rpc('VirtualMachineService', 'GetVirtualMachine', { name: 'test-vm' });
    expect(vm.state).toBe('RUNNING');
    expect(vm.compute_node_name).toBe('vm-host1');
    expect(vm.nics).toHaveLength(1);
    expect(vm.nics[0]).toMatchObject({ network_name: 'test-network', ipv4_address: '192.168.0.1' });
    const bs = await rpc('BlockStorageService', 'GetBlockStorage', { name: 'test-blockstorage' });
    expect(bs.state).toBe('IN_USE');
    expect(bs.node_name).toBe('vm-host1');
    const net = await rpc('NetworkService', 'GetNetwork', { name: 'test-network' });
    expect(net.state).toBe('AVAILABLE');
    const vmDoc = await cloud.client.getDocument('VirtualMachine', 'test-vm');
    expect((vmDoc.spec as any).ssh_authorized_keys).toEqual([SEED_KEY]);
    expect((vmDoc.spec as any).uuid).toBe('056d2ccd-0c4c-44dc-a2c8-39a9d394b51f');
    expect((vmDoc.spec as any).login_username).toBe('n0user');
    const bsDoc = await cloud.client.getDocument('BlockStorage', 'test-blockstorage');
    const netDoc = await cloud.client.getDocument('Network', 'test-network');
    const observed = await agentState();
    return {
      network: desired(netDoc), blockStorage: desired(bsDoc), vm: desired(vmDoc),
      observed: {
        vm: vm.state, ip: vm.nics[0].ipv4_address, disk: bs.state, backing: bs.backing_block_storage, segment: net.segment_id,
        reservedIp: net.reserved_network_interfaces['test-vm.0']?.ipv4_address,
        qemu: observed.vms.map((v) => `${v.name}:${v.runState}`),
      },
    };
  }

  async function expectImageFlowGone(): Promise<void> {
    await notFound('VirtualMachineService', 'GetVirtualMachine', 'test-vm');
    await notFound('BlockStorageService', 'GetBlockStorage', 'test-blockstorage');
    await notFound('NetworkService', 'GetNetwork', 'test-network');
    const observed = await agentState();
    expect(observed.vms).toEqual([]);
    expect(observed.blockStorages.filter((b) => b.present).map((b) => b.name)).not.toContain('test-blockstorage');
    expect(observed.networks.filter((n) => n.present)).toEqual([]);
  }

  beforeAll(async () => {
    ensureBuilt();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0ctl-seed-'));
    images = await startImageServer(await buildTestBootDisk());
    cloud = await TestCloud.start({ store: 'embedded', nodes: ['vm-host1'] });
    // Exactly the connection flag a seed user passes, and the config `n0stack up` writes (token and
    // the CA that verifies the facade's TLS); nothing from the developer's shell or home.
    const config = path.join(dir, 'config');
    writeClientConfig(config, { endpoint: cloud.endpoint, token: cloud.token, ca: cloud.caFile });
    cli = new CliRunner(dir, { PATH: process.env.PATH, HOME: dir, N0STACK_CONFIG: config, N0STACK_LOG_LEVEL: 'error' },
      ['--api-endpoint', cloud.endpoint]);
    const deadline = Date.now() + 30_000;
    while ((await rpc('NodeService', 'GetNode', { name: 'vm-host1' }).catch(() => undefined))?.state !== 'Ready') {
      if (Date.now() > deadline) throw new Error('node vm-host1 did not become Ready within 30 s');
      await new Promise((r) => setTimeout(r, 300));
    }
  }, 300_000);

  afterAll(async () => {
    console_.child?.kill('SIGKILL');
    cli?.killAll();
    await cloud?.stop();
    await new Promise((r) => (images ? images.server.close(r) : r(undefined)));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('register-image.yaml: fetches (with progress lines), makes the image and registers the disk', async () => {
    const r = await n0ctl(['do', seedFile('register-image.yaml')], VM_STEP_MS);
    expectOk(r);
    process.stderr.write(`register-image.yaml: ${r.ms} ms\n${r.stdout}`);
    expect(r.stderr).toContain('warning: task "RegisterBlockStorage" uses BlockStorage "cloudimage-ubuntu-1804", which task "FetchISO" creates, but does not depend on it');
    expect(okTasks(r)).toEqual(['ApplyImage', 'FetchISO', 'RegisterBlockStorage']);
    // On a pipe the live list degrades to plain lines; a fetch of > 1 s prints its progress.
    const downloading = r.stdout.split('\n').filter((l) => /^\[running\] FetchISO download \d+(\.\d+)? (B|KiB|MiB) \/ \d+(\.\d+)? MiB \d+%/.test(l));
    expect(downloading.length).toBeGreaterThanOrEqual(1);
    // At least one line shows bytes under way (not only the 0 B before the first status update).
    expect(downloading.some((l) => / [1-9][\d.]* (KiB|MiB) \/ /.test(l))).toBe(true);
    expect(images.requests).toBe(1);
    const image = await rpc('ImageService', 'GetImage', { name: 'cloudimage-ubuntu' });
    expect(image.tags).toEqual({ latest: 'cloudimage-ubuntu-1804', '18.04': 'cloudimage-ubuntu-1804' });
    const bs = await rpc('BlockStorageService', 'GetBlockStorage', { name: 'cloudimage-ubuntu-1804' });
    expect(bs.state).toBe('PROTECTED');
    expect(bs.node_name).toBe('vm-host1');
    expect(Number(bs.limit_bytes)).toBe(10 * 1024 ** 3);
  });

  it('generate-blockstorage.yaml makes an overlay of the image; do --reverse deletes it', async () => {
    const file = seedFile('generate-blockstorage.yaml');
    expectOk(await n0ctl(['do', file]));
    const bs = await rpc('BlockStorageService', 'GetBlockStorage', { name: 'test-blockstorage' });
    expect(bs).toMatchObject({ state: 'AVAILABLE', node_name: 'vm-host1', backing_block_storage: 'cloudimage-ubuntu-1804' });
    const reversed = await n0ctl(['do', '--reverse', file]);
    expectOk(reversed);
    expect(okTasks(reversed)).toEqual(['Delete_test-blockstorage']);
    await notFound('BlockStorageService', 'GetBlockStorage', 'test-blockstorage');
  });

  it('boot-vm-from-image.yaml boots the VM; the equivalent manifests show no diff against it', async () => {
    const r = await n0ctl(['do', seedFile('boot-vm-from-image.yaml')], VM_STEP_MS);
    expectOk(r);
    process.stderr.write(`boot-vm-from-image.yaml: ${r.ms} ms\n`);
    expect(okTasks(r)).toEqual(['ApplyNetwork', 'CreateVirtualMachine', 'GenerateBlockStorage']);
    afterDo = await expectBootedFromImage();
    expect(afterDo.observed).toMatchObject({ vm: 'RUNNING', ip: '192.168.0.1', disk: 'IN_USE', backing: 'cloudimage-ubuntu-1804', segment: 100, reservedIp: '192.168.0.1', qemu: ['test-vm:running'] });
    const diff = await n0ctl(['diff', '-f', MANIFEST]);
    expect(diff.stdout).toBe('network/test-network: no changes\nblockstorage/test-blockstorage: no changes\nvirtualmachine/test-vm: no changes\n');
    expect(diff.code).toBe(0);
  });

  it('get node prints the facts of the seed\'s `n0cli get node`', async () => {
    const table = await n0ctl(['get', 'node']);
    expectOk(table);
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+ADDRESS\s+STATE\s+CPU\s+MEMORY\s+AGE$/);
    const address = (await rpc('NodeService', 'GetNode', { name: 'vm-host1' })).address;
    expect(address).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(table.stdout.split('\n')[1]).toMatch(new RegExp(`^vm-host1\\s+${address.replace(/\./g, '\\.')}\\s+Ready\\s+\\d+\\s+\\d+(\\.\\d+)?[MG]iB\\s+\\d+[sm]$`));
    const seed = await n0ctl(['get', 'node', '-o', 'seed']);
    expectOk(seed);
    const { nodes } = JSON.parse(seed.stdout);
    expect(nodes).toHaveLength(1);
    const node = nodes[0];
    expect(node).toMatchObject({ name: 'vm-host1', address, state: 'Ready', unit: 1 });
    expect(node.annotations['github.com/n0stack/n0stack/n0core/agent_version']).toMatch(/\S/);
    expect(node.cpu_milli_cores).toBeGreaterThanOrEqual(1000);
    // 64-bit fields as the seed printed them: decimal strings.
    expect(node.memory_bytes).toMatch(/^[1-9]\d{8,}$/);
    expect(node.storage_bytes).toMatch(/^[1-9]\d{9,}$/);
    expect(node.reserved_computes['test-vm']).toMatchObject({ request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: '536870912', limit_memory_bytes: '536870912' });
    expect(node.reserved_storages['test-blockstorage']).toMatchObject({ request_bytes: '1073741824', limit_bytes: '10737418240' });
  });

  it('console vm test-vm: a shell command round-trips through OpenConsole, Ctrl-] leaves with exit 0', async () => {
    const child = cli.spawn(['console', 'vm', 'test-vm']);
    console_.child = child;
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => { stdout += d; });
    child.stderr!.on('data', (d) => { stderr += d; });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    // The shell computes 42, so the marker cannot be the terminal echoing what we typed.
    const marker = 'n0ctl-console-42';
    const started = Date.now();
    const deadline = started + 180_000;
    let lastSend = 0;
    while (!stdout.includes(marker)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no ${marker} on the console (exit ${child.exitCode}); stderr: ${stderr}\nstdout tail: ${stdout.slice(-800)}`);
      // Until the guest has booted to its shell, typed lines are lost; type again every 5 s.
      if (stderr.includes('connected') && Date.now() - lastSend > 5000) {
        child.stdin!.write('echo n0ctl-console-$((40+2))\n');
        lastSend = Date.now();
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    process.stderr.write(`console round trip after ${Date.now() - started} ms\n`);
    expect(stderr).toContain("[n0ctl] connected; escape character is '^]'");
    child.stdin!.write(Buffer.from([0x1d]));
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running 15 s after Ctrl-]'), 15_000))]);
    expect(code).toBe(0);
    expect(stderr).toContain('[n0ctl] console closed');
    // Leaving the console leaves the VM alone.
    expect((await rpc('VirtualMachineService', 'GetVirtualMachine', { name: 'test-vm' })).state).toBe('RUNNING');
  });

  it('do --reverse boot-vm-from-image.yaml leaves nothing of it behind (the image stays)', async () => {
    const r = await n0ctl(['do', '--reverse', seedFile('boot-vm-from-image.yaml')], VM_STEP_MS);
    expectOk(r);
    expect(okTasks(r)).toEqual(['Delete_test-blockstorage', 'Delete_test-network', 'Delete_test-vm']);
    await expectImageFlowGone();
    expect((await rpc('BlockStorageService', 'GetBlockStorage', { name: 'cloudimage-ubuntu-1804' })).state).toBe('PROTECTED');
  });

  it('apply -f of the equivalent manifests reaches the same state; diff is empty; delete -f removes it', async () => {
    const applied = await n0ctl(['apply', '-f', MANIFEST], VM_STEP_MS);
    expectOk(applied);
    expect(applied.stdout).toBe('network/test-network created\nblockstorage/test-blockstorage created\nvirtualmachine/test-vm created\n');
    const state = await expectBootedFromImage();
    expect(state).toEqual(afterDo);
    const diff = await n0ctl(['diff', '-f', MANIFEST]);
    expect(diff.code).toBe(0);
    expect(diff.stdout).not.toContain('~');
    const again = await n0ctl(['apply', '-f', MANIFEST]);
    expect(again.stdout).toBe('network/test-network unchanged\nblockstorage/test-blockstorage unchanged\nvirtualmachine/test-vm unchanged\n');
    const deleted = await n0ctl(['delete', '-f', MANIFEST], VM_STEP_MS);
    expectOk(deleted);
    expect(deleted.stdout).toBe('virtualmachine/test-vm deleted\nblockstorage/test-blockstorage deleted\nnetwork/test-network deleted\n');
    await expectImageFlowGone();
  });

  it('idempotent.yaml runs twice to the same state: first its deletes are ignored, then they delete', async () => {
    const file = seedFile('idempotent.yaml');
    const first = await n0ctl(['do', file], VM_STEP_MS);
    expectOk(first);
    for (const t of ['Delete_test-vm', 'Delete_test-blockstorage', 'Delete_test-network']) expect(first.stdout).toMatch(new RegExp(`^\\[ignored\\] ${t}: NOT_FOUND: .*\\(ignore_error\\)$`, 'm'));
    expect(okTasks(first)).toEqual(['ApplyNetwork', 'CreateVirtualMachine', 'GenerateBlockStorage']);
    expect(await expectBootedFromImage()).toEqual(afterDo);
    const second = await n0ctl(['do', file], VM_STEP_MS);
    expectOk(second);
    expect(second.stdout).not.toContain('[ignored]');
    expect(okTasks(second)).toEqual(['ApplyNetwork', 'CreateVirtualMachine', 'Delete_test-blockstorage', 'Delete_test-network', 'Delete_test-vm', 'GenerateBlockStorage']);
    expect(await expectBootedFromImage()).toEqual(afterDo);
  });

  it('boot-vm-from-image-inverse.yaml with delete-image.yaml removes the VM stack and the image', async () => {
    // delete-image-detailed.yaml is refused before anything runs: the seed's stray colon.
    const detailed = await n0ctl(['do', seedFile('boot-vm-from-image-inverse.yaml'), seedFile('delete-image-detailed.yaml')]);
    expect(detailed.code).toBe(2);
    expect(detailed.stderr).toContain('args.image_name must be a string, got a map (is there a stray \':\' after the value?)');
    expect(detailed.stderr).toContain('nothing was run');
    // Alone, delete-image.yaml names the inverse file's task; together they run.
    const alone = await n0ctl(['do', seedFile('delete-image.yaml')]);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('depends_on names "Delete_test-vm", which is not a task in this file');
    expect((await rpc('VirtualMachineService', 'GetVirtualMachine', { name: 'test-vm' })).state).toBe('RUNNING');

    const r = await n0ctl(['do', seedFile('boot-vm-from-image-inverse.yaml'), seedFile('delete-image.yaml')], VM_STEP_MS);
    expectOk(r);
    expect(okTasks(r)).toEqual(['Delete_test-blockstorage', 'Delete_test-network', 'Delete_test-vm', 'Remove_cloudimage-ubuntu']);
    await expectImageFlowGone();
    await notFound('ImageService', 'GetImage', 'cloudimage-ubuntu');
    // DeleteImage releases its disk's protection; the disk itself is the user's to delete.
    expect((await rpc('BlockStorageService', 'GetBlockStorage', { name: 'cloudimage-ubuntu-1804' })).state).toBe('AVAILABLE');
    expectOk(await n0ctl(['delete', 'bs', 'cloudimage-ubuntu-1804']));
    await notFound('BlockStorageService', 'GetBlockStorage', 'cloudimage-ubuntu-1804');
  });

  it('boot-vm-from-iso.yaml is refused for its missing task; corrected, it boots; its inverse cleans up', async () => {
    const broken = await n0ctl(['do', seedFile('boot-vm-from-iso.yaml')]);
    expect(broken.code).toBe(2);
    expect(broken.stderr).toContain('task "CreateVirtualMachine": depends_on names "CreateBlockStorage", which is not a task in this file (tasks: FetchISO, ApplyNetwork, CreateVirtualMachine, OpenConsole)');
    expect(broken.stderr).toContain('nothing was run');
    await notFound('NetworkService', 'GetNetwork', 'test-network');
    expect(images.requests).toBe(1);

    // The seed meant FetchISO (and the network) where it wrote CreateBlockStorage.
    const fixed = YAML.parse(fs.readFileSync(seedFile('boot-vm-from-iso.yaml'), 'utf8'));
    fixed.CreateVirtualMachine.depends_on = ['FetchISO', 'ApplyNetwork'];
    const fixedFile = path.join(dir, 'boot-vm-from-iso-fixed.yaml');
    fs.writeFileSync(fixedFile, YAML.stringify(fixed));
    const r = await n0ctl(['do', fixedFile], VM_STEP_MS);
    expectOk(r);
    expect(okTasks(r)).toEqual(['ApplyNetwork', 'CreateVirtualMachine', 'FetchISO', 'OpenConsole']);
    // The facade serves TLS, so its console URLs are wss://.
    expect(r.stdout).toMatch(/^OpenConsole: console wss:\/\/127\.0\.0\.1:\d+\/console\?ticket=\S+$/m);
    expect(images.requests).toBe(2);
    const vm = await rpc('VirtualMachineService', 'GetVirtualMachine', { name: 'test-vm' });
    expect(vm.state).toBe('RUNNING');
    expect(vm.nics[0].ipv4_address).toBe('192.168.0.1');
    expect(Number(vm.limit_memory_bytes)).toBe(1024 ** 3);
    expect((await rpc('BlockStorageService', 'GetBlockStorage', { name: 'cloudimage-ubuntu-1804' })).state).toBe('IN_USE');

    const inverse = await n0ctl(['do', seedFile('boot-vm-from-iso-inverse.yaml')], VM_STEP_MS);
    expectOk(inverse);
    expect(okTasks(inverse)).toEqual(['Delete_blockstorage', 'Delete_test-network', 'Delete_test-vm']);
    await notFound('VirtualMachineService', 'GetVirtualMachine', 'test-vm');
    await notFound('BlockStorageService', 'GetBlockStorage', 'cloudimage-ubuntu-1804');
    await notFound('NetworkService', 'GetNetwork', 'test-network');
  });

  it('leaves the agent with no VM, no disk and no network', async () => {
    const observed = await agentState();
    expect(observed.vms).toEqual([]);
    expect(observed.blockStorages.filter((b) => b.present)).toEqual([]);
    expect(observed.networks.filter((n) => n.present)).toEqual([]);
    const disks = path.join(cloud.hosts.get('vm-host1')!.dataDir, 'disks');
    expect(fs.readdirSync(disks).filter((f) => !f.startsWith('.'))).toEqual([]);
    for (const kind of ['vm', 'bs', 'net', 'img']) {
      const r = await n0ctl(['get', kind, '-o', 'name']);
      expectOk(r);
      expect(r.stdout).toBe('');
    }
  });
});
