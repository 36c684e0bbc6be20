// The control plane end to end on one machine: facade + controllers + a real agent (qemu-img,
// QEMU under TCG, iproute2 in a test network namespace), through the seed's RPCs, on the
// embedded store and on etcd. Every mutating RPC returns only when status shows the outcome.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { WebSocket } from 'ws';
import { TestCloud } from '../e2e/cloud';
import { buildTestBootDisk, CLOUDINIT_DONE_MARKER } from '../agent/drivers/testing/bootdisk';
import { isOurQemu } from '../agent/drivers/qemu';

jest.setTimeout(600_000);

const GiB = 1024 ** 3;
const SEED_KEY = 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBITowPn2Ol1eCvXN5XV+Lb6jfXzgDbXyEdtayadDUJtFrcN2m2mjC1B20VBAoJcZtSYkmjrllS06Q26Te5sTYvE= testkey';

let imageServer: http.Server;
let imageUrl: string;

beforeAll(async () => {
  const disk = await buildTestBootDisk();
  imageServer = http.createServer((req, res) => {
    if (req.url !== '/guest.qcow2') { res.writeHead(404).end(); return; }
    const size = fs.statSync(disk).size;
    res.writeHead(200, { 'Content-Length': size });
    fs.createReadStream(disk).pipe(res);
  });
  await new Promise<void>((r) => imageServer.listen(0, '127.0.0.1', r));
  imageUrl = `http://127.0.0.1:${(imageServer.address() as { port: number }).port}/guest.qcow2`;
});

afterAll(async () => {
  await new Promise((r) => imageServer?.close(r));
});

async function expectCode(promise: Promise<unknown>, code: string, pattern?: RegExp): Promise<void> {
  const err = await promise.then(() => undefined, (e) => e as Error & { codeName?: string });
  expect(err).toBeDefined();
  expect(`${(err as any).codeName ?? ''} ${err!.message}`).toContain(code);
  if (pattern) expect(err!.message).toMatch(pattern);
}

function readConsole(url: string, marker: string, timeoutMs: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { ca: fs.readFileSync(ca) });
    let text = '';
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`no ${marker} on the console within ${timeoutMs} ms; got: ${text.slice(-500)}`)); }, timeoutMs);
    ws.on('message', (data: Buffer) => {
      text += data.toString('utf8');
      if (text.includes(marker)) { clearTimeout(timer); ws.close(); resolve(text); }
    });
    // A newline makes the guest's shell print a prompt even if the boot text has already gone by.
    ws.on('open', () => ws.send(Buffer.from('\n')));
    ws.on('error', (err) => { clearTimeout(timer); reject(err); });
  });
}

