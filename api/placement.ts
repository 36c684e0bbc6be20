// Node choice and reservations for the reconcilers: a reservation is a CAS write into the
// Node's status, so two controllers (or a controller and a facade call) never overbook a node.
import type { Node } from '../api/types';
import { FailedPreconditionError, isN0Error } from '../api/errors';
import { scheduleOn, type ComputeRequest, type StorageRequest } from '../api/scheduling';
import { mutate } from '../api/store/mutate';
import type { Store } from '../api/store/store';

export type Reservation = { what: 'compute'; value: ComputeRequest } | { what: 'storage'; value: StorageRequest };

function load(node: Node, what: 'compute' | 'storage'): number {
  if (what === 'compute') {
    const used = Object.values(node.status?.reserved_computes ?? {}).reduce((a, r) => a + (r.request_memory_bytes ?? 0), 0);
    return used / Math.max(1, node.spec.memory_bytes ?? 1);
  }
  const used = Object.values(node.status?.reserved_storages ?? {}).reduce((a, r) => a + (r.request_bytes ?? 0), 0);
  return used / Math.max(1, node.spec.storage_bytes ?? 1);
}

/** Ready, schedulable nodes, least loaded first, then by name: a deterministic order. */
export function candidateNodes(nodes: Node[], what: 'compute' | 'storage'): Node[] {
  return nodes
    .filter((n) => n.status?.state === 'Ready' && !n.spec.unschedulable)
    .sort((a, b) => load(a, what) - load(b, what) || a.metadata.name.localeCompare(b.metadata.name));
}

/** Idempotently reserves `key` on `nodeName`; FailedPreconditionError naming the shortfall. */
export async function reserveOn(store: Store, nodeName: string, key: string, r: Reservation, annotation: string): Promise<void> {
  await mutate(store, 'Node', nodeName, (n) => {
    const field = r.what === 'compute' ? 'reserved_computes' : 'reserved_storages';
    const current = n.status?.[field]?.[key];
    const wanted = { annotations: { [annotation]: key }, ...r.value };
    if (current && JSON.stringify(current) === JSON.stringify(wanted)) return false;
    scheduleOn(n, r.what, key, r.value);
    n.status ??= {};
    n.status[field] = { ...n.status[field], [key]: wanted } as any;
  }, { subresource: 'status' });
}

export async function releaseOn(store: Store, nodeName: string, key: string, what: 'compute' | 'storage'): Promise<void> {
  const field = what === 'compute' ? 'reserved_computes' : 'reserved_storages';
  await mutate(store, 'Node', nodeName, (n) => {
    if (!n.status?.[field]?.[key]) return false;
    delete n.status[field]![key];
  }, { subresource: 'status' }).catch((err) => { if (!isN0Error(err, 'NotFound')) throw err; });
}

/** Pinned node or the first candidate that takes the reservation. Returns the node's name. */
export async function placeAndReserve(store: Store, nodes: Node[], key: string, r: Reservation, annotation: string, pinned?: string): Promise<string> {
  if (pinned) {
    if (!nodes.some((n) => n.metadata.name === pinned)) throw new FailedPreconditionError(`node ${pinned} does not exist`);
    await reserveOn(store, pinned, key, r, annotation);
    return pinned;
  }
  const reasons: string[] = [];
  for (const node of candidateNodes(nodes, r.what)) {
    try {
      await reserveOn(store, node.metadata.name, key, r, annotation);
      return node.metadata.name;
    } catch (err) {
      if (!isN0Error(err, 'FailedPrecondition')) throw err;
      reasons.push((err as Error).message);
    }
  }
  throw new FailedPreconditionError(`no Ready node fits ${r.what} for ${key}${reasons.length ? `: ${reasons.join('; ')}` : ''}`);
}
