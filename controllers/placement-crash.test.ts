// Issue [I], "no leaks", with usage derived from what is placed (api/placement.ts): the VM and
// BlockStorage reconcilers record status.node_name, then commit against the Node's placement
// counter (two objects, two writes). A controller killed between the two must leak nothing and
// overbook nothing: the record already counts for every later placer, the next pass commits it,
// and a delete releases it by the object's going. Real store semantics (KvStore over memory),
// the real reconcilers, a fake agent that only answers.
// Also here: a VM must not claim a disk that is being deleted (the claim path, not admission).
import type { AgentApi } from '../agent/api';
import { renderFromStore } from '../api/placement';
import type { Store } from '../api/store/store';
import type { Kind, KindMap, Node } from '../api/types';
import { BlockStorageReconciler } from './blockstorage';
import { MemoryStore } from './runtime/testing/memory-store';
import { snapshotContext } from './runtime/testing/snapshot';
import type { Cache, ReconcileContext, Reconciler } from './runtime/types';
import { VirtualMachineReconciler } from './virtualmachine';

const GiB = 2 ** 30;
const KINDS: Kind[] = ['Node', 'VirtualMachine', 'BlockStorage', 'Network', 'Image', 'Reservation'];

function node(name: string): Node {
  return {
    apiVersion: 'n0stack.io/v1alpha1', kind: 'Node', metadata: { name },
    spec: { address: '10.255.0.1', cpu_milli_cores: 4000, memory_bytes: 8 * GiB, storage_bytes: 100 * GiB },
    status: { state: 'Ready', conditions: [{ type: 'Ready', status: 'True', reason: 'AgentHeartbeat', message: 'test', lastTransitionTime: '2026-01-01T00:00:00Z' }] },
  } as Node;
}

/** The store as a controller killed right after recording a placement sees it: the commit on the Node never happens. */
function killedBeforeCommitting(store: Store): Store {
  return new Proxy(store, {
    get: (target, prop, receiver) => prop === 'update'
      ? (obj: KindMap[Kind], o?: { subresource?: 'status' }) => {
        if (obj.kind === 'Node' && (obj.status as Node['status'])?.placement) return Promise.reject(new Error('controller killed'));
        return target.update(obj, o);
      }
      : Reflect.get(target, prop, receiver),
  });
}