describe.each(['embedded', 'etcd'] as const)('control plane on the %s store', (storeKind) => {
  let cloud: TestCloud;
  const call = (service: string, method: string, req: unknown) => cloud.client.call<any>(service, method, req);

  beforeAll(async () => {
    cloud = await TestCloud.start({ store: storeKind, nodes: ['vm-host1'] });
  });
  afterAll(async () => {
    await cloud?.stop();
  });

  it('registers the node with its capacity and accelerator', async () => {
    const deadline = Date.now() + 30_000;
    let node: any;
    while (Date.now() < deadline) {
      node = await call('NodeService', 'GetNode', { name: 'vm-host1' }).catch(() => undefined);
      if (node?.state === 'Ready') break;
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(node.state).toBe('Ready');
    expect(['kvm', 'tcg']).toContain(node.accelerator);
    expect(Number(node.cpu_milli_cores)).toBeGreaterThanOrEqual(1000);
    expect(Number(node.memory_bytes)).toBeGreaterThan(GiB);
    expect(node.annotations['github.com/n0stack/n0stack/n0core/agent_version']).toBeTruthy();
  });

  it('rejects bad input with the field named, and writes nothing', async () => {
    await expectCode(call('NetworkService', 'ApplyNetwork', { name: 'bad-net', ipv4_cidr: '192.168.0.1/24' }), 'INVALID_ARGUMENT', /ipv4_cidr/);
    await expectCode(call('NetworkService', 'ApplyNetwork', { name: '../etc', ipv4_cidr: '10.0.0.0/24' }), 'INVALID_ARGUMENT', /name/);
    await expectCode(call('VirtualMachineService', 'CreateVirtualMachine', { name: 'bad-vm', limit_cpu_milli_core: 1500, limit_memory_bytes: 268435456 }), 'INVALID_ARGUMENT', /limit_cpu_milli_core/);
    await expectCode(call('VirtualMachineService', 'CreateVirtualMachine', { name: 'bad-vm', limit_cpu_milli_core: 1000, request_memory_bytes: 1, limit_memory_bytes: 268435456 }), 'INVALID_ARGUMENT', /request_memory_bytes/);
    await expectCode(call('BlockStorageService', 'FetchBlockStorage', { name: 'bad-bs', request_bytes: 1, limit_bytes: 1024, source_url: 'file:///etc/passwd' }), 'INVALID_ARGUMENT', /source_url/);
    await expectCode(call('NetworkService', 'GetNetwork', { name: 'bad-net' }), 'NOT_FOUND');
    await expectCode(call('VirtualMachineService', 'GetVirtualMachine', { name: 'bad-vm' }), 'NOT_FOUND');
    await expectCode(call('BlockStorageService', 'GetBlockStorage', { name: 'bad-bs' }), 'NOT_FOUND');
  });

  it('runs the seed flow: network, fetch, image, generate, VM with cloud-init, console, actions, delete', async () => {
    const net = await call('NetworkService', 'ApplyNetwork', { name: 'test-network', ipv4_cidr: '192.168.0.0/24', annotations: { 'n0core/provisioning/virtual_machine/vlan_id': '100' } });
    expect(net.state).toBe('AVAILABLE');
    expect(net.segment_id).toBe(100);
    // Apply again is idempotent.
    expect((await call('NetworkService', 'ApplyNetwork', { name: 'test-network', ipv4_cidr: '192.168.0.0/24', annotations: { 'n0core/provisioning/virtual_machine/vlan_id': '100' } })).state).toBe('AVAILABLE');

    const fetched = await call('BlockStorageService', 'FetchBlockStorage', {
      name: 'cloudimage-test', annotations: { 'n0core/provisioning/block_storage/request_node_name': 'vm-host1' },
      request_bytes: 64 * 1024 * 1024, limit_bytes: GiB, source_url: imageUrl,
    });
    expect(fetched.state).toBe('AVAILABLE');
    expect(fetched.node_name).toBe('vm-host1');
    await expectCode(call('BlockStorageService', 'CreateBlockStorage', { name: 'cloudimage-test', request_bytes: 1, limit_bytes: GiB }), 'ALREADY_EXISTS');

    const empty = await call('BlockStorageService', 'CreateBlockStorage', { name: 'scratch', request_bytes: 1024 * 1024, limit_bytes: 64 * 1024 * 1024 });
    expect(empty.state).toBe('AVAILABLE');
    const grown = await call('BlockStorageService', 'UpdateBlockStorage', { name: 'scratch', limit_bytes: 128 * 1024 * 1024 });
    expect(Number(grown.limit_bytes)).toBe(128 * 1024 * 1024);
    await expectCode(call('BlockStorageService', 'UpdateBlockStorage', { name: 'scratch', limit_bytes: 1024 * 1024 }), 'INVALID_ARGUMENT', /limit_bytes/);
    const copy = await call('BlockStorageService', 'CopyBlockStorage', { name: 'scratch-copy', request_bytes: 1024 * 1024, limit_bytes: 128 * 1024 * 1024, source_block_storage: 'scratch' });
    expect(copy.state).toBe('AVAILABLE');

    await call('ImageService', 'ApplyImage', { name: 'cloudimage-ubuntu' });
    const image = await call('ImageService', 'RegisterBlockStorage', { image_name: 'cloudimage-ubuntu', block_storage_name: 'cloudimage-test', tags: ['latest', '18.04'] });
    expect(image.tags).toEqual({ latest: 'cloudimage-test', '18.04': 'cloudimage-test' });
    expect((await call('BlockStorageService', 'GetBlockStorage', { name: 'cloudimage-test' })).state).toBe('PROTECTED');
    await expectCode(call('BlockStorageService', 'DeleteBlockStorage', { name: 'cloudimage-test' }), 'FAILED_PRECONDITION', /PROTECTED/);
    await call('ImageService', 'TagImage', { name: 'cloudimage-ubuntu', block_storage_name: 'cloudimage-test', tags: ['extra'] });
    await call('ImageService', 'UntagImage', { name: 'cloudimage-ubuntu', tag: 'extra' });
    await expectCode(call('ImageService', 'TagImage', { name: 'cloudimage-ubuntu', block_storage_name: 'scratch', tags: ['x'] }), 'FAILED_PRECONDITION', /not registered/);

    const started = Date.now();
    const generated = await call('ImageService', 'GenerateBlockStorage', {
      image_name: 'cloudimage-ubuntu', tag: '18.04', block_storage_name: 'test-blockstorage',
      annotations: { 'n0core/provisioning/block_storage/request_node_name': 'vm-host1' }, request_bytes: 64 * 1024 * 1024, limit_bytes: GiB,
    });
    expect(generated.state).toBe('AVAILABLE');
    expect(generated.backing_block_storage).toBe('cloudimage-test');
    process.stderr.write(`[${storeKind}] GenerateBlockStorage (copy-on-write): ${Date.now() - started} ms\n`);

    const createStarted = Date.now();
    const vm = await call('VirtualMachineService', 'CreateVirtualMachine', {
      name: 'test-vm', annotations: { 'n0core/provisioning/virtual_machine/request_node_name': 'vm-host1' },
      request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 268435456, limit_memory_bytes: 268435456,
      block_storage_names: ['test-blockstorage'], nics: [{ network_name: 'test-network', ipv4_address: '192.168.0.1' }],
      uuid: '056d2ccd-0c4c-44dc-a2c8-39a9d394b51f', login_username: 'n0user', ssh_authorized_keys: [SEED_KEY],
    });
    process.stderr.write(`[${storeKind}] CreateVirtualMachine -> RUNNING: ${Date.now() - createStarted} ms\n`);
    expect(vm.state).toBe('RUNNING');
    expect(vm.compute_node_name).toBe('vm-host1');
    expect(vm.nics[0].ipv4_address).toBe('192.168.0.1');
    expect(vm.nics[0].hardware_address).toMatch(/^02:/);
    expect((await call('BlockStorageService', 'GetBlockStorage', { name: 'test-blockstorage' })).state).toBe('IN_USE');
    const node = await call('NodeService', 'GetNode', { name: 'vm-host1' });
    expect(node.reserved_computes['test-vm']).toBeDefined();
    expect(node.reserved_storages['test-blockstorage']).toBeDefined();
    const network = await call('NetworkService', 'GetNetwork', { name: 'test-network' });
    expect(network.reserved_network_interfaces['test-vm.0'].ipv4_address).toBe('192.168.0.1');

    // Exactly one QEMU process for the VM, in the host namespace the agent serves.
    const host = cloud.hosts.get('vm-host1')!;
    const observed = await host.agent.agent.observe();
    const qemu = observed.vms.filter((v) => v.name === 'test-vm');
    expect(qemu).toHaveLength(1);
    expect(qemu[0].runState).toBe('running');
    expect(isOurQemu(qemu[0].pid!, path.join(host.dataDir, 'vms', 'test-vm'))).toBe(true);

    // Conflicts and rules.
    await expectCode(call('BlockStorageService', 'DeleteBlockStorage', { name: 'test-blockstorage' }), 'FAILED_PRECONDITION', /IN_USE/);
    await expectCode(call('NetworkService', 'DeleteNetwork', { name: 'test-network' }), 'FAILED_PRECONDITION', /reserved interfaces/);
    await expectCode(call('VirtualMachineService', 'CreateVirtualMachine', {
      name: 'dup-ip', limit_cpu_milli_core: 1000, limit_memory_bytes: 268435456, nics: [{ network_name: 'test-network', ipv4_address: '192.168.0.1' }],
    }), 'FAILED_PRECONDITION', /192\.168\.0\.1/);
    await call('VirtualMachineService', 'DeleteVirtualMachine', { name: 'dup-ip' });

    // The console streams the guest's serial port; cloud-init applied the static address.
    const consoleInfo = await call('VirtualMachineService', 'OpenConsole', { name: 'test-vm' });
    // The facade serves TLS, so its consoles are wss:// with the same certificate.
    expect(consoleInfo.console_url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/console\?ticket=/);
    const text = await readConsole(consoleInfo.console_url, CLOUDINIT_DONE_MARKER, 180_000, cloud.caFile);
    expect(text).toContain(CLOUDINIT_DONE_MARKER);
    const ping = await cloud.lab.exec(host.netns, 'busybox', ['ping', '-c', '1', '-W', '3', '192.168.0.1']).catch((e) => e);
    void ping; // the bridge has no host address in this test; reachability is proven by the e2e tests.

    // Power actions are intents; each returns when done.
    const pid = qemu[0].pid;
    expect((await call('VirtualMachineService', 'RebootVirtualMachine', { name: 'test-vm', hard: true })).state).toBe('RUNNING');
    expect((await call('VirtualMachineService', 'SaveVirtualMachine', { name: 'test-vm' })).state).toBe('PAUSED');
    await expectCode(call('VirtualMachineService', 'RebootVirtualMachine', { name: 'test-vm' }), 'FAILED_PRECONDITION', /not RUNNING/);
    expect((await call('VirtualMachineService', 'BootVirtualMachine', { name: 'test-vm' })).state).toBe('RUNNING');
    expect((await cloud.hosts.get('vm-host1')!.agent.agent.observe()).vms.find((v) => v.name === 'test-vm')!.pid).toBe(pid);
    expect((await call('VirtualMachineService', 'ShutdownVirtualMachine', { name: 'test-vm', hard: true })).state).toBe('SHUTDOWN');
    expect((await call('VirtualMachineService', 'BootVirtualMachine', { name: 'test-vm' })).state).toBe('RUNNING');

    const list = await call('VirtualMachineService', 'ListVirtualMachines', {});
    expect(list.virtual_machines.map((v: any) => v.name)).toEqual(['test-vm']);

    // Tear down in the seed's inverse order; everything is released and nothing is left behind.
    await call('VirtualMachineService', 'DeleteVirtualMachine', { name: 'test-vm' });
    await expectCode(call('VirtualMachineService', 'GetVirtualMachine', { name: 'test-vm' }), 'NOT_FOUND');
    expect((await call('NodeService', 'GetNode', { name: 'vm-host1' })).reserved_computes['test-vm']).toBeUndefined();
    expect((await call('NetworkService', 'GetNetwork', { name: 'test-network' })).reserved_network_interfaces).toEqual({});
    await call('BlockStorageService', 'DeleteBlockStorage', { name: 'test-blockstorage' });
    await call('NetworkService', 'DeleteNetwork', { name: 'test-network' });
    await call('ImageService', 'UnregisterBlockStorage', { image_name: 'cloudimage-ubuntu', block_storage_name: 'cloudimage-test' });
    await call('ImageService', 'DeleteImage', { name: 'cloudimage-ubuntu' });
    for (const name of ['cloudimage-test', 'scratch', 'scratch-copy']) await call('BlockStorageService', 'DeleteBlockStorage', { name });
    const after = await host.agent.agent.observe();
    expect(after.vms).toEqual([]);
    expect(after.blockStorages.filter((b) => b.present)).toEqual([]);
    expect(after.networks.filter((n) => n.present)).toEqual([]);
    expect(fs.readdirSync(path.join(host.dataDir, 'disks')).filter((f) => !f.startsWith('.'))).toEqual([]);
  });

  it('reserves and schedules compute and storage through the seed NodeService', async () => {
    const r = await call('NodeService', 'ReserveCompute', { node_name: 'vm-host1', compute_name: 'manual', request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 1024, limit_memory_bytes: 1024 });
    // The seed's answer: the Node, holding the reservation.
    expect(r.name).toBe('vm-host1');
    expect(r.reserved_computes.manual).toMatchObject({ request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, limit_memory_bytes: '1024' });
    await expectCode(call('NodeService', 'ReserveCompute', { node_name: 'vm-host1', compute_name: 'huge', request_cpu_milli_core: 1e9, limit_cpu_milli_core: 1e9, request_memory_bytes: 1, limit_memory_bytes: 1 }), 'FAILED_PRECONDITION', /CPU/);
    await call('NodeService', 'ReleaseCompute', { node_name: 'vm-host1', compute_name: 'manual' });
    const s = await call('NodeService', 'ScheduleStorage', { storage_name: 'manual-disk', request_bytes: 1024, limit_bytes: 2048 });
    expect(s.name).toBe('vm-host1');
    expect(s.reserved_storages['manual-disk']).toMatchObject({ request_bytes: '1024', limit_bytes: '2048' });
    await call('NodeService', 'ReleaseStorage', { node_name: 'vm-host1', storage_name: 'manual-disk' });
    const c = await call('NodeService', 'ScheduleCompute', { compute_name: 'sched', request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 1024, limit_memory_bytes: 1024 });
    expect(c.name).toBe('vm-host1');
    expect(Object.keys(c.reserved_computes)).toContain('sched');
    await call('NodeService', 'ReleaseCompute', { node_name: 'vm-host1', compute_name: 'sched' });
    await expectCode(call('NodeService', 'ReleaseCompute', { node_name: 'vm-host1', compute_name: 'sched' }), 'NOT_FOUND');
    const net = await call('NetworkService', 'ApplyNetwork', { name: 'manual-net', ipv4_cidr: '10.9.0.0/29' });
    const reserved = await call('NetworkService', 'ReserveNetworkInterface', { network_name: net.name, network_interface_name: 'port-a' });
    expect(reserved.reserved_network_interfaces['port-a'].ipv4_address).toBe('10.9.0.1');
    await call('NetworkService', 'ReleaseNetworkInterface', { network_name: net.name, network_interface_name: 'port-a' });
    await call('NetworkService', 'DeleteNetwork', { name: net.name });
  });
});
