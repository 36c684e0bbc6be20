// Issue [I], fencing: a status computed from an old read must not land on a newer object. mutate()
// re-applies its change onto whatever is current, so without a resourceVersion fence a reconcile
// that read generation 1 (say a deposed leader, or one that waited long on an agent) overwrote a
// status another reconcile had written for generation 2. KvStore semantics over memory, the real
// VM reconciler; the agent's ensureVm is where the world moves on.
import type { AgentApi } from '../agent/api';
import { mutate } from '../api/store/mutate';
import type { Kind, KindMap, Node } from '../api/types';
import { MemoryStore } from './runtime/testing/memory-store';
import { NO_EVENTS } from './runtime/events';
import type { Cache, ReconcileContext } from './runtime/types';
import { BlockStorageReconciler } from './blockstorage';
import { VirtualMachineReconciler } from './virtualmachine';

const GiB = 2 ** 30;

describe('a status computed from an old read', () => {
  let store: MemoryStore;
  afterEach(async () => { await store.close(); });

  async function ctx(): Promise<ReconcileContext> {
    const objects = new Map<Kind, KindMap[Kind][]>();
    for (const kind of ['Node', 'VirtualMachine', 'BlockStorage', 'Network'] as Kind[]) objects.set(kind, (await store.list(kind)).items);
    const list = <K extends Kind>(kind: K) => (objects.get(kind) ?? []) as KindMap[K][];
    const cache: Cache = { get: (kind, name) => list(kind).find((o) => o.metadata.name === name), list, byIndex: () => [] };
    return { store, cache, signal: new AbortController().signal, enqueue: () => undefined, events: NO_EVENTS };
  }

  it('is refused with Conflict (the reconcile is retried) instead of overwriting the newer status', async () => {
    store = new MemoryStore();
    const n = await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Node', metadata: { name: 'n1' }, spec: { address: '10.0.0.1', cpu_milli_cores: 4000, memory_bytes: 8 * GiB } } as Node);
    await store.update({ ...n, status: { state: 'Ready' } }, { subresource: 'status' });
    const vm = await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name: 'vm1', finalizers: ['n0stack.io/virtualmachine'] }, spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: GiB, uuid: '0b3a7c1e-8f6d-4c2a-9e5b-1d2f3a4b5c6d' } } as KindMap['VirtualMachine']);
    await store.update({ ...vm, status: { node_name: 'n1', state: 'RUNNING', observedGeneration: 1 } }, { subresource: 'status' });

    const agent = {
      ensureVm: async (req: { name: string }) => {
        // While this (slow, or deposed) reconcile waits here, the VM is told to stop (generation
        // 2) and a newer reconcile has already recorded that.
        await mutate(store, 'VirtualMachine', 'vm1', (v) => { v.spec.run_state = 'SHUTDOWN'; });
        await mutate(store, 'VirtualMachine', 'vm1', (v) => { v.status = { ...v.status, state: 'SHUTDOWN', observedGeneration: 2 }; }, { subresource: 'status' });
        return { name: req.name, present: true, runState: 'running' };
      },
    } as unknown as AgentApi;
    const r = new VirtualMachineReconciler(() => agent);
    await expect(r.reconcile('vm1', await ctx())).rejects.toMatchObject({ code: 'Conflict' });
    const after = await store.get('VirtualMachine', 'vm1');
    expect(after.metadata.generation).toBe(2);
    expect(after.status).toMatchObject({ state: 'SHUTDOWN', observedGeneration: 2 });
  });

  it('BlockStorage: a VM claiming the disk between the read and the write is not overwritten by AVAILABLE', async () => {
    store = new MemoryStore();
    const bs = await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'BlockStorage', metadata: { name: 'disk1', finalizers: ['n0stack.io/blockstorage'] }, spec: { request_bytes: GiB, limit_bytes: GiB } } as KindMap['BlockStorage']);
    await store.update({ ...bs, status: { node_name: 'n1', state: 'PENDING' } }, { subresource: 'status' });
    let made = false;
    const agent = { ensureBlockStorage: async (req: { name: string; limitBytes: number }) => { made = true; return { name: req.name, present: true, info: { virtualSize: req.limitBytes } }; } } as unknown as AgentApi;
    // The reconciler's read after the agent made the disk; the VM controller's claim lands right after it.
    const claiming = new Proxy(store, {
      get: (t, p, r) => p === 'get'
        ? async (kind: Kind, name: string) => {
          const got = await t.get(kind, name);
          if (made && kind === 'BlockStorage') {
            made = false;
            await mutate(store, 'BlockStorage', 'disk1', (b) => { b.status = { ...b.status, in_use_by: 'vm1', state: 'IN_USE' }; }, { subresource: 'status' });
          }
          return got;
        }
        : Reflect.get(t, p, r),
    });
    const r = new BlockStorageReconciler(() => agent);
    await expect(r.reconcile('disk1', { ...(await ctx()), store: claiming })).rejects.toMatchObject({ code: 'Conflict' });
    expect((await store.get('BlockStorage', 'disk1')).status).toMatchObject({ in_use_by: 'vm1', state: 'IN_USE' });
    // The requeued pass sees the claim.
    await r.reconcile('disk1', await ctx());
    expect((await store.get('BlockStorage', 'disk1')).status).toMatchObject({ in_use_by: 'vm1', state: 'IN_USE' });
  });
});