describe('a controller killed between recording a placement and committing it', () => {
  let store: MemoryStore;
  const agentCalls: string[] = [];
  const agent = {
    ensureVm: async (req: { name: string }) => { agentCalls.push(`ensureVm ${req.name}`); return { name: req.name, present: true, runState: 'running' }; },
    deleteVm: async (name: string) => { agentCalls.push(`deleteVm ${name}`); },
    ensureBlockStorage: async (req: { name: string; limitBytes: number }) => { agentCalls.push(`ensureBlockStorage ${req.name}`); return { name: req.name, present: true, info: { virtualSize: req.limitBytes } }; },
    deleteBlockStorage: async (name: string) => { agentCalls.push(`deleteBlockStorage ${name}`); },
  } as unknown as AgentApi;

  /** A reconcile context whose cache is the store as of now (what a restarted controller's informers list). */
  const ctxOf = (reconciler: Reconciler, s: Store = store) => snapshotContext(store, reconciler.indexes, s);
  /** Which nodes' derived usage holds `key` (the seed's view of every node). */
  const holders = async (field: 'reserved_computes' | 'reserved_storages', key: string) =>
    (await renderFromStore(store, (await store.list('Node')).items)).filter((n) => n.status?.[field]?.[key]).map((n) => n.metadata.name);
  const committed = async (name: string) => (await store.get('Node', name)).status?.placement?.revisions ?? {};

  beforeEach(async () => {
    store = new MemoryStore();
    agentCalls.length = 0;
    for (const n of ['n1', 'n2']) {
      const created = await store.create(node(n));
      await store.update({ ...created, status: node(n).status }, { subresource: 'status' });
    }
  });
  afterEach(async () => { await store.close(); });

  const vmDoc = { apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name: 'vm1' }, spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: GiB } } as KindMap['VirtualMachine'];
  const bsDoc = { apiVersion: 'n0stack.io/v1alpha1', kind: 'BlockStorage', metadata: { name: 'disk1' }, spec: { request_bytes: GiB, limit_bytes: GiB } } as KindMap['BlockStorage'];

  it('VM: the record counts at once; the next pass commits it and only then calls the agent', async () => {
    const r = new VirtualMachineReconciler(() => agent);
    await store.create(vmDoc);
    await expect(r.reconcile('vm1', await ctxOf(r, killedBeforeCommitting(store)))).rejects.toThrow('controller killed');
    const placedOn = (await store.get('VirtualMachine', 'vm1')).status?.node_name;
    expect(placedOn).toBeDefined();
    expect(await holders('reserved_computes', 'vm1')).toEqual([placedOn]);
    expect(await committed(placedOn!)).toEqual({});
    expect(agentCalls).toEqual([]);
    await r.reconcile('vm1', await ctxOf(r));
    expect((await store.get('VirtualMachine', 'vm1')).status?.node_name).toBe(placedOn);
    expect(BigInt((await committed(placedOn!)).VirtualMachine!)).toBeGreaterThan(0n);
    expect(agentCalls).toEqual(['ensureVm vm1']);
    expect(await holders('reserved_computes', 'vm1')).toEqual([placedOn]);
  });

  it('VM: deleting it after the crash releases what it used', async () => {
    const r = new VirtualMachineReconciler(() => agent);
    await store.create(vmDoc);
    await expect(r.reconcile('vm1', await ctxOf(r, killedBeforeCommitting(store)))).rejects.toThrow('controller killed');
    expect(await holders('reserved_computes', 'vm1')).toHaveLength(1);
    await store.delete('VirtualMachine', 'vm1');
    await r.reconcile('vm1', await ctxOf(r));
    await expect(store.get('VirtualMachine', 'vm1')).rejects.toThrow(/not found/i);
    expect(await holders('reserved_computes', 'vm1')).toEqual([]);
    expect(agentCalls).not.toContain('ensureVm vm1');
  });

  it('BlockStorage: the next pass commits the record before the agent makes the disk, and a delete after the crash releases it', async () => {
    const r = new BlockStorageReconciler(() => agent);
    await store.create(bsDoc);
    await expect(r.reconcile('disk1', await ctxOf(r, killedBeforeCommitting(store)))).rejects.toThrow('controller killed');
    const placedOn = (await store.get('BlockStorage', 'disk1')).status?.node_name;
    expect(await holders('reserved_storages', 'disk1')).toEqual([placedOn]);
    expect(agentCalls).toEqual([]);
    await r.reconcile('disk1', await ctxOf(r));
    expect(BigInt((await committed(placedOn!)).BlockStorage!)).toBeGreaterThan(0n);
    expect(agentCalls).toEqual(['ensureBlockStorage disk1']);

    await store.create({ ...bsDoc, metadata: { name: 'disk2' } });
    await expect(r.reconcile('disk2', await ctxOf(r, killedBeforeCommitting(store)))).rejects.toThrow('controller killed');
    expect(await holders('reserved_storages', 'disk2')).toHaveLength(1);
    await store.delete('BlockStorage', 'disk2');
    await r.reconcile('disk2', await ctxOf(r));
    await expect(store.get('BlockStorage', 'disk2')).rejects.toThrow(/not found/i);
    expect(await holders('reserved_storages', 'disk2')).toEqual([]);
    expect(agentCalls).not.toContain('ensureBlockStorage disk2');
  });

  // GenerateBlockStorage's overlay is pinned at creation (spec.node_name): its creation is its
  // record, so no record write comes before the commit, and the disk's one status write names the node.
  const pinnedDoc = { ...bsDoc, metadata: { name: 'disk3' }, spec: { ...bsDoc.spec, node_name: 'n2' } } as KindMap['BlockStorage'];
  const statusWrites = (s: Store, kind: Kind, log: string[]): Store => new Proxy(s, {
    get: (target, prop, receiver) => prop === 'update'
      ? (obj: KindMap[Kind], o?: { subresource?: 'status' }) => { if (obj.kind === kind && o?.subresource === 'status') log.push(String((obj.status as { state?: string })?.state)); return target.update(obj, o); }
      : Reflect.get(target, prop, receiver),
  });

  /** A pass killed the moment the agent has made disk3: no write of that process lands after. */
  async function killedOnceMade(r: BlockStorageReconciler): Promise<void> {
    let killed = false;
    const dying = { ...agent, ensureBlockStorage: async (req: { name: string; limitBytes: number }) => { const made = await (agent.ensureBlockStorage as any)(req); killed = true; return made; } } as unknown as AgentApi;
    const dead = new Proxy(store, { get: (target, prop, receiver) => (prop === 'update' ? (...a: Parameters<Store['update']>) => (killed ? Promise.reject(new Error('controller killed')) : target.update(...a)) : Reflect.get(target, prop, receiver)) });
    await expect(new BlockStorageReconciler(() => dying).reconcile('disk3', await ctxOf(r, dead))).rejects.toThrow('controller killed');
  }

  it('BlockStorage pinned at creation: counts from its creation; a crash after the agent made it, before any status write, leaks nothing', async () => {
    const r = new BlockStorageReconciler(() => agent);
    await store.create(pinnedDoc);
    expect(await holders('reserved_storages', 'disk3')).toEqual(['n2']);
    await killedOnceMade(r);
    expect((await store.get('BlockStorage', 'disk3')).status?.conditions).toBeUndefined();
    expect(BigInt((await committed('n2')).BlockStorage!)).toBeGreaterThan(0n);
    expect(await holders('reserved_storages', 'disk3')).toEqual(['n2']);
    // Deleted now: the file the agent made is removed from the pinned node, and its storage is free.
    await store.delete('BlockStorage', 'disk3');
    await r.reconcile('disk3', await ctxOf(r));
    await expect(store.get('BlockStorage', 'disk3')).rejects.toThrow(/not found/i);
    expect(agentCalls).toEqual(['ensureBlockStorage disk3', 'deleteBlockStorage disk3']);
    expect(await holders('reserved_storages', 'disk3')).toEqual([]);
  });

  it('BlockStorage pinned at creation, made by a pass killed before any status write, then grown past its node: refused, and the file is removed then (no disk file without a placement)', async () => {
    const r = new BlockStorageReconciler(() => agent);
    await store.create(pinnedDoc);
    await killedOnceMade(r);
    const made = await store.get('BlockStorage', 'disk3');
    await store.update({ ...made, spec: { ...made.spec, request_bytes: 200 * GiB, limit_bytes: 200 * GiB } });
    await r.reconcile('disk3', await ctxOf(r));
    expect((await store.get('BlockStorage', 'disk3')).status).toMatchObject({ state: 'FAILED', conditions: [expect.objectContaining({ reason: 'Unschedulable' })] });
    // Refused and no longer counted on n2: the file made there is removed at once, not at the delete.
    expect(agentCalls).toEqual(['ensureBlockStorage disk3', 'deleteBlockStorage disk3']);
    expect(await holders('reserved_storages', 'disk3')).toEqual([]);
    await store.delete('BlockStorage', 'disk3');
    await r.reconcile('disk3', await ctxOf(r));
    await expect(store.get('BlockStorage', 'disk3')).rejects.toThrow(/not found/i);
    expect(agentCalls).toEqual(['ensureBlockStorage disk3', 'deleteBlockStorage disk3', 'deleteBlockStorage disk3']);
  });

  it('BlockStorage pinned at creation: made with one status write; a VM claiming it is the disk\'s second, and its own pass then writes nothing', async () => {
    const writes: string[] = [];
    const r = new BlockStorageReconciler(() => agent);
    await store.create(pinnedDoc);
    await r.reconcile('disk3', await ctxOf(r, statusWrites(store, 'BlockStorage', writes)));
    expect(writes).toEqual(['AVAILABLE']);
    expect((await store.get('BlockStorage', 'disk3')).status).toMatchObject({ node_name: 'n2', state: 'AVAILABLE' });
    const vms = new VirtualMachineReconciler(() => agent);
    await store.create({ ...vmDoc, spec: { ...vmDoc.spec, block_storage_names: ['disk3'] } });
    await vms.reconcile('vm1', await ctxOf(vms, statusWrites(store, 'BlockStorage', writes)));
    expect(writes).toEqual(['AVAILABLE', 'IN_USE']);
    const claimed = await store.get('BlockStorage', 'disk3');
    expect(claimed.status).toMatchObject({ in_use_by: 'vm1', state: 'IN_USE' });
    expect(claimed.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'IN_USE', message: 'on node n2' });
    await r.reconcile('disk3', await ctxOf(r, statusWrites(store, 'BlockStorage', writes)));
    expect(writes).toEqual(['AVAILABLE', 'IN_USE']);
  });

  it('BlockStorage pinned at creation to a node without room: one FAILED write, no longer counted, nothing made', async () => {
    const writes: string[] = [];
    const r = new BlockStorageReconciler(() => agent);
    await store.create({ ...pinnedDoc, spec: { ...pinnedDoc.spec, request_bytes: 200 * GiB, limit_bytes: 200 * GiB } });
    expect(await holders('reserved_storages', 'disk3')).toEqual(['n2']);
    await r.reconcile('disk3', await ctxOf(r, statusWrites(store, 'BlockStorage', writes)));
    expect(writes).toEqual(['FAILED']);
    const failed = await store.get('BlockStorage', 'disk3');
    expect(failed.status?.node_name).toBeUndefined();
    expect(failed.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ reason: 'Unschedulable' });
    expect(await holders('reserved_storages', 'disk3')).toEqual([]);
    // The agent is asked only to remove what an earlier, killed pass could have made (nothing here).
    expect(agentCalls).toEqual(['deleteBlockStorage disk3']);
  });

  it('VM resized behind admission\'s back (two raises side by side, written to the store): the counter\'s commit refuses what does not fit, and the VM keeps its size', async () => {
    const r = new VirtualMachineReconciler(() => agent);
    const vm = (name: string) => ({ ...vmDoc, metadata: { name }, spec: { ...vmDoc.spec, node_name: 'n1' } }) as KindMap['VirtualMachine'];
    for (const name of ['vm1', 'vm2']) {
      await store.create(vm(name));
      await r.reconcile(name, await ctxOf(r));
      expect((await store.get('VirtualMachine', name)).status).toMatchObject({ state: 'RUNNING', allocated_compute: { limit_cpu_milli_core: 1000 } });
    }
    // n1 has 4 cores: 2 + 3 do not fit together; each raise alone would.
    const raise = async (name: string, cores: number) => { const v = await store.get('VirtualMachine', name); return store.update({ ...v, spec: { ...v.spec, limit_cpu_milli_core: cores * 1000 } }); };
    await raise('vm1', 2);
    await raise('vm2', 3);
    agentCalls.length = 0;
    for (const name of ['vm1', 'vm2']) await r.reconcile(name, await ctxOf(r));
    const after = await Promise.all(['vm1', 'vm2'].map((n) => store.get('VirtualMachine', n)));
    for (const v of after) {
      expect(v.status?.allocated_compute?.limit_cpu_milli_core).toBe(1000);
      expect(v.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'Unschedulable', message: expect.stringMatching(/^limit_cpu_milli_core: the resize does not fit node n1/) });
    }
    expect(agentCalls).toEqual([]);
    // vm2 goes back to 1 core: vm1's raise fits now, and is taken at its next pass.
    await raise('vm2', 1);
    for (const name of ['vm2', 'vm1']) await r.reconcile(name, await ctxOf(r));
    expect((await store.get('VirtualMachine', 'vm1')).status).toMatchObject({ state: 'RUNNING', allocated_compute: { limit_cpu_milli_core: 2000 } });
    expect((await store.get('VirtualMachine', 'vm2')).status).toMatchObject({ state: 'RUNNING', allocated_compute: { limit_cpu_milli_core: 1000 } });
    expect(agentCalls).toEqual(['ensureVm vm2', 'ensureVm vm1']);
  });
});

