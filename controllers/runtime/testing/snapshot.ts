// A reconcile context whose cache is the store as of now (what a restarted controller's informers
// list), for tests that call one reconciler's reconcile directly against a real store.
import type { Store } from '../../../api/store/store';
import type { Kind, KindMap } from '../../../api/types';
import type { Cache, IndexSpec, ReconcileContext } from '../types';

export const SNAPSHOT_KINDS: Kind[] = ['Node', 'NodeLease', 'VirtualMachine', 'BlockStorage', 'Network', 'Image', 'Reservation'];

/** `store` read now into a cache with `indexes`; writes go to `writes` (a store that fails some, say). */
export async function snapshotContext(store: Store, indexes: readonly IndexSpec[] = [], writes: Store = store): Promise<ReconcileContext> {
  const objects = new Map<Kind, KindMap[Kind][]>();
  for (const kind of SNAPSHOT_KINDS) objects.set(kind, (await store.list(kind)).items);
  const list = <K extends Kind>(kind: K) => (objects.get(kind) ?? []) as KindMap[K][];
  const cache: Cache = {
    get: (kind, name) => list(kind).find((o) => o.metadata.name === name),
    list,
    byIndex: (kind, index, key) => list(kind).filter((o) => indexes.find((i) => i.kind === kind && i.name === index)?.keys(o).includes(key)),
  };
  // Any event recorder the reconcilers may call answers nothing.
  const events = new Proxy({} as NonNullable<ReconcileContext['events']>, { get: () => () => undefined });
  return { store: writes, cache, signal: new AbortController().signal, enqueue: () => undefined, events } as ReconcileContext;
}
