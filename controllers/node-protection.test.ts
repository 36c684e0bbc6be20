// Issue [I]: a Node is not deleted from under what is placed on it. The seed's DeleteNode refuses
// up front (FAILED_PRECONDITION naming the VMs and disks), any other delete (ResourceService,
// kubectl, a store write) waits on the Node controller's protection finalizer, and an agent
// re-registering through the facade (ApplyNode) keeps spec fields it does not own. The real facade
// handlers over the admitting store, the real Node reconciler, KvStore semantics over memory.
import { FINALIZERS } from '../api/admission';
import { AdmittingStore } from '../api/admission/store';
import { nodeService } from '../api/server/node';
import type { Kind, KindMap } from '../api/types';
import { NodeReconciler } from './node';
import { MemoryStore } from './runtime/testing/memory-store';
import type { Cache, ReconcileContext } from './runtime/types';

const GiB = 2 ** 30;
const KINDS: Kind[] = ['Node', 'VirtualMachine', 'BlockStorage'];

describe('Node protection', () => {
  let store: MemoryStore;
  let facade: ReturnType<typeof nodeService>;
  const reconciler = new NodeReconciler();
  const call = { deadline: Date.now() + 60_000, signal: new AbortController().signal };

  async function ctx(): Promise<ReconcileContext> {
    const objects = new Map<Kind, KindMap[Kind][]>();
    for (const kind of KINDS) objects.set(kind, (await store.list(kind)).items);
    const list = <K extends Kind>(kind: K) => (objects.get(kind) ?? []) as KindMap[K][];
    const cache: Cache = { get: (kind, name) => list(kind).find((o) => o.metadata.name === name), list, byIndex: () => [] };
    return { store, cache, signal: new AbortController().signal, enqueue: () => undefined, events: new Proxy({} as NonNullable<ReconcileContext['events']>, { get: () => () => undefined }) } as ReconcileContext;
  }
  /** The agent's registration through the facade: only what it measures. */
  const register = () => facade.ApplyNode({ name: 'n1', address: '10.0.0.1', agent_endpoint: '10.0.0.1:20181', cpu_milli_cores: 4000, memory_bytes: String(8 * GiB), storage_bytes: String(100 * GiB), annotations: {}, labels: {} }, call);
  const failure = (p: Promise<unknown>) => p.then(() => { throw new Error('succeeded; it should have been refused'); }, (e: Error & { code?: string }) => e);

  beforeEach(async () => {
    store = new MemoryStore();
    facade = nodeService({ store: new AdmittingStore(store), defaultWaitMs: 1000 });
    await register();
    // A VM and a disk placed on n1 (their controllers wrote status.node_name).
    const vm = await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name: 'vm1' }, spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: GiB } } as KindMap['VirtualMachine']);
    await store.update({ ...vm, status: { node_name: 'n1', state: 'RUNNING' } }, { subresource: 'status' });
    const bs = await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'BlockStorage', metadata: { name: 'disk1' }, spec: { request_bytes: GiB, limit_bytes: GiB } } as KindMap['BlockStorage']);
    await store.update({ ...bs, status: { node_name: 'n1', state: 'AVAILABLE' } }, { subresource: 'status' });
  });
  afterEach(async () => { await store.close(); });

  it('DeleteNode is FAILED_PRECONDITION naming the VMs and disks placed on the node, and deletes nothing', async () => {
    const err = await failure(facade.DeleteNode({ name: 'n1' }, call));
    expect(err.code).toBe('FailedPrecondition');
    expect(err.message).toContain('Node "n1" is in use by VirtualMachine "vm1" (placed on it), BlockStorage "disk1" (placed on it)');
    expect((await store.get('Node', 'n1')).metadata.deletionTimestamp).toBeUndefined();
  });

  it('a Node deleted through another entrance waits for what is placed on it, naming it, then goes', async () => {
    await reconciler.reconcile('n1', await ctx());
    expect((await store.get('Node', 'n1')).metadata.finalizers).toContain(FINALIZERS.node);
    // As ResourceService.Delete or kubectl would: no up-front check.
    await store.delete('Node', 'n1');
    await reconciler.reconcile('n1', await ctx());
    const held = await store.get('Node', 'n1');
    expect(held.metadata.deletionTimestamp).toBeDefined();
    expect(held.status?.conditions?.find((c) => c.type === 'Deleting')).toMatchObject({
      status: 'True', reason: 'WaitingForDependants', message: 'deletion waits for VirtualMachine "vm1" (placed on it), BlockStorage "disk1" (placed on it)',
    });
    // A placed object going requeues the deleting node.
    expect(reconciler.watches[0].map(await store.get('VirtualMachine', 'vm1'), (await ctx()).cache)).toEqual(['n1']);

    await store.delete('VirtualMachine', 'vm1');
    await reconciler.reconcile('n1', await ctx());
    expect((await store.get('Node', 'n1')).status?.conditions?.find((c) => c.type === 'Deleting')?.message).toBe('deletion waits for BlockStorage "disk1" (placed on it)');
    await store.delete('BlockStorage', 'disk1');
    await reconciler.reconcile('n1', await ctx());
    await expect(store.get('Node', 'n1')).rejects.toThrow(/not found/i);
  });

  it('an agent re-registering through ApplyNode keeps unschedulable (and other fields it does not send)', async () => {
    await store.update({ ...(await store.get('Node', 'n1')), spec: { ...(await store.get('Node', 'n1')).spec, unschedulable: true, unit: 2, serial: 'SN-1' } });
    await register();
    expect((await store.get('Node', 'n1')).spec).toMatchObject({ unschedulable: true, unit: 2, serial: 'SN-1', address: '10.0.0.1', agent_endpoint: '10.0.0.1:20181' });
  });
});