describe('a VM naming a disk that is being deleted', () => {
  let store: MemoryStore;
  const agent = { ensureVm: async (req: { name: string }) => ({ name: req.name, present: true, runState: 'running' }) } as unknown as AgentApi;
  const r = new VirtualMachineReconciler(() => agent);
  async function snapshot(): Promise<Map<Kind, KindMap[Kind][]>> {
    const objects = new Map<Kind, KindMap[Kind][]>();
    for (const kind of KINDS) objects.set(kind, (await store.list(kind)).items);
    return objects;
  }
  const ctxFrom = (objects: Map<Kind, KindMap[Kind][]>): ReconcileContext => {
    const list = <K extends Kind>(kind: K) => (objects.get(kind) ?? []) as KindMap[K][];
    const cache: Cache = { get: (kind, name) => list(kind).find((o) => o.metadata.name === name), list, byIndex: () => [] };
    return { store, cache, signal: new AbortController().signal, enqueue: () => undefined, events: new Proxy({} as NonNullable<ReconcileContext['events']>, { get: () => () => undefined }) } as ReconcileContext;
  };

  beforeEach(async () => {
    store = new MemoryStore();
    const n = await store.create(node('n1'));
    await store.update({ ...n, status: node('n1').status }, { subresource: 'status' });
    // A disk made and held by its controller's finalizer, available on n1.
    const bs = await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'BlockStorage', metadata: { name: 'disk1', finalizers: ['n0stack.io/blockstorage'] }, spec: { request_bytes: GiB, limit_bytes: GiB } } as KindMap['BlockStorage']);
    await store.update({ ...bs, status: { node_name: 'n1', state: 'AVAILABLE' } }, { subresource: 'status' });
    // Written straight to the store (as kubectl would): no admission looked at it.
    await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name: 'vm1' }, spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: GiB, block_storage_names: ['disk1'] } } as KindMap['VirtualMachine']);
  });
  afterEach(async () => { await store.close(); });

  it.each([['the cache already shows the delete', false], ['the cached disk predates the delete', true]])('is not given the disk when %s', async (_, staleCache) => {
    const before = await snapshot();
    await store.delete('BlockStorage', 'disk1');
    expect((await store.get('BlockStorage', 'disk1')).metadata.deletionTimestamp).toBeDefined();
    await r.reconcile('vm1', ctxFrom(staleCache ? before : await snapshot())).catch(() => undefined);
    expect((await store.get('BlockStorage', 'disk1')).status?.in_use_by).toBeUndefined();
    const ready = (await store.get('VirtualMachine', 'vm1')).status?.conditions?.find((c) => c.type === 'Ready');
    expect(ready).toMatchObject({ status: 'False', reason: 'BlockStorageBeingDeleted', message: 'block_storage_names: BlockStorage "disk1" is being deleted' });
  });
});
