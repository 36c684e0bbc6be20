// Nodes stored before usage was derived kept the seed's reservations as lists in their status
// (reserved_computes, reserved_storages). Now each is a Reservation object and the lists are only
// rendered, so entries still stored in a Node are invisible to placement. The Node reconciler
// moves them: a Reservation per entry made by the seed's Reserve*/Schedule* (create-if-absent),
// then one CAS write of the Node that drops the lists and commits the new Reservations on the
// node's placement counter (they were granted before; they are not judged again). Entries a VM
// or disk made for itself (their reserved_by annotation) are dropped: what those use is derived
// from the objects now. Killed at any point it is done again: creates that find their object are
// no-ops, and the lists go only with the commit.
import { isN0Error } from '../api/errors';
import { BLOCK_STORAGE_RESERVED_BY, newer, reservationDocument, revisionNumber, VM_RESERVED_BY, type Reservation } from '../api/placement';
import type { Node, Reservation as ReservationDoc } from '../api/types';
import type { ReconcileContext } from './runtime/types';

/** Whether `node` still stores reservation lists (judged on the cached copy: no store access otherwise). */
export function hasLegacyReservations(node: Node | undefined): boolean {
  return Object.keys(node?.status?.reserved_computes ?? {}).length + Object.keys(node?.status?.reserved_storages ?? {}).length > 0;
}

/** The Reservations `node`'s stored lists stand for (owned entries left out). */
export function legacyReservations(node: Node): ReservationDoc[] {
  const docs: ReservationDoc[] = [];
  const lists = [['compute', node.status?.reserved_computes], ['storage', node.status?.reserved_storages]] as const;
  for (const [what, list] of lists) {
    for (const [key, entry] of Object.entries(list ?? {})) {
      const { annotations, ...value } = entry as { annotations?: Record<string, string> } & Record<string, number>;
      if (annotations?.[VM_RESERVED_BY] || annotations?.[BLOCK_STORAGE_RESERVED_BY]) continue;
      const r = (what === 'compute'
        ? { what, value: { request_cpu_milli_core: value.request_cpu_milli_core ?? 0, limit_cpu_milli_core: value.limit_cpu_milli_core ?? 0, request_memory_bytes: value.request_memory_bytes ?? 0, limit_memory_bytes: value.limit_memory_bytes ?? 0 } }
        : { what, value: { request_bytes: value.request_bytes ?? 0, limit_bytes: value.limit_bytes ?? 0 } }) as Reservation;
      docs.push(reservationDocument(node.metadata.name, key, r, annotations));
    }
  }
  return docs;
}

/**
 * Moves `name`'s stored lists into Reservations. Returns a delay to look again after when another
 * placer's Reservation on the node is between its record and its commit (the commit below would
 * count it as committed without its fit check), else undefined when done.
 */
export async function migrateLegacyReservations(ctx: ReconcileContext, name: string): Promise<number | undefined> {
  const node = await ctx.store.get('Node', name);
  if (!hasLegacyReservations(node)) return undefined;
  const wanted = legacyReservations(node);
  let newest: string | undefined;
  for (const doc of wanted) {
    let rv: string | undefined;
    try {
      rv = (await ctx.store.create(doc)).metadata.resourceVersion;
    } catch (err) {
      // Made by a pass that stopped before the commit, or reserved again since: it stands.
      if (!isN0Error(err, 'AlreadyExists')) throw err;
      rv = (await ctx.store.get('Reservation', doc.metadata.name)).metadata.resourceVersion;
    }
    newest = newer(newest, rv);
  }
  const committed = node.status?.placement?.revisions?.Reservation;
  if (newest !== undefined) {
    const ours = new Set(wanted.map((d) => d.metadata.name));
    const pending = (await ctx.store.list('Reservation')).items.filter((r) => r.spec.node_name === name && !ours.has(r.metadata.name)
      && revisionNumber(r.metadata.resourceVersion) > revisionNumber(committed) && revisionNumber(r.metadata.resourceVersion) <= revisionNumber(newest));
    if (pending.length) return 1000;
  }
  const { reserved_computes: _c, reserved_storages: _s, ...status } = node.status ?? {};
  const counter = node.status?.placement ?? {};
  const placement = newest === undefined ? counter : { generation: (counter.generation ?? 0) + 1, revisions: { ...counter.revisions, Reservation: newer(committed, newest) } };
  // At the revision read: a placement committed meanwhile is a Conflict, and the pass runs again.
  await ctx.store.update({ ...node, status: { ...status, ...(Object.keys(placement).length ? { placement } : {}) } }, { subresource: 'status' });
  return undefined;
}
