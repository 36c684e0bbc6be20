// Placement on the real embedded store: what a node has given away is derived from the objects
// placed there (and the seed's Reservations), and concurrent placements never overcommit a node:
// neither with fresh reads (the facade) nor with views that lag (the controllers' caches), whose
// commits must wait until they have seen every record the node's counter names.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { groupPlaced, placeAndRecord, releaseOn, renderedNode, reserveOn, scheduleReservation, storeView, type PlacementView, type Revisions } from './placement';
import { openStore, type Store } from './store/index';
import type { Kind, Node } from './types';

const GiB = 2 ** 30;

function node(name: string, storageGiB = 100): Node {
  return {
    apiVersion: 'n0stack.io/v1alpha1', kind: 'Node', metadata: { name },
    spec: { address: '10.255.0.1', cpu_milli_cores: 4000, memory_bytes: 8 * GiB, storage_bytes: storageGiB * GiB },
    status: { state: 'Ready', conditions: [{ type: 'Ready', status: 'True', reason: 'AgentHeartbeat', message: 'test', lastTransitionTime: '2026-01-01T00:00:00Z' }] },
  } as Node;
}

describe('placement', () => {
  let dir: string;
  let store: Store;
  let lists: Kind[];
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-placement-'));
    const inner = await openStore({ backend: 'embedded', dataDir: dir });
    lists = [];
    // Records which kinds were listed; everything else goes straight through.
    store = new Proxy(inner, { get: (target, prop, receiver) => prop === 'list' ? (kind: Kind, o?: object) => { lists.push(kind); return target.list(kind, o); } : Reflect.get(target, prop, receiver) });
    for (const n of ['n1', 'n2', 'n3']) {
      const created = await inner.create(node(n, n === 'n1' ? 10 : 100));
      await inner.update({ ...created, status: node(n).status }, { subresource: 'status' });
    }
  });
  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const storage = { what: 'storage' as const, value: { request_bytes: GiB, limit_bytes: GiB } };
  const compute = { what: 'compute' as const, value: { request_cpu_milli_core: 100, limit_cpu_milli_core: 1000, request_memory_bytes: GiB, limit_memory_bytes: GiB } };
  const rendered = (name: string) => renderedNode(store, name);

  it('keeps a seed reservation as its own object, renders it in the seed view and bumps only the node counter', async () => {
    const before = JSON.stringify(await store.get('Node', 'n2')).length;
    const r = await reserveOn(store, 'n2', 'disk-a', storage, { owner: 'me' });
    expect(r.metadata.name).toBe('storage.n2.disk-a');
    expect(r.spec).toMatchObject({ node_name: 'n2', what: 'storage', key: 'disk-a', request_bytes: GiB });
    expect(lists).not.toContain('Node');
    const n2 = await store.get('Node', 'n2');
    expect(n2.status?.reserved_storages).toBeUndefined();
    expect(n2.status?.placement).toEqual({ generation: 1, revisions: { Reservation: r.metadata.resourceVersion } });
    // The Node document does not grow with what is placed on it.
    for (let i = 0; i < 20; i++) await reserveOn(store, 'n2', `more-${i}`, storage);
    expect(JSON.stringify(await store.get('Node', 'n2')).length - before).toBeLessThan(120);
    expect((await rendered('n2')).status?.reserved_storages?.['disk-a']).toEqual({ annotations: { owner: 'me' }, request_bytes: GiB, limit_bytes: GiB });
    expect((await rendered('n2')).status?.allocatable?.storage_bytes).toBe(79 * GiB);
    // Again with the same values: idempotent, nothing written.
    const rv = (await store.get('Node', 'n2')).metadata.resourceVersion;
    expect((await reserveOn(store, 'n2', 'disk-a', storage, { owner: 'me' })).metadata.resourceVersion).toBe(r.metadata.resourceVersion);
    expect((await store.get('Node', 'n2')).metadata.resourceVersion).toBe(rv);
    await releaseOn(store, 'n2', 'disk-a', 'storage');
    expect((await rendered('n2')).status?.reserved_storages?.['disk-a']).toBeUndefined();
    await expect(releaseOn(store, 'n2', 'disk-a', 'storage')).rejects.toMatchObject({ code: 'NotFound' });
  });

  it('refuses a reservation that does not fit, naming the shortfall, and leaves nothing behind', async () => {
    await expect(reserveOn(store, 'n1', 'huge', { what: 'storage', value: { request_bytes: 11 * GiB, limit_bytes: 11 * GiB } })).rejects.toThrow(/node n1 has 10 GiB storage free, 11 GiB requested/);
    expect((await store.list('Reservation')).items).toEqual([]);
  });

  it('names a pinned node that does not exist, and refuses disks on different nodes', async () => {
    await expect(reserveOn(store, 'nope', 'disk-b', storage)).rejects.toThrow(/no such node/);
    expect((await store.list('Reservation')).items).toEqual([]);
    await expect(placeAndRecord(store, storeView(store), 'vm-b', compute, { record: async () => { throw new Error('not reached'); }, undo: async () => undefined }, { blockStorages: [{ name: 'd1', nodeName: 'n1' }, { name: 'd2', nodeName: 'n2' }] })).rejects.toThrow(/different nodes/);
  });

  it('schedules onto the least loaded node that fits', async () => {
    const r = await scheduleReservation(store, 'disk-c', { what: 'storage', value: { request_bytes: 50 * GiB, limit_bytes: 50 * GiB } });
    expect(['n2', 'n3']).toContain(r.spec.node_name);
  });

  it('never overcommits under 20 concurrent reservations for a node with room for 10', async () => {
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => reserveOn(store, 'n1', `d${i}`, storage)));
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    expect(ok).toBe(10);
    for (const r of results) if (r.status === 'rejected') expect(String(r.reason)).toMatch(/node n1 has 0 B storage free/);
    expect((await store.list('Reservation')).items).toHaveLength(10);
    expect((await rendered('n1')).status?.allocatable?.storage_bytes).toBe(0);
  });

  it('never overcommits with views that lag: a commit waits until its view has seen what the counter names', async () => {
    // Each placer's view is a snapshot of the store, refreshed only when caughtUp needs a newer
    // revision than it has: like an informer cache that is behind.
    const laggingView = (): PlacementView => {
      let seen: { revision: bigint; placed: ReturnType<typeof groupPlaced> } | undefined;
      const refresh = async () => {
        const [vms, disks, reservations] = await Promise.all([store.list('VirtualMachine'), store.list('BlockStorage'), store.list('Reservation')]);
        seen = { revision: BigInt(reservations.resourceVersion), placed: groupPlaced(vms.items, disks.items, reservations.items) };
      };
      const view = {
        nodes: (pinned?: string) => storeView(store).nodes(pinned),
        async placedOn(n: string) { if (!seen) await refresh(); return seen!.placed(n); },
        async caughtUp(revisions: Revisions) {
          const wanted = Object.values(revisions).reduce((m, rv) => (BigInt(rv!) > m ? BigInt(rv!) : m), 0n);
          if (!seen || seen.revision < wanted) await refresh();
        },
      };
      return view;
    };
    const views = Array.from({ length: 20 }, laggingView);
    // All snapshots taken before anyone places: every view starts out believing n1 is empty.
    await Promise.all(views.map((v) => v.placedOn('n1')));
    const results = await Promise.allSettled(views.map(async (view, i) => {
      let doc: Awaited<ReturnType<Store['create']>> | undefined;
      return placeAndRecord(store, view, `d${i}`, storage, {
        async record(nodeName) {
          doc = await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Reservation', metadata: { name: `storage.${nodeName}.d${i}` }, spec: { node_name: nodeName, what: 'storage', key: `d${i}`, ...storage.value } });
          return { kind: 'Reservation', key: `d${i}`, resourceVersion: doc.metadata.resourceVersion!, reservation: storage };
        },
        undo: async () => { if (doc) await store.delete('Reservation', doc.metadata.name); },
      }, { pinnedNode: 'n1' });
    }));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(10);
    expect((await store.list('Reservation')).items).toHaveLength(10);
    expect((await rendered('n1')).status?.allocatable?.storage_bytes).toBe(0);
  });
});
