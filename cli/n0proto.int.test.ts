// Issue [K]'s "done when": a client built only from ../shared/N0PROTO.md (its own .proto files in
// cli/testing/n0proto-0.2.94, written from those facts, none of ours) runs the seed's use cases by
// the original paths and field numbers, as the original n0cli dials: plaintext, no metadata, to
// the legacy listener (admin role) of a whole control plane with a real agent and QEMU (TCG).
// Then the built n0ctl's `do -o json` prints a response the way the original n0cli did.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { TestCloud } from '../e2e/cloud';
import { loadFacadeProto, serviceDefinition } from '../api/server/proto';
import { CliRunner, ensureBuilt } from './testing/n0ctl';

jest.setTimeout(400_000);

const SEED_PROTO = path.join(__dirname, 'testing', 'n0proto-0.2.94');
// jsonpb-like decoding: enums by name, uint64 as strings, the seed's field names.
const seed = protoLoader.loadSync(['n0stack/pool.proto', 'n0stack/provisioning.proto', 'n0stack/deployment.proto'], {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [SEED_PROTO],
});
const packages = grpc.loadPackageDefinition(seed) as any;
const MiB = 1024 * 1024;
const UUID = '056d2ccd-0c4c-44dc-a2c8-39a9d394b51f';
const KEY = 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBITowPn2Ol1eCvXN5XV+Lb6jfXzgDbXyEdtayadDUJtFrcN2m2mjC1B20VBAoJcZtSYkmjrllS06Q26Te5sTYvE= testkey';

let cloud: TestCloud;
const clients = new Map<string, grpc.Client>();

/** `/<package>.<Service>/<Method>`, exactly the original n0cli's call: no TLS, no metadata. */
function call(fullService: string, method: string, request: unknown): Promise<any> {
  if (!clients.has(fullService)) {
    const Ctor = fullService.split('.').reduce((o, part) => o[part], packages) as grpc.ServiceClientConstructor;
    clients.set(fullService, new Ctor(cloud.legacyEndpoint!, grpc.credentials.createInsecure()));
  }
  const client = clients.get(fullService) as any;
  return new Promise((resolve, reject) => client[method](request, new grpc.Metadata(), { deadline: Date.now() + 240_000 }, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))));
}

beforeAll(async () => {
  cloud = await TestCloud.start({ store: 'embedded', nodes: ['vm-host1'], legacyRole: 'admin' });
});

afterAll(async () => {
  for (const c of clients.values()) c.close();
  await cloud?.stop();
});

