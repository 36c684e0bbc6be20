// Fault: one host's agent stops for longer than the heartbeat timeout. Its Node goes NotReady,
// its VMs report state UNKNOWN (condition NodeNotReady) instead of a guess, and nothing is
// started twice: the other, healthy host gets no copy. When the agent returns, the VM is RUNNING
// again — the same QEMU process all along.
import { renderedNode } from '../api/placement';
import './quiet';
import { TestCloud } from './cloud';
import { emptyDisk, timing } from './images';

jest.setTimeout(600_000);

const MiB = 1024 ** 2;
const SCENARIO = 'node NotReady';
const HEARTBEAT_TIMEOUT_MS = 5000;
let cloud: TestCloud;
const call = (service: string, method: string, req: unknown) => cloud.client.call<any>(service, method, req);

beforeAll(async () => {
  cloud = await TestCloud.start({ store: 'embedded', nodes: ['host-a', 'host-b'], nodeHeartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS, heartbeatIntervalMs: 1000 });
}, 180_000);

afterAll(async () => {
  await cloud?.stop();
});

test('a VM the node refuses (no disk to boot) fails at once with the reason, not at the deadline', async () => {
  const started = Date.now();
  const err = await call('VirtualMachineService', 'CreateVirtualMachine', {
    name: 'diskless', request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 64 * MiB, limit_memory_bytes: 64 * MiB,
  }).then(() => undefined, (e: Error & { codeName?: string }) => e);
  expect(`${err?.codeName ?? ''} ${err?.message}`).toContain('FAILED_PRECONDITION');
  expect(err?.message).toMatch(/InvalidSpec.*refused.*disk/);
  expect(Date.now() - started).toBeLessThan(60_000);
  await call('VirtualMachineService', 'DeleteVirtualMachine', { name: 'diskless' });
  for (const host of ['host-a', 'host-b']) expect(Object.keys((await renderedNode(cloud.store, host)).status?.reserved_computes ?? {})).toEqual([]);
});

test('a silent node makes its VMs UNKNOWN and nothing moves or doubles', async () => {
  await emptyDisk(call, 'stranded-disk', 'host-b');
  const vm = await call('VirtualMachineService', 'CreateVirtualMachine', {
    name: 'stranded', block_storage_names: ['stranded-disk'], annotations: { 'n0core/provisioning/virtual_machine/request_node_name': 'host-b' },
    request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 64 * MiB, limit_memory_bytes: 64 * MiB,
  });
  expect(vm.state).toBe('RUNNING');
  const pids = cloud.qemuPids('host-b', 'stranded');
  expect(pids).toHaveLength(1);

  const stopped = Date.now();
  await cloud.stopHost('host-b');
  await cloud.waitNodes(['host-b'], 'NotReady', HEARTBEAT_TIMEOUT_MS + 30_000);
  timing(SCENARIO, 'agent stop→Node NotReady', Date.now() - stopped);
  const unknown = await cloud.waitVm('stranded', (v) => v.status?.state === 'UNKNOWN', 60_000);
  timing(SCENARIO, 'agent stop→VM UNKNOWN', Date.now() - stopped);
  const ready = unknown.status?.conditions?.find((c) => c.type === 'Ready');
  expect(ready).toMatchObject({ status: 'Unknown', reason: 'NodeNotReady' });
  expect(ready?.message).toContain('host-b');
  expect((await call('VirtualMachineService', 'GetVirtualMachine', { name: 'stranded' })).state).toBe('UNKNOWN');
  expect((await call('NodeService', 'GetNode', { name: 'host-b' })).state).toBe('NotReady');

  // Several reconcile periods later: still one VM, on host-b, and host-a has nothing of it.
  await new Promise((r) => setTimeout(r, 12_000));
  const still = await cloud.store.get('VirtualMachine', 'stranded');
  expect(still.status?.node_name).toBe('host-b');
  expect(still.status?.state).toBe('UNKNOWN');
  expect(cloud.qemuPids('host-b', 'stranded')).toEqual(pids);
  expect(cloud.qemuPids('host-a', 'stranded')).toEqual([]);
  expect((await cloud.observe('host-a')).vms).toEqual([]);
  expect(Object.keys((await renderedNode(cloud.store, 'host-a')).status?.reserved_computes ?? {})).toEqual([]);

  // The agent returns: the VM is known again, the same process.
  const back = Date.now();
  await cloud.restartHost('host-b');
  await cloud.waitNodes(['host-b'], 'Ready', 30_000);
  await cloud.waitVm('stranded', (v) => v.status?.state === 'RUNNING', 60_000);
  timing(SCENARIO, 'agent back→VM RUNNING', Date.now() - back);
  expect(cloud.qemuPids('host-b', 'stranded')).toEqual(pids);

  await call('VirtualMachineService', 'DeleteVirtualMachine', { name: 'stranded' });
  await call('BlockStorageService', 'DeleteBlockStorage', { name: 'stranded-disk' });
  expect(cloud.qemuPids('host-b', 'stranded')).toEqual([]);
  expect((await cloud.observe('host-b')).vms).toEqual([]);
});
