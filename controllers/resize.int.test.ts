// Two raises of VMs on one node that each fit alone but not together, written behind admission's
// back (as two UpdateVirtualMachine calls admitted side by side can be), then reconciled at the
// same time on a real etcd: the placement counter's CAS makes the later commit count the earlier
// raise, so the node's accepted compute (status.allocated_compute) never exceeds it, and no VM
// the node cannot hold is handed to the agent.
import type { AgentApi } from '../agent/api';
import type { Store } from '../api/store';
import { openTestEtcdStore } from '../api/store/testing/etcd';
import { API_VERSION, type Node, type VirtualMachine } from '../api/types';
import { snapshotContext } from './runtime/testing/snapshot';
import { VirtualMachineReconciler } from './virtualmachine';

jest.setTimeout(60_000);
const GiB = 2 ** 30;

let store: Store;
let close: () => Promise<void>;
beforeAll(async () => { ({ store, close } = await openTestEtcdStore('resize-race')); });
afterAll(async () => { await close?.(); });

test('concurrent raises that do not fit together: the counter lets at most what fits through, the rest stays at its size', async () => {
  const started: string[] = [];
  const agent = { ensureVm: async (req: { name: string; vcpus: number }) => { started.push(`${req.name}:${req.vcpus}`); return { name: req.name, present: true, runState: 'running' }; } } as unknown as AgentApi;
  const r = new VirtualMachineReconciler(() => agent);
  const node = await store.create({ apiVersion: API_VERSION, kind: 'Node', metadata: { name: 'n1' }, spec: { address: '10.255.0.1', cpu_milli_cores: 4000, memory_bytes: 8 * GiB, storage_bytes: 100 * GiB } } as Node);
  await store.update({ ...node, status: { state: 'Ready' } }, { subresource: 'status' });
  const names = ['vm1', 'vm2', 'vm3'];
  for (const name of names) {
    await store.create({ apiVersion: API_VERSION, kind: 'VirtualMachine', metadata: { name }, spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: GiB, node_name: 'n1' } } as VirtualMachine);
    await r.reconcile(name, await snapshotContext(store, r.indexes));
  }
  expect(started.sort()).toEqual(['vm1:1', 'vm2:1', 'vm3:1']);
  // 1 core free; each VM asks for one more: any one fits, two do not.
  for (const name of names) {
    const vm = await store.get('VirtualMachine', name);
    await store.update({ ...vm, spec: { ...vm.spec, limit_cpu_milli_core: 2000 } });
  }
  started.length = 0;
  const ctx = await snapshotContext(store, r.indexes);
  await Promise.all(names.map((name) => r.reconcile(name, ctx)));
  const vms = await Promise.all(names.map((n) => store.get('VirtualMachine', n)));
  const accepted = vms.reduce((sum, vm) => sum + (vm.status?.allocated_compute?.limit_cpu_milli_core ?? 0), 0);
  expect(accepted).toBeLessThanOrEqual(4000);
  for (const vm of vms.filter((v) => v.status?.allocated_compute?.limit_cpu_milli_core === 1000)) {
    expect(vm.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ reason: 'Unschedulable', message: expect.stringMatching(/^limit_cpu_milli_core: the resize does not fit node n1/) });
  }
  // Only what was accepted reached the agent, at its new size.
  expect(started.length).toBe((accepted - 3000) / 1000);
  expect(started.every((s) => s.endsWith(':2'))).toBe(true);
});
