// Fault: kill -9 the controllers in the middle of a VM create, at several points of the
// reconcile (after scheduling, after the nic reservation, after QEMU started). After a restart the
// VM converges to Running with exactly one QEMU process, one IP reservation and one compute
// reservation; the facade call that was waiting all along returns RUNNING.
import { renderedNode } from '../api/placement';
import './quiet';
import { TestCloud } from './cloud';
import { RestartableEtcd } from './etcd';
import { emptyDisk, timing } from './images';
import { nicKey } from '../controllers/virtualmachine';
import { listAddresses } from '../api/addresses';

jest.setTimeout(900_000);

const MiB = 1024 ** 2;
const SCENARIO = 'controllers kill -9';
let etcd: RestartableEtcd | undefined;
let cloud: TestCloud;
const call = (service: string, method: string, req: unknown) => cloud.client.call<any>(service, method, req);

beforeAll(async () => {
  if (!process.env.N0STACK_TEST_ETCD) etcd = await RestartableEtcd.start();
  cloud = await TestCloud.start({ store: 'etcd', etcdEndpoint: etcd?.endpoint, nodes: ['host-a'], controllers: 'process' });
  await call('NetworkService', 'ApplyNetwork', { name: 'crash-net', ipv4_cidr: '192.168.30.0/24' });
}, 180_000);

afterAll(async () => {
  await cloud?.stop();
  await etcd?.stop();
});

type Point = 'scheduled' | 'nic-reserved' | 'qemu-started';

/**
 * Kills the controllers (-9, synchronously in the watch loop, so they get no further than the
 * store's watch latency allows) as soon as the create reached `point`. Started before the create.
 */
async function killAt(vm: string, point: Point, signal: AbortSignal): Promise<boolean> {
  const kill = () => cloud.controllersProc!.child.kill('SIGKILL');
  if (point === 'qemu-started') {
    // QEMU is no store event: poll for the process (every 10 ms).
    while (!signal.aborted) {
      if (cloud.qemuPids('host-a', vm).length > 0) { kill(); return true; }
      await new Promise((r) => setTimeout(r, 10));
    }
    return false;
  }
  // nic-reserved: the first address object (IPv4, created before the MAC): the next pass must find it as its own.
  const kind = point === 'scheduled' ? 'VirtualMachine' : 'NetworkAddress';
  const { resourceVersion } = await cloud.store.list(kind);
  for await (const event of cloud.store.watch(kind, { resourceVersion, signal })) {
    const obj = event.object as any;
    const hit = point === 'scheduled'
      ? obj.metadata.name === vm && Boolean(obj.status?.node_name)
      : obj.spec?.network_name === 'crash-net' && obj.spec?.holder_key === nicKey(vm, 0);
    if (hit) { kill(); return true; }
  }
  return false;
}

/** Where the create really was when the controllers died (they may have gone a step further). */
async function progress(vm: string): Promise<string> {
  const doc = await cloud.store.get('VirtualMachine', vm).catch(() => undefined);
  const held = (await listAddresses(cloud.store, 'crash-net')).filter((a) => a.spec.holder_key === nicKey(vm, 0)).map((a) => a.spec.family);
  return [
    doc?.status?.node_name ? 'scheduled' : 'unscheduled',
    held.length ? `nic holds ${held.join('+')}` : 'no nic',
    `${cloud.qemuPids('host-a', vm).length} qemu`,
    `state ${doc?.status?.state ?? '-'}`,
  ].join(', ');
}

test.each(['scheduled', 'nic-reserved', 'qemu-started'] as Point[])('killed after %s, the create converges once', async (point) => {
  const vm = `crash-${point}`;
  await emptyDisk(call, `${vm}-disk`, 'host-a');
  const watching = new AbortController();
  const timer = setTimeout(() => watching.abort(), 120_000);
  const killed = killAt(vm, point, watching.signal);
  await new Promise((r) => setTimeout(r, 200));
  const started = Date.now();
  const create = call('VirtualMachineService', 'CreateVirtualMachine', {
    name: vm, block_storage_names: [`${vm}-disk`], request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 64 * MiB, limit_memory_bytes: 64 * MiB,
    nics: [{ network_name: 'crash-net' }],
  });
  create.catch(() => undefined);
  let hit = false;
  try {
    hit = await killed;
  } finally {
    clearTimeout(timer);
    watching.abort();
  }
  expect(hit).toBe(true);
  await cloud.killControllers();
  process.stderr.write(`[e2e] ${SCENARIO} at ${point}: ${await progress(vm)}\n`);
  const restarted = Date.now();
  await cloud.startControllersProcess();
  const result = await create;
  timing(SCENARIO, `${point}: create→Running (with a crash)`, Date.now() - started);
  timing(SCENARIO, `${point}: restart→Running`, Date.now() - restarted);
  expect(result.state).toBe('RUNNING');

  // Exactly one of everything.
  expect(cloud.qemuPids('host-a', vm)).toHaveLength(1);
  const observed = await cloud.observe('host-a');
  expect(observed.vms.filter((v) => v.name === vm)).toHaveLength(1);
  const stored = await cloud.store.get('VirtualMachine', vm);
  const mine = (await listAddresses(cloud.store, 'crash-net')).filter((a) => a.spec.virtual_machine_name === vm);
  expect(mine.map((a) => `${a.spec.holder_key} ${a.spec.virtual_machine_uid} ${a.spec.family} ${a.spec.address}`).sort()).toEqual([
    `${nicKey(vm, 0)} ${stored.metadata.uid} ipv4 ${result.nics[0].ipv4_address}`, `${nicKey(vm, 0)} ${stored.metadata.uid} mac ${result.nics[0].hardware_address}`,
  ]);
  const node = await renderedNode(cloud.store, 'host-a');
  expect(Object.keys(node.status?.reserved_computes ?? {}).filter((k) => k === vm)).toEqual([vm]);
  const tapsOfVm = observed.networks.flatMap((n) => n.taps);
  expect(tapsOfVm.length).toBe(observed.vms.length);
});

test('deleting the crashed creates leaves nothing behind', async () => {
  for (const point of ['scheduled', 'nic-reserved', 'qemu-started']) {
    await call('VirtualMachineService', 'DeleteVirtualMachine', { name: `crash-${point}` });
    await call('BlockStorageService', 'DeleteBlockStorage', { name: `crash-${point}-disk` });
  }
  expect(await listAddresses(cloud.store, 'crash-net')).toEqual([]);
  await call('NetworkService', 'DeleteNetwork', { name: 'crash-net' });
  const node = await renderedNode(cloud.store, 'host-a');
  expect(node.status?.reserved_computes ?? {}).toEqual({});
  const observed = await cloud.observe('host-a');
  expect(observed.vms).toEqual([]);
  expect(observed.networks.filter((n) => n.present)).toEqual([]);
  expect(observed.blockStorages.filter((b) => b.present)).toEqual([]);
  for (const point of ['scheduled', 'nic-reserved', 'qemu-started']) expect(cloud.qemuPids('host-a', `crash-${point}`)).toEqual([]);
});