test('an original client runs the seed use cases by the original paths and numbers', async () => {
  const nodes = await call('n0stack.pool.NodeService', 'ListNodes', {});
  expect(nodes.nodes).toHaveLength(1);
  expect(nodes.nodes[0]).toMatchObject({ name: 'vm-host1', state: 'Ready', annotations: { 'github.com/n0stack/n0stack/n0core/agent_version': expect.any(String) } });
  expect(Number(nodes.nodes[0].memory_bytes)).toBeGreaterThan(0);

  const net = await call('n0stack.pool.NetworkService', 'ApplyNetwork', { name: 'seed-net', ipv4_cidr: '192.168.0.0/24', domain: 'seed.local' });
  expect(net).toMatchObject({ name: 'seed-net', ipv4_cidr: '192.168.0.0/24', domain: 'seed.local', state: 'AVAILABLE' });

  const base = await call('n0stack.provisioning.BlockStorageService', 'CreateBlockStorage', {
    name: 'seed-base', annotations: { 'n0core/provisioning/block_storage/request_node_name': 'vm-host1' }, request_bytes: String(MiB), limit_bytes: String(64 * MiB),
  });
  expect(base).toMatchObject({ name: 'seed-base', state: 'AVAILABLE', node_name: 'vm-host1', storage_name: 'seed-base', limit_bytes: String(64 * MiB) });

  // Reserve* answers with the Node, as the original's does.
  const reserved = await call('n0stack.pool.NodeService', 'ReserveCompute', {
    node_name: 'vm-host1', compute_name: 'seed-manual', request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: String(MiB), limit_memory_bytes: String(MiB),
  });
  expect(reserved.name).toBe('vm-host1');
  expect(reserved.reserved_computes['seed-manual']).toMatchObject({ request_cpu_milli_core: 10, limit_memory_bytes: String(MiB) });
  await call('n0stack.pool.NodeService', 'ReleaseCompute', { node_name: 'vm-host1', compute_name: 'seed-manual' });

  await call('n0stack.deployment.ImageService', 'ApplyImage', { name: 'seed-image' });
  const image = await call('n0stack.deployment.ImageService', 'RegisterBlockStorage', { image_name: 'seed-image', block_storage_name: 'seed-base', tags: ['latest', '18.04'] });
  expect(image.tags).toEqual({ latest: 'seed-base', '18.04': 'seed-base' });
  expect(image.registered_block_storages).toEqual([{ block_storage_name: 'seed-base', registered_at: { seconds: expect.stringMatching(/^\d+$/), nanos: expect.any(Number) } }]);
  expect(Number(image.registered_block_storages[0].registered_at.seconds) * 1000).toBeGreaterThan(Date.now() - 600_000);

  // An ImageService RPC answering with n0stack.provisioning.BlockStorage.
  const disk = await call('n0stack.deployment.ImageService', 'GenerateBlockStorage', {
    image_name: 'seed-image', tag: '18.04', block_storage_name: 'seed-vm-disk', request_bytes: String(MiB), limit_bytes: String(64 * MiB),
    annotations: { 'n0core/provisioning/block_storage/request_node_name': 'vm-host1' },
  });
  expect(disk).toMatchObject({ name: 'seed-vm-disk', state: 'AVAILABLE', node_name: 'vm-host1' });

  // uuid=16, login_username=17, ssh_authorized_keys=18: the fields our old numbering moved.
  const vm = await call('n0stack.provisioning.VirtualMachineService', 'CreateVirtualMachine', {
    name: 'seed-vm', annotations: { 'n0core/provisioning/virtual_machine/request_node_name': 'vm-host1' },
    request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: String(128 * MiB), limit_memory_bytes: String(128 * MiB),
    block_storage_names: ['seed-vm-disk'], nics: [{ network_name: 'seed-net', ipv4_address: '192.168.0.7' }],
    uuid: UUID, login_username: 'n0user', ssh_authorized_keys: [KEY],
  });
  expect(vm).toMatchObject({
    name: 'seed-vm', state: 'RUNNING', uuid: UUID, login_username: 'n0user', ssh_authorized_keys: [KEY], compute_node_name: 'vm-host1', compute_name: 'seed-vm',
    block_storage_names: ['seed-vm-disk'], network_interface_names: ['seed-vm.0'],
    nics: [expect.objectContaining({ network_name: 'seed-net', ipv4_address: '192.168.0.7', hardware_address: expect.stringMatching(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/) })],
  });
  const vmDoc = await cloud.client.getDocument('VirtualMachine', 'seed-vm');
  expect(vmDoc.spec).toMatchObject({ uuid: UUID, login_username: 'n0user', ssh_authorized_keys: [KEY] });
  expect((await call('n0stack.provisioning.BlockStorageService', 'GetBlockStorage', { name: 'seed-vm-disk' })).state).toBe('IN_USE');
  expect((await call('n0stack.pool.NetworkService', 'GetNetwork', { name: 'seed-net' })).reserved_network_interfaces['seed-vm.0']).toMatchObject({ ipv4_address: '192.168.0.7' });
  expect((await cloud.hosts.get('vm-host1')!.agent.agent.observe()).vms.map((v) => `${v.name}:${v.runState}`)).toEqual(['seed-vm:running']);

  // Our additions travel in the same bytes; the original decoding skips them.
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const client = new grpc.Client(cloud.legacyEndpoint!, grpc.credentials.createInsecure());
    client.makeUnaryRequest('/n0stack.provisioning.VirtualMachineService/GetVirtualMachine', (v: Buffer) => v, (b: Buffer) => b,
      (serviceDefinition(seed, 'VirtualMachineService') as any).GetVirtualMachine.requestSerialize({ name: 'seed-vm' }), (err, res) => { client.close(); if (err) reject(err); else resolve(res!); });
  });
  const original = (seed['n0stack.provisioning.VirtualMachineService'] as any).GetVirtualMachine.responseDeserialize(raw);
  const ours = (loadFacadeProto({ longs: String }) as any)['n0stack.provisioning.VirtualMachineService'].GetVirtualMachine.responseDeserialize(raw);
  expect(ours).toMatchObject({ exact_state: 'RUNNING', accelerator: expect.stringMatching(/^(kvm|tcg)$/), conditions: expect.arrayContaining([expect.objectContaining({ type: 'Ready', status: 'True' })]) });
  expect(original).toMatchObject({ name: 'seed-vm', state: 'RUNNING', uuid: UUID });
  expect(original).not.toHaveProperty('exact_state');
  expect(original).not.toHaveProperty('conditions');

  // DownloadBlockStorage: a disk a VM runs on would be read torn, so it is refused; the image's
  // base disk (PROTECTED) gives a URL on the facade's HTTP side that streams its file from the
  // node, byte for byte, to a caller with a token, and to no one without.
  await expect(call('n0stack.provisioning.BlockStorageService', 'DownloadBlockStorage', { name: 'seed-vm-disk' }))
    .rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: expect.stringMatching(/IN_USE by seed-vm/) });
  const { download_url: url } = await call('n0stack.provisioning.BlockStorageService', 'DownloadBlockStorage', { name: 'seed-base' });
  expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/download\/blockstorages\/seed-base$/);
  const get = (headers: Record<string, string>) => new Promise<{ status: number; body: Buffer; type?: string }>((resolve, reject) => {
    https.get(url, { ca: fs.readFileSync(cloud.caFile), headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d)).on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), type: res.headers['content-type'] })).on('error', reject);
    }).on('error', reject);
  });
  const downloaded = await get({ authorization: `Bearer ${cloud.token}` });
  const onNode = fs.readFileSync(path.join(cloud.host('vm-host1').dataDir, 'disks', 'seed-base.qcow2'));
  expect({ status: downloaded.status, type: downloaded.type, bytes: downloaded.body.length }).toEqual({ status: 200, type: 'application/octet-stream', bytes: onNode.length });
  expect(createHash('sha256').update(downloaded.body).digest('hex')).toBe(createHash('sha256').update(onNode).digest('hex'));
  expect((await get({})).status).toBe(401);

  // The seed's inverse: delete what was made, in reverse order.
  await call('n0stack.provisioning.VirtualMachineService', 'DeleteVirtualMachine', { name: 'seed-vm' });
  await call('n0stack.provisioning.BlockStorageService', 'DeleteBlockStorage', { name: 'seed-vm-disk' });
  await call('n0stack.deployment.ImageService', 'UnregisterBlockStorage', { image_name: 'seed-image', block_storage_name: 'seed-base' });
  await call('n0stack.deployment.ImageService', 'DeleteImage', { name: 'seed-image' });
  await call('n0stack.provisioning.BlockStorageService', 'DeleteBlockStorage', { name: 'seed-base' });
  await call('n0stack.pool.NetworkService', 'DeleteNetwork', { name: 'seed-net' });
  await expect(call('n0stack.provisioning.VirtualMachineService', 'GetVirtualMachine', { name: 'seed-vm' })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  expect((await call('n0stack.provisioning.BlockStorageService', 'ListBlockStorages', {})).block_storages).toEqual([]);
  const after = await cloud.hosts.get('vm-host1')!.agent.agent.observe();
  expect(after.vms).toEqual([]);
  expect(after.blockStorages.filter((b) => b.present)).toEqual([]);
  expect(after.networks.filter((n) => n.present)).toEqual([]);
});

