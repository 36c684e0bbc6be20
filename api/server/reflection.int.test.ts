// Issue [C]'s proof: a generic gRPC client that knows nothing but server reflection (no .proto
// files) creates a network, fetches a disk, registers an image, generates a block storage from
// it and boots a VM on it — each call returning only when its status says so.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { GrpcReflection } from 'grpc-js-reflection-client';
import { TestCloud } from '../../e2e/cloud';
import { buildTestBootDisk } from '../../agent/drivers/testing/bootdisk';

jest.setTimeout(400_000);

let cloud: TestCloud;
let server: http.Server;
let url: string;

beforeAll(async () => {
  const disk = await buildTestBootDisk();
  server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Length': fs.statSync(disk).size });
    fs.createReadStream(disk).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/disk.qcow2`;
  cloud = await TestCloud.start({ store: 'embedded', nodes: ['vm-host1'] });
});

afterAll(async () => {
  await cloud?.stop();
  await new Promise((r) => server?.close(r));
});

test('a reflection-only client drives the seed flow end to end', async () => {
  const target = cloud.endpoint;
  // TLS like every client of the facade: the CA from the config `n0stack up` writes.
  const credentials = grpc.credentials.createSsl(fs.readFileSync(cloud.caFile));
  const reflection = new GrpcReflection(target, credentials);
  const services = await reflection.listServices();
  // The seed's full names (n0proto 0.2.94) and ours.
  for (const s of ['n0stack.pool.NodeService', 'n0stack.pool.NetworkService', 'n0stack.provisioning.BlockStorageService', 'n0stack.deployment.ImageService', 'n0stack.provisioning.VirtualMachineService', 'n0stack.ResourceService']) {
    expect(services).toContain(s);
  }
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${cloud.token}`);
  const clients = new Map<string, grpc.Client>();
  async function call(service: string, method: string, request: unknown): Promise<any> {
    if (!clients.has(service)) {
      const fullName = services.find((s) => s.endsWith(`.${service}`))!;
      const descriptor = await reflection.getDescriptorBySymbol(fullName);
      const pkg = descriptor.getPackageObject({ keepCase: true, longs: String, enums: String, defaults: true, oneofs: true }) as any;
      const Ctor = fullName.split('.').reduce((o, part) => o[part], pkg);
      clients.set(service, new Ctor(target, credentials));
    }
    const client = clients.get(service) as any;
    return new Promise((resolve, reject) => client[method](request, metadata, { deadline: Date.now() + 300_000 }, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))));
  }
  try {
    expect((await call('NetworkService', 'ApplyNetwork', { name: 'refl-net', ipv4_cidr: '192.168.5.0/24' })).state).toBe('AVAILABLE');
    const fetched = await call('BlockStorageService', 'FetchBlockStorage', { name: 'refl-base', request_bytes: 64 << 20, limit_bytes: 1 << 30, source_url: url });
    expect(fetched.state).toBe('AVAILABLE');
    await call('ImageService', 'ApplyImage', { name: 'refl-image' });
    const registered = await call('ImageService', 'RegisterBlockStorage', { image_name: 'refl-image', block_storage_name: 'refl-base', tags: ['v1'] });
    expect(registered.registered_block_storages.map((r: any) => r.block_storage_name)).toEqual(['refl-base']);
    // The reflection client's descriptors carry maps as their wire form: repeated key/value entries.
    expect(registered.tags).toEqual([{ key: 'v1', value: 'refl-base' }]);
    const generated = await call('ImageService', 'GenerateBlockStorage', { image_name: 'refl-image', tag: 'v1', block_storage_name: 'refl-disk', request_bytes: 64 << 20, limit_bytes: 1 << 30 });
    expect(generated.state).toBe('AVAILABLE');
    const vm = await call('VirtualMachineService', 'CreateVirtualMachine', {
      name: 'refl-vm', request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: String(256 << 20), limit_memory_bytes: String(256 << 20),
      block_storage_names: ['refl-disk'], nics: [{ network_name: 'refl-net' }],
    });
    expect(vm.state).toBe('RUNNING');
    expect(vm.nics[0].ipv4_address).toBe('192.168.5.1');
    // A call without the token is refused.
    const anonymous = new (Object.getPrototypeOf(clients.get('NetworkService')!).constructor)(target, credentials);
    const err = await new Promise<grpc.ServiceError>((resolve) => anonymous.GetNetwork({ name: 'refl-net' }, (e: grpc.ServiceError) => resolve(e)));
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    anonymous.close();

    await call('VirtualMachineService', 'DeleteVirtualMachine', { name: 'refl-vm' });
    await call('BlockStorageService', 'DeleteBlockStorage', { name: 'refl-disk' });
    await call('ImageService', 'DeleteImage', { name: 'refl-image' });
    await call('BlockStorageService', 'DeleteBlockStorage', { name: 'refl-base' });
    await call('NetworkService', 'DeleteNetwork', { name: 'refl-net' });
    const observed = await cloud.hosts.get('vm-host1')!.agent.agent.observe();
    expect(observed.vms).toEqual([]);
    expect(observed.blockStorages.filter((b) => b.present)).toEqual([]);
  } finally {
    for (const c of clients.values()) c.close();
  }
});
