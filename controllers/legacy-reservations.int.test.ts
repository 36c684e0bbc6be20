// Reservation lists stored in a Node by a version before usage was derived, on a real etcd: the
// Node reconciler turns the seed's entries into Reservation objects, drops the entries VMs and disks
// made for themselves (their use is derived from them now), and removes the lists, committing the
// new Reservations on the node's counter so placement counts them. Killed between the creates and
// the Node write it is done again without doubling anything; a placer's Reservation between its
// record and its commit makes it wait.
import { BLOCK_STORAGE_RESERVED_BY, renderedNode, reserveOn, VM_RESERVED_BY } from '../api/placement';
import type { Store } from '../api/store';
import { openTestEtcdStore } from '../api/store/testing/etcd';
import { API_VERSION, type Kind, type KindMap, type Node } from '../api/types';
import { NodeReconciler } from './node';
import { snapshotContext } from './runtime/testing/snapshot';

jest.setTimeout(60_000);
const GiB = 2 ** 30;

let store: Store;
let close: () => Promise<void>;
beforeAll(async () => {
  ({ store, close } = await openTestEtcdStore('legacy'));
});
afterAll(async () => { await close?.(); });

/** A Node as an older version stored it: the seed's reservations and the VMs' and disks' own in its status. */
async function legacyNode(name: string): Promise<Node> {
  const created = await store.create({ apiVersion: API_VERSION, kind: 'Node', metadata: { name }, spec: { address: '10.255.0.1', cpu_milli_cores: 4000, memory_bytes: 8 * GiB, storage_bytes: 100 * GiB } } as Node);
  return store.update({ ...created, status: {
    state: 'Ready',
    reserved_computes: {
      'seed-c': { annotations: { owner: 'me' }, request_cpu_milli_core: 2000, limit_cpu_milli_core: 2000, request_memory_bytes: GiB, limit_memory_bytes: GiB },
      'vm-a': { annotations: { [VM_RESERVED_BY]: 'vm-a' }, request_cpu_milli_core: 1000, limit_cpu_milli_core: 1000, request_memory_bytes: GiB, limit_memory_bytes: GiB },
    },
    reserved_storages: {
      'seed-s': { request_bytes: 10 * GiB, limit_bytes: 10 * GiB },
      'disk-a': { annotations: { [BLOCK_STORAGE_RESERVED_BY]: 'disk-a' }, request_bytes: GiB, limit_bytes: GiB },
    },
  } }, { subresource: 'status' });
}

const ctxOf = (s: Store = store) => snapshotContext(store, [], s);
const reservations = async (node: string) => (await store.list('Reservation')).items.filter((r) => r.spec.node_name === node).map((r) => r.metadata.name).sort();
/** The store as a controller killed just before its Node write sees it. */
const killedAtNodeWrite = (s: Store): Store => new Proxy(s, {
  get: (t, p, rcv) => (p === 'update' ? (doc: KindMap[Kind], o?: object) => (doc.kind === 'Node' ? Promise.reject(new Error('controller killed')) : t.update(doc, o as never)) : Reflect.get(t, p, rcv)),
});

test('the seed\'s entries become Reservations, owned ones go, the lists go; killed before the Node write, done again once', async () => {
  await legacyNode('n1');
  const r = new NodeReconciler();
  await expect(r.reconcile('n1', await ctxOf(killedAtNodeWrite(store)))).rejects.toThrow('controller killed');
  expect(await reservations('n1')).toEqual(['compute.n1.seed-c', 'storage.n1.seed-s']);
  expect((await store.get('Node', 'n1')).status?.reserved_computes?.['seed-c']).toBeDefined();

  await r.reconcile('n1', await ctxOf());
  const node = await store.get('Node', 'n1');
  expect(node.status?.reserved_computes).toBeUndefined();
  expect(node.status?.reserved_storages).toBeUndefined();
  expect(await reservations('n1')).toEqual(['compute.n1.seed-c', 'storage.n1.seed-s']);
  const seedC = await store.get('Reservation', 'compute.n1.seed-c');
  expect(seedC.metadata.annotations).toEqual({ owner: 'me' });
  expect(seedC.spec).toMatchObject({ what: 'compute', key: 'seed-c', request_cpu_milli_core: 2000 });
  expect(BigInt(node.status!.placement!.revisions!.Reservation!)).toBeGreaterThanOrEqual(BigInt(seedC.metadata.resourceVersion!));
  // The seed's view shows them as before; the VM's and the disk's entries are theirs to render.
  const seen = await renderedNode(store, 'n1');
  expect(Object.keys(seen.status?.reserved_computes ?? {})).toEqual(['seed-c']);
  expect(seen.status?.reserved_storages?.['seed-s']).toEqual({ request_bytes: 10 * GiB, limit_bytes: 10 * GiB });

  // Placement counts them now: 2 of the 4 cores are the seed's.
  await expect(reserveOn(store, 'n1', 'big', { what: 'compute', value: { request_cpu_milli_core: 3000, limit_cpu_milli_core: 3000, request_memory_bytes: GiB, limit_memory_bytes: GiB } })).rejects.toMatchObject({ code: 'FailedPrecondition' });
  // Nothing left to move: another pass writes nothing.
  const rv = (await store.get('Node', 'n1')).metadata.resourceVersion;
  await r.reconcile('n1', await ctxOf());
  expect((await store.get('Node', 'n1')).metadata.resourceVersion).toBe(rv);
});

test('waits while another placer\'s Reservation on the node is recorded but not committed (the commit would skip its fit check)', async () => {
  await legacyNode('n2');
  // Recorded, never committed: as a ReserveCompute whose process stopped between the two writes.
  await store.create({ apiVersion: API_VERSION, kind: 'Reservation', metadata: { name: 'compute.n2.inflight' }, spec: { node_name: 'n2', what: 'compute', key: 'inflight', request_cpu_milli_core: 1000, limit_cpu_milli_core: 1000, request_memory_bytes: GiB, limit_memory_bytes: GiB } } as KindMap['Reservation']);
  const r = new NodeReconciler();
  expect(await r.reconcile('n2', await ctxOf())).toEqual({ requeueAfterMs: 1000 });
  expect(Object.keys((await store.get('Node', 'n2')).status?.reserved_computes ?? {})).toContain('seed-c');
  // Its placer gone, it is released; the next pass moves the lists.
  await store.delete('Reservation', 'compute.n2.inflight');
  await r.reconcile('n2', await ctxOf());
  expect((await store.get('Node', 'n2')).status?.reserved_computes).toBeUndefined();
  expect(await reservations('n2')).toEqual(['compute.n2.seed-c', 'storage.n2.seed-s']);
});