test('n0ctl do -o json prints each response as the original n0cli did', async () => {
  ensureBuilt();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0ctl-n0proto-'));
  try {
    const file = path.join(dir, 'do.yaml');
    fs.writeFileSync(file, [
      'ApplyNetwork:', '  type: network', '  action: ApplyNetwork', '  args:', '    name: json-net', '    ipv4_cidr: 192.168.9.0/24',
      'GetNode:', '  type: Node', '  action: GetNode', '  args:', '    name: vm-host1',
      'Missing:', '  type: block_storage', '  action: GetBlockStorage', '  args:', '    name: no-such-disk', '  depends_on:', '    - ApplyNetwork', '    - GetNode',
    ].join('\n'));
    // The original's environment variable, plaintext to the legacy listener, no token.
    const cli = new CliRunner(dir, { PATH: process.env.PATH, HOME: dir, N0CLI_API_ENDPOINT: `http://${cloud.legacyEndpoint}`, N0STACK_LOG_LEVEL: 'error' });
    const r = await cli.run(['do', '-o', 'json', '--concurrency', '1', file], { timeoutMs: 120_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Failed to do tasks\n$/);
    const lines = r.stdout.split('\n');
    expect(lines.filter((l) => l.startsWith('---> '))).toEqual([
      "---> Task 'ApplyNetwork' is started", "---> [ 1/3 ] Task 'ApplyNetwork' is finished",
      "---> Task 'GetNode' is started", "---> [ 2/3 ] Task 'GetNode' is finished",
      "---> Task 'Missing' is started", expect.stringMatching(/^---> \[ 3\/3 \] Task 'Missing' is failed: got error response: rpc error: code = NotFound desc = .*no-such-disk/),
    ]);
    const json = (after: string) => {
      const start = lines.indexOf(after) + 1;
      const end = lines.findIndex((l, i) => i > start && l === '}');
      return JSON.parse(lines.slice(start, end + 1).join('\n'));
    };
    const net = json("---> [ 1/3 ] Task 'ApplyNetwork' is finished");
    expect(net).toMatchObject({ name: 'json-net', ipv4_cidr: '192.168.9.0/24', state: 'AVAILABLE', exact_state: 'AVAILABLE' });
    expect(net).not.toHaveProperty('ipv6_cidr');
    const node = json("---> [ 2/3 ] Task 'GetNode' is finished");
    expect(node).toMatchObject({ name: 'vm-host1', state: 'Ready', memory_bytes: expect.stringMatching(/^\d+$/), storage_bytes: expect.stringMatching(/^\d+$/), cpu_milli_cores: expect.any(Number) });
    expect(node).not.toHaveProperty('ipmi_address');
    await call('n0stack.pool.NetworkService', 'DeleteNetwork', { name: 'json-net' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
