// Protection through every entrance (issue [I]): the kinds' admission and the controllers'
// protection finalizers, on a real control plane (facade + controllers + a real agent making
// qcow2 files with qemu-img) over the embedded store and etcd. The two scenarios verified on
// `n0stack up` before: a base disk deleted under its copy-on-write child, and a Network's cidr
// changed by `n0ctl apply` (ResourceService) under a reserved interface.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestCloud } from '../e2e/cloud';
import { execFileSync } from 'node:child_process';

jest.setTimeout(300_000);

const MiB = 1024 * 1024;
const NODE = { 'n0core/provisioning/block_storage/request_node_name': 'vm-host1' };

async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  const err = await promise.then(() => undefined, (e) => e as Error & { codeName?: string });
  if (!err) throw new Error('the call succeeded; it should have been refused');
  return { code: String((err as any).codeName ?? ''), message: err.message };
}

describe.each(['embedded', 'etcd'] as const)('protection and admission through every entrance (%s store)', (storeKind) => {
  let cloud: TestCloud;
  const call = (service: string, method: string, req: unknown) => cloud.client.call<any>(service, method, req);
  const apply = async (doc: object) => {
    const res = await call('ResourceService', 'Apply', { document_json: JSON.stringify({ apiVersion: 'n0stack.io/v1alpha1', ...doc }), wait: true });
    return { result: res.result as string, doc: JSON.parse(res.document_json) };
  };
  const getDoc = async (kind: string, name: string) => JSON.parse((await call('ResourceService', 'Get', { kind, name })).document_json);
  const disk = (name: string) => path.join(cloud.hosts.get('vm-host1')!.dataDir, 'disks', `${name}.qcow2`);
  /** The backing file qemu-img reports for an overlay, and whether that file exists. */
  const backingOf = (name: string) => {
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', disk(name)], { encoding: 'utf8' }));
    const file = info['full-backing-filename'] ?? info['backing-filename'];
    return { file, exists: !!file && fs.existsSync(path.isAbsolute(file) ? file : path.join(path.dirname(disk(name)), file)) };
  };
  const gone = async (kind: string, name: string, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!(await cloud.store.get(kind as 'BlockStorage', name).catch(() => undefined))) return true;
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  };

  beforeAll(async () => {
    cloud = await TestCloud.start({ store: storeKind, nodes: ['vm-host1'], underlay: false });
  });
  afterAll(async () => {
    await cloud?.stop();
  });

  it('seed RPCs: DeleteBlockStorage of an image\'s base disk after DeleteImage is refused while its generated child uses it', async () => {
    await call('BlockStorageService', 'CreateBlockStorage', { name: 'base-disk', annotations: NODE, request_bytes: MiB, limit_bytes: 64 * MiB });
    await call('ImageService', 'ApplyImage', { name: 'base-image' });
    await call('ImageService', 'RegisterBlockStorage', { image_name: 'base-image', block_storage_name: 'base-disk', tags: ['v1'] });
    const child = await call('ImageService', 'GenerateBlockStorage', { image_name: 'base-image', tag: 'v1', block_storage_name: 'child-disk', request_bytes: MiB, limit_bytes: 64 * MiB });
    expect(child.state).toBe('AVAILABLE');
    await call('ImageService', 'DeleteImage', { name: 'base-image' });
    expect((await call('BlockStorageService', 'GetBlockStorage', { name: 'base-disk' })).state).toBe('AVAILABLE');

    const refused = await failure(call('BlockStorageService', 'DeleteBlockStorage', { name: 'base-disk' }));
    expect(refused.code).toBe('FAILED_PRECONDITION');
    expect(refused.message).toMatch(/BlockStorage "child-disk" \(uses it as its backing file\)/);
    // Nothing was written: the base is not marked, and the child's backing file is there.
    expect((await cloud.store.get('BlockStorage', 'base-disk')).metadata.deletionTimestamp).toBeUndefined();
    expect(backingOf('child-disk')).toEqual({ file: expect.stringContaining('base-disk.qcow2'), exists: true });

    await call('BlockStorageService', 'DeleteBlockStorage', { name: 'child-disk' });
    await call('BlockStorageService', 'DeleteBlockStorage', { name: 'base-disk' });
    expect(fs.existsSync(disk('base-disk'))).toBe(false);
    expect(fs.existsSync(disk('child-disk'))).toBe(false);
  });

  it('ResourceService and a direct store delete: the base stays in deletion, saying what it waits for, and goes after its child', async () => {
    const bsDoc = (name: string, spec: object = {}) => ({ kind: 'BlockStorage', metadata: { name }, spec: { request_bytes: MiB, limit_bytes: 64 * MiB, node_name: 'vm-host1', ...spec } });
    expect((await apply(bsDoc('base2'))).result).toBe('created');
    expect((await apply(bsDoc('child2', { backing_block_storage: 'base2' }))).doc.status.state).toBe('AVAILABLE');

    const waiting = await failure(call('ResourceService', 'Delete', { kind: 'BlockStorage', name: 'base2', wait: true }));
    expect(waiting.code).toBe('FAILED_PRECONDITION');
    expect(waiting.message).toMatch(/marked for deletion and waits: deletion waits for BlockStorage "child2" \(uses it as its backing file\)/);
    const marked = await getDoc('BlockStorage', 'base2');
    expect(marked.metadata.deletionTimestamp).toBeDefined();
    expect(marked.status.conditions.find((c: any) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'WaitingForDependants', message: expect.stringMatching(/child2/) });
    expect(backingOf('child2').exists).toBe(true);

    // Nothing new is built on a disk in deletion, through either entrance.
    const late = await failure(apply(bsDoc('late-child', { backing_block_storage: 'base2' })));
    expect(late).toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/backing_block_storage "base2" is being deleted/) });
    const lateCopy = await failure(call('BlockStorageService', 'CopyBlockStorage', { name: 'late-copy', source_block_storage: 'base2', request_bytes: MiB, limit_bytes: 64 * MiB }));
    expect(lateCopy).toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/being deleted/) });

    // A direct store delete (as a writer with store access makes it) is held the same way.
    await apply(bsDoc('base3'));
    await apply(bsDoc('child3', { backing_block_storage: 'base3' }));
    await cloud.store.delete('BlockStorage', 'base3');
    await new Promise((r) => setTimeout(r, 1500));
    const held = await cloud.store.get('BlockStorage', 'base3');
    expect(held.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ reason: 'WaitingForDependants', message: expect.stringMatching(/child3/) });
    expect(backingOf('child3').exists).toBe(true);

    await call('ResourceService', 'Delete', { kind: 'BlockStorage', name: 'child2', wait: true });
    expect(await gone('BlockStorage', 'base2')).toBe(true);
    expect(fs.existsSync(disk('base2'))).toBe(false);
    await cloud.store.delete('BlockStorage', 'child3');
    expect(await gone('BlockStorage', 'child3')).toBe(true);
    expect(await gone('BlockStorage', 'base3')).toBe(true);
    expect(fs.existsSync(disk('base3'))).toBe(false);
  });

  it('a Network\'s ipv4_cidr cannot change under a reserved interface through ApplyNetwork or ResourceService; its deletion waits for the interface', async () => {
    await call('NetworkService', 'ApplyNetwork', { name: 'cidr-net', ipv4_cidr: '10.77.0.0/24' });
    const reserved = await call('NetworkService', 'ReserveNetworkInterface', { network_name: 'cidr-net', network_interface_name: 'port-a', ipv4_address: '10.77.0.5' });
    expect(reserved.reserved_network_interfaces['port-a'].ipv4_address).toBe('10.77.0.5');

    const viaApply = await failure(apply({ kind: 'Network', metadata: { name: 'cidr-net' }, spec: { ipv4_cidr: '10.88.0.0/24' } }));
    expect(viaApply).toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/ipv4_cidr cannot change \(10\.77\.0\.0\/24 -> 10\.88\.0\.0\/24\)/) });
    const viaSeed = await failure(call('NetworkService', 'ApplyNetwork', { name: 'cidr-net', ipv4_cidr: '10.88.0.0/24' }));
    expect(viaSeed).toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/ipv4_cidr/) });
    const dryRun = await failure(call('ResourceService', 'Apply', { document_json: JSON.stringify({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name: 'cidr-net' }, spec: { ipv4_cidr: '10.88.0.0/24' } }), dry_run: true }));
    expect(dryRun.code).toBe('FAILED_PRECONDITION');
    expect((await getDoc('Network', 'cidr-net')).spec.ipv4_cidr).toBe('10.77.0.0/24');
    // What may change still does.
    expect((await apply({ kind: 'Network', metadata: { name: 'cidr-net' }, spec: { ipv4_cidr: '10.77.0.0/24', gateway_ipv4: '10.77.0.254' } })).result).toBe('configured');

    const seedDelete = await failure(call('NetworkService', 'DeleteNetwork', { name: 'cidr-net' }));
    expect(seedDelete).toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/reserved interfaces: port-a/) });
    const resourceDelete = await failure(call('ResourceService', 'Delete', { kind: 'Network', name: 'cidr-net', wait: true }));
    expect(resourceDelete).toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/NetworkInterface "port-a" \(reserved on it\)/) });
    expect((await getDoc('Network', 'cidr-net')).metadata.deletionTimestamp).toBeDefined();
    await call('NetworkService', 'ReleaseNetworkInterface', { network_name: 'cidr-net', network_interface_name: 'port-a' });
    expect(await gone('Network', 'cidr-net', 30_000)).toBe(true);
  });

  it('a VM\'s nics and block_storage_names are fixed after creation through ResourceService; its disk and network wait for it', async () => {
    await call('NetworkService', 'ApplyNetwork', { name: 'vm-net', ipv4_cidr: '10.66.0.0/24' });
    await apply({ kind: 'BlockStorage', metadata: { name: 'vm-disk' }, spec: { request_bytes: MiB, limit_bytes: 64 * MiB, node_name: 'vm-host1' } });
    await apply({ kind: 'BlockStorage', metadata: { name: 'other-disk' }, spec: { request_bytes: MiB, limit_bytes: 64 * MiB, node_name: 'vm-host1' } });
    const vmDoc = (spec: object) => ({ kind: 'VirtualMachine', metadata: { name: 'fixed-vm' }, spec: {
      limit_cpu_milli_core: 1000, limit_memory_bytes: 64 * MiB, run_state: 'SHUTDOWN', block_storage_names: ['vm-disk'], nics: [{ network_name: 'vm-net' }], ...spec,
    } });
    expect((await apply(vmDoc({}))).doc.status.state).toBe('SHUTDOWN');
    expect((await call('NetworkService', 'GetNetwork', { name: 'vm-net' })).reserved_network_interfaces['fixed-vm.0']).toBeDefined();

    const nics = await failure(apply(vmDoc({ nics: [{ network_name: 'vm-net' }, { network_name: 'vm-net' }] })));
    expect(nics).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/nics cannot change after creation/) });
    const disks = await failure(apply(vmDoc({ block_storage_names: ['other-disk'] })));
    expect(disks).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/block_storage_names cannot change/) });
    expect((await getDoc('VirtualMachine', 'fixed-vm')).spec.block_storage_names).toEqual(['vm-disk']);
    // What may change does: cpu is applied at the next boot.
    expect((await apply(vmDoc({ limit_cpu_milli_core: 2000 }))).result).toBe('configured');

    const diskDelete = await failure(call('BlockStorageService', 'DeleteBlockStorage', { name: 'vm-disk' }));
    expect(diskDelete).toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/fixed-vm/) });
    const netDelete = await failure(call('ResourceService', 'Delete', { kind: 'Network', name: 'vm-net', wait: true }));
    expect(netDelete).toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/VirtualMachine "fixed-vm" \(nics\[0\] is on it\)/) });
    // A dry run judges the document alone: what it names may come from the same manifest.
    const dry = (spec: object) => call('ResourceService', 'Apply', { dry_run: true, document_json: JSON.stringify({ apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name: 'dry-vm' }, spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: 64 * MiB, ...spec } }) });
    expect((await dry({ block_storage_names: ['made-by-the-same-manifest'] })).result).toBe('created');
    expect(await failure(dry({ limit_cpu_milli_core: 1500 }))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/limit_cpu_milli_core/) });
    expect(await cloud.store.get('VirtualMachine', 'dry-vm').catch(() => undefined)).toBeUndefined();
    // A new VM may not name the network on its way out.
    const late = await failure(apply({ kind: 'VirtualMachine', metadata: { name: 'late-vm' }, spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: 64 * MiB, run_state: 'SHUTDOWN', nics: [{ network_name: 'vm-net' }] } }));
    expect(late).toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/nics\[0\]\.network_name: Network "vm-net" is being deleted/) });

    await call('VirtualMachineService', 'DeleteVirtualMachine', { name: 'fixed-vm' });
    expect(await gone('Network', 'vm-net', 30_000)).toBe(true);
    await call('BlockStorageService', 'DeleteBlockStorage', { name: 'vm-disk' });
    await call('BlockStorageService', 'DeleteBlockStorage', { name: 'other-disk' });
  });

  // Last: it leaves the node in deletion (held by the disk) until the cloud stops.
  it('DeleteNode is refused while a disk is placed on the node, naming it; a ResourceService delete waits on the protection finalizer', async () => {
    await call('BlockStorageService', 'CreateBlockStorage', { name: 'node-disk', annotations: NODE, request_bytes: MiB, limit_bytes: 64 * MiB });
    const refused = await failure(call('NodeService', 'DeleteNode', { name: 'vm-host1' }));
    expect(refused).toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/Node "vm-host1" is in use by BlockStorage "node-disk" \(placed on it\)/) });
    expect((await cloud.store.get('Node', 'vm-host1')).metadata.deletionTimestamp).toBeUndefined();

    const waiting = await failure(call('ResourceService', 'Delete', { kind: 'Node', name: 'vm-host1', wait: true }));
    expect(waiting).toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/marked for deletion and waits: deletion waits for BlockStorage "node-disk" \(placed on it\)/) });
    const deadline = Date.now() + 30_000;
    let deleting: { message?: string } | undefined;
    while (!deleting && Date.now() < deadline) {
      deleting = (await cloud.store.get('Node', 'vm-host1')).status?.conditions?.find((c) => c.type === 'Deleting');
      if (!deleting) await new Promise((r) => setTimeout(r, 200));
    }
    expect(deleting?.message).toBe('deletion waits for BlockStorage "node-disk" (placed on it)');
    const node = await cloud.store.get('Node', 'vm-host1');
    expect(node.metadata.deletionTimestamp).toBeDefined();
    // The host keeps serving what is on it while the delete waits.
    expect(node.status?.state).toBe('Ready');
    expect((await call('BlockStorageService', 'GetBlockStorage', { name: 'node-disk' })).state).toBe('AVAILABLE');
    expect(fs.existsSync(disk('node-disk'))).toBe(true);
  });
});
