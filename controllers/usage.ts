// The controllers' placement view (api/placement.ts): what is placed on a node, from the informer
// caches through one index per kind, and "has this cache seen that record yet" from each
// informer's resourceVersion. The store is read only for the Node being committed.
import { UnavailableError } from '../api/errors';
import { blockStorageNode, storeView, type PlacementView, type RecordKind, type Revisions } from '../api/placement';
import type { BlockStorage, Reservation, VirtualMachine } from '../api/types';
import { sleep } from './runtime/sleep';
import type { IndexSpec, ReconcileContext } from './runtime/types';

export const PLACED_ON = 'placement.byNode';

/** Declared by every reconciler that places (the manager registers an index once). */
export const USAGE_INDEXES: IndexSpec[] = [
  { kind: 'VirtualMachine', name: PLACED_ON, keys: (vm) => { const n = (vm as VirtualMachine).status?.node_name; return n ? [n] : []; } },
  { kind: 'BlockStorage', name: PLACED_ON, keys: (bs) => { const n = blockStorageNode(bs as BlockStorage); return n ? [n] : []; } },
  { kind: 'Reservation', name: PLACED_ON, keys: (r) => [(r as Reservation).spec.node_name] },
];

/** How long a placer waits for its cache to see a committed record before giving up this pass. */
const CATCH_UP_MS = 10_000;

const revisionNumber = (rv: string | undefined): bigint => (rv !== undefined && /^\d+$/.test(rv) ? BigInt(rv) : -1n);

export function cacheView(ctx: ReconcileContext): PlacementView {
  const { cache } = ctx;
  // A hand-made cache without revisions (tests) cannot say what it has seen: read the store.
  if (!cache.revision) return storeView(ctx.store);
  const revision = cache.revision.bind(cache);
  return {
    async nodes(pinned) {
      if (pinned === undefined) return cache.list('Node');
      const cached = cache.get('Node', pinned);
      return cached ? [cached] : storeView(ctx.store).nodes(pinned);
    },
    async placedOn(node) {
      return {
        virtualMachines: cache.byIndex('VirtualMachine', PLACED_ON, node),
        blockStorages: cache.byIndex('BlockStorage', PLACED_ON, node),
        reservations: cache.byIndex('Reservation', PLACED_ON, node),
      };
    },
    async caughtUp(revisions: Revisions) {
      const behind = () => (Object.entries(revisions) as [RecordKind, string][]).filter(([kind, rv]) => revisionNumber(revision(kind)) < revisionNumber(rv));
      const deadline = Date.now() + CATCH_UP_MS;
      while (behind().length) {
        if (ctx.signal.aborted) throw new UnavailableError('stopped while waiting for the cache');
        if (Date.now() > deadline) throw new UnavailableError(`the ${behind().map(([k, rv]) => `${k} cache has not seen revision ${rv}`).join(', ')} within ${CATCH_UP_MS} ms`);
        // Not listening on ctx.signal: every worker waiting here would add a listener to it.
        await sleep(2);
      }
    },
  };
}
