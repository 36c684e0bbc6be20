// Placement for the facade's Schedule*/Reserve* RPCs and the reconcilers: choose with the pure scheduler (api/logic/scheduler.ts), then
// reserve by a CAS write into the chosen Node's status — so two controllers (or a controller and
// a facade call) never overbook a node. A lost race re-reads the nodes and chooses again.
import { isN0Error } from './errors';
import { allocatableStatus } from './logic/resources';
import { scheduleCompute, scheduleStorage, type ComputeScheduleOptions, type ScheduleOptions } from './logic/scheduler';
import { scheduleOn, type ComputeRequest, type StorageRequest } from './scheduling';
import { mutate } from './store/mutate';
import type { Store } from './store/store';
import type { Node } from './types';

export type Reservation = { what: 'compute'; value: ComputeRequest } | { what: 'storage'; value: StorageRequest };

const FIELD = { compute: 'reserved_computes', storage: 'reserved_storages' } as const;

/** Idempotently reserves `key` on `nodeName`; FailedPreconditionError naming the shortfall. */
export async function reserveOn(store: Store, nodeName: string, key: string, r: Reservation, annotations?: Record<string, string>): Promise<Node> {
  return mutate(store, 'Node', nodeName, (n) => {
    const field = FIELD[r.what];
    const wanted = { ...(annotations ? { annotations } : {}), ...r.value };
    if (JSON.stringify(n.status?.[field]?.[key]) === JSON.stringify(wanted)) return false;
    scheduleOn(n, r.what, key, r.value);
    n.status ??= {};
    n.status[field] = { ...n.status[field], [key]: wanted } as never;
    n.status.allocatable = allocatableStatus(n);
  }, { subresource: 'status' });
}

export async function releaseOn(store: Store, nodeName: string, key: string, what: Reservation['what']): Promise<void> {
  const field = FIELD[what];
  await mutate(store, 'Node', nodeName, (n) => {
    if (!n.status?.[field]?.[key]) return false;
    delete n.status[field]![key];
    n.status.allocatable = allocatableStatus(n);
  }, { subresource: 'status' }).catch((err) => { if (!isN0Error(err, 'NotFound')) throw err; });
}

/**
 * The nodes among `nodes` holding `key`'s reservation made for `owner` (its `annotation`). A
 * reconciler reserves before it can record where (two writes to two objects), so after a crash
 * between them the reservation is found by its owner, not by the object's status.
 */
export function reservedFor(nodes: readonly Node[], key: string, what: Reservation['what'], annotation: string, owner: string): string[] {
  return nodes.filter((n) => (n.status?.[FIELD[what]]?.[key] as { annotations?: Record<string, string> } | undefined)?.annotations?.[annotation] === owner).map((n) => n.metadata.name);
}

/**
 * The nodes the scheduler must look at: just one when the request is pinned (by the user, or by
 * disks already placed), every node otherwise. Parsing every Node (with all its reservations) for
 * each pinned placement was the control plane's largest CPU cost at 10,000 VMs.
 */
async function candidates(store: Store, options: ComputeScheduleOptions & ScheduleOptions): Promise<Node[]> {
  const disksOn = new Set((options.blockStorages ?? []).flatMap((b) => (b.nodeName ? [b.nodeName] : [])));
  const pinned = options.pinnedNode ?? (disksOn.size === 1 ? [...disksOn][0] : undefined);
  if (pinned === undefined || disksOn.size > 1) return (await store.list('Node')).items;
  try {
    return [await store.get('Node', pinned)];
  } catch (err) {
    if (isN0Error(err, 'NotFound')) return [];
    throw err;
  }
}

/** Chooses a node for `key` and reserves there; returns the node's name. */
export async function placeAndReserve(store: Store, key: string, r: Reservation, annotations?: Record<string, string>, options: ComputeScheduleOptions & ScheduleOptions = {}): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const nodes = await candidates(store, options);
    const { nodeName } = r.what === 'compute'
      ? scheduleCompute(nodes, { name: key, requestCpuMilli: r.value.request_cpu_milli_core, limitCpuMilli: r.value.limit_cpu_milli_core, requestMemoryBytes: r.value.request_memory_bytes, limitMemoryBytes: r.value.limit_memory_bytes }, options)
      : scheduleStorage(nodes, { name: key, requestBytes: r.value.request_bytes, limitBytes: r.value.limit_bytes }, options);
    try {
      await reserveOn(store, nodeName, key, r, annotations);
      return nodeName;
    } catch (err) {
      // Someone took the room between our read and our write: look again, a few times.
      if (!isN0Error(err, 'FailedPrecondition') || attempt >= 3 || options.pinnedNode) throw err;
    }
  }
}
