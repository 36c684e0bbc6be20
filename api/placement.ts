// Placement for the facade's Schedule*/Reserve* RPCs and the reconcilers. What a node has given
// away is derived, never stored in the Node (as the kube-scheduler derives it from the pods bound
// to a node): the VMs and BlockStorages whose status.node_name names it, with their spec's requests,
// and the seed's explicit reservations, one small Reservation object each. The Node keeps only a
// fixed-size placement counter.
//
// Safety under concurrency, record first, then commit (README "Placement"):
//  1. choose a node from what the placer sees (its informer cache, or fresh store lists);
//  2. record the placement (the VM's or disk's status.node_name, or a new Reservation): from now
//     on every other placer that has seen the record counts it;
//  3. commit with a CAS on the Node's counter: read it, make sure the view has seen every record
//     committed so far (the counter names, per kind, the newest committed record's revision),
//     count everything placed there (own record included), refuse an overcommit, and write the
//     counter back at the revision read. Two placers cannot both commit without the second
//     having counted the first: the second's CAS fails, and it counts again.
//  A refused commit undoes its record. A record not committed yet is counted by the placers whose
//  own record is newer (and by all once a commit names a newer revision of its kind): so of 20
//  concurrent placements with room for 10, the 10 oldest records win, instead of every placer
//  counting all 20 and refusing. A record whose placer crashed before committing is counted by
//  every later placer: conservative, never an overcommit.
import { FailedPreconditionError, isN0Error } from './errors';
import { scheduleCompute, scheduleStorage, type ComputeScheduleOptions, type ScheduleOptions } from './logic/scheduler';
import { allocatableStatus, type Fit } from './logic/resources';
import { scheduleOn, type ComputeRequest, type StorageRequest } from './scheduling';
import type { Store } from './store/store';
import { API_VERSION, type BlockStorage, type Node, type NodeStatus, type Reservation as ReservationDoc, type VirtualMachine } from './types';

export type Reservation = { what: 'compute'; value: ComputeRequest } | { what: 'storage'; value: StorageRequest };

/** The annotation a placed VM's (or disk's) entry carries in the seed's view, naming its owner. */
export const VM_RESERVED_BY = 'n0core/provisioning/virtual_machine/virtual_machine/reserved_by';
export const BLOCK_STORAGE_RESERVED_BY = 'n0core/provisioning/block_storage/reserved_by';

/**
 * The Ready reason a VM's or disk's status carries from its placement record until the next step
 * rewrites it: a record still in that state may not be committed yet.
 */
export const PLACED_REASON = { VirtualMachine: 'Scheduled', BlockStorage: 'Creating' } as const;

/** The kinds whose objects are placement records. */
export type RecordKind = 'VirtualMachine' | 'BlockStorage' | 'Reservation';
export type Revisions = Partial<Record<RecordKind, string>>;

/** What is placed on one node. */
export interface Placed {
  virtualMachines: readonly VirtualMachine[];
  blockStorages: readonly BlockStorage[];
  reservations: readonly ReservationDoc[];
}

/** Where a placer reads from: its informer cache (controllers), or the store itself (the facade). */
export interface PlacementView {
  /** The scheduler's candidates: `pinned` only when given, else every node. */
  nodes(pinned?: string): Promise<Node[]>;
  placedOn(node: string): Promise<Placed>;
  /** Resolves once the view has seen every record up to `revisions` (a fresh read always has). */
  caughtUp(revisions: Revisions): Promise<void>;
}

/** A Reservation's object name: one per (what, node, key), so reserving again finds it. */
export function reservationName(what: Reservation['what'], node: string, key: string): string {
  return `${what}.${node}.${key}`;
}

/** What a VM asks of its node, in the seed's field names (a request defaults to its limit). */
export const vmCompute = (vm: Pick<VirtualMachine, 'spec'>): ComputeRequest => ({
  request_cpu_milli_core: vm.spec.request_cpu_milli_core ?? vm.spec.limit_cpu_milli_core,
  limit_cpu_milli_core: vm.spec.limit_cpu_milli_core,
  request_memory_bytes: vm.spec.request_memory_bytes ?? vm.spec.limit_memory_bytes,
  limit_memory_bytes: vm.spec.limit_memory_bytes,
});

/** A Reservation's value in the seed's field names. */
export function reservationValue(r: ReservationDoc): ComputeRequest | StorageRequest {
  const s = r.spec;
  return s.what === 'compute'
    ? { request_cpu_milli_core: s.request_cpu_milli_core ?? 0, limit_cpu_milli_core: s.limit_cpu_milli_core ?? 0, request_memory_bytes: s.request_memory_bytes ?? 0, limit_memory_bytes: s.limit_memory_bytes ?? 0 }
    : { request_bytes: s.request_bytes ?? 0, limit_bytes: s.limit_bytes ?? 0 };
}

/**
 * The Node as the seed shows it: reserved_computes / reserved_storages (keyed as before: a VM's or
 * disk's name, or the reservation's key) and allocatable, rendered from what is placed on it.
 */
export function renderNode(node: Node, placed: Placed): Node {
  const computes: NonNullable<NodeStatus['reserved_computes']> = {};
  const storages: NonNullable<NodeStatus['reserved_storages']> = {};
  // Entries are built field by field: every placement renders its node, so this runs once per VM
  // and disk on the node (100 + 100 at 10,000 VMs on 100 nodes), and an object spread after a
  // property goes through V8's slow generic copy (see api/server/convert.ts).
  for (const r of placed.reservations) {
    const value = reservationValue(r);
    const entry = r.metadata.annotations ? Object.assign({ annotations: r.metadata.annotations }, value) : value;
    if (r.spec.what === 'compute') computes[r.spec.key] = entry as ComputeRequest; else storages[r.spec.key] = entry as StorageRequest;
  }
  for (const vm of placed.virtualMachines) {
    const name = vm.metadata.name;
    const c = vmCompute(vm);
    computes[name] = {
      annotations: { [VM_RESERVED_BY]: name },
      request_cpu_milli_core: c.request_cpu_milli_core, limit_cpu_milli_core: c.limit_cpu_milli_core,
      request_memory_bytes: c.request_memory_bytes, limit_memory_bytes: c.limit_memory_bytes,
    };
  }
  for (const bs of placed.blockStorages) {
    storages[bs.metadata.name] = { annotations: { [BLOCK_STORAGE_RESERVED_BY]: bs.metadata.name }, request_bytes: bs.spec.request_bytes, limit_bytes: bs.spec.limit_bytes };
  }
  const { placement: _counter, ...status } = node.status ?? {};
  const rendered: Node = { ...node, status: { ...status, reserved_computes: computes, reserved_storages: storages } };
  rendered.status!.allocatable = allocatableStatus(rendered);
  return rendered;
}

/**
 * The node a disk is placed on: its status's, or, for a disk pinned when it was created
 * (spec.node_name, e.g. GenerateBlockStorage's overlay on its base's node) that no reconcile has
 * written yet, its spec's. Such a disk's creation is its placement record (step 2), so the
 * reconciler commits it without writing a record first; its first status write names the node.
 */
export function blockStorageNode(bs: BlockStorage): string | undefined {
  return bs.status?.node_name ?? (bs.spec.node_name && readyReason(bs) === undefined ? bs.spec.node_name : undefined);
}

/** Groups everything placed, by node (one pass over each kind). */
export function groupPlaced(vms: readonly VirtualMachine[], disks: readonly BlockStorage[], reservations: readonly ReservationDoc[]): (node: string) => Placed {
  const by = new Map<string, { virtualMachines: VirtualMachine[]; blockStorages: BlockStorage[]; reservations: ReservationDoc[] }>();
  const of = (node: string) => { let p = by.get(node); if (!p) by.set(node, p = { virtualMachines: [], blockStorages: [], reservations: [] }); return p; };
  for (const vm of vms) if (vm.status?.node_name) of(vm.status.node_name).virtualMachines.push(vm);
  for (const bs of disks) { const n = blockStorageNode(bs); if (n) of(n).blockStorages.push(bs); }
  for (const r of reservations) of(r.spec.node_name).reservations.push(r);
  return (node) => by.get(node) ?? { virtualMachines: [], blockStorages: [], reservations: [] };
}

/** `nodes` as the seed shows them, rendered from fresh lists of everything placed (the facade's GetNode/ListNodes, and tests). */
export async function renderFromStore(store: Store, nodes: readonly Node[]): Promise<Node[]> {
  const [vms, disks, reservations] = await Promise.all([store.list('VirtualMachine'), store.list('BlockStorage'), store.list('Reservation')]);
  const placed = groupPlaced(vms.items, disks.items, reservations.items);
  return nodes.map((n) => renderNode(n, placed(n.metadata.name)));
}

/** One stored Node as the seed shows it. */
export async function renderedNode(store: Store, name: string): Promise<Node> {
  return (await renderFromStore(store, [await store.get('Node', name)]))[0];
}

/** A view reading the store afresh: always caught up (it reads after the counter). */
export function storeView(store: Store): PlacementView {
  return {
    async nodes(pinned) {
      if (pinned === undefined) return (await store.list('Node')).items;
      try { return [await store.get('Node', pinned)]; } catch (err) { if (isN0Error(err, 'NotFound')) return []; throw err; }
    },
    async placedOn(node) {
      const [vms, disks, reservations] = await Promise.all([store.list('VirtualMachine'), store.list('BlockStorage'), store.list('Reservation')]);
      return groupPlaced(vms.items, disks.items, reservations.items)(node);
    },
    caughtUp: async () => undefined,
  };
}

/** A resourceVersion as a number to order by (-1 for none). */
export const revisionNumber = (rv: string | undefined): bigint => (rv !== undefined && /^\d+$/.test(rv) ? BigInt(rv) : -1n);
export const newer = (a: string | undefined, b: string | undefined): string | undefined => (revisionNumber(b) > revisionNumber(a) ? b : a);

/** What a record's commit needs: which object, at which revision, and how it must fit. */
export interface PlacementRecord {
  kind: RecordKind;
  key: string;
  /** Where it was recorded (set by commitPlacement). */
  nodeName?: string;
  resourceVersion: string;
  reservation: Reservation;
}

function fitOf(node: Node, r: PlacementRecord): Fit {
  try {
    scheduleOn(node, r.reservation.what, r.key, r.reservation.value);
    return { fits: true };
  } catch (err) {
    if (isN0Error(err, 'FailedPrecondition')) return { fits: false, reason: (err as Error).message };
    throw err;
  }
}

const readyReason = (o: { status?: { conditions?: { type: string; reason?: string }[] } }) => o.status?.conditions?.find((c) => c.type === 'Ready')?.reason;

/**
 * What a commit counts: every committed placement (a record whose revision the counter covers, or
 * that has moved past its placement), its own record, and the records of its kind older than its
 * own; newer records that no commit covers yet are theirs to count against this one.
 */
function counted(placed: Placed, own: PlacementRecord, committed: Revisions): Placed {
  const ownRv = revisionNumber(own.resourceVersion);
  const keep = (kind: RecordKind, name: string, rv: string | undefined, fresh: boolean) => {
    if (!fresh || (kind === own.kind && name === ownName(own))) return true;
    const n = revisionNumber(rv);
    return n <= revisionNumber(committed[kind]) || (kind === own.kind && n < ownRv);
  };
  return {
    virtualMachines: placed.virtualMachines.filter((vm) => keep('VirtualMachine', vm.metadata.name, vm.metadata.resourceVersion, readyReason(vm) === PLACED_REASON.VirtualMachine)),
    blockStorages: placed.blockStorages.filter((bs) => keep('BlockStorage', bs.metadata.name, bs.metadata.resourceVersion, readyReason(bs) === undefined || (bs.status?.state === 'PENDING' && readyReason(bs) === PLACED_REASON.BlockStorage))),
    reservations: placed.reservations.filter((r) => keep('Reservation', r.metadata.name, r.metadata.resourceVersion, true)),
  };
}

/** The object name of a record (a Reservation's is not its key). */
const ownName = (r: PlacementRecord): string => (r.kind === 'Reservation' ? reservationName(r.reservation.what, r.nodeName ?? '', r.key) : r.key);

/** Step 3: FailedPreconditionError naming the shortfall when the recorded placement overcommits `nodeName`. */
export async function commitPlacement(store: Store, view: PlacementView, nodeName: string, placement: PlacementRecord): Promise<void> {
  const record = { ...placement, nodeName };
  for (let attempt = 0; ; attempt++) {
    let node: Node;
    try {
      node = await store.get('Node', nodeName);
    } catch (err) {
      if (isN0Error(err, 'NotFound')) throw new FailedPreconditionError(`cannot place ${record.key} on node ${nodeName}: no such node`);
      throw err;
    }
    const counter = node.status?.placement ?? {};
    // A commit after ours already counted our record (its view had seen this kind past it) and
    // found everything fit: a pass that stopped after committing commits again for nothing.
    if (revisionNumber(counter.revisions?.[record.kind]) >= revisionNumber(record.resourceVersion)) return;
    const revisions: Revisions = { ...counter.revisions, [record.kind]: newer(counter.revisions?.[record.kind], record.resourceVersion) };
    await view.caughtUp(revisions);
    const f = fitOf(renderNode(node, counted(await view.placedOn(nodeName), record, counter.revisions ?? {})), record);
    if (!f.fits) throw new FailedPreconditionError(f.reason);
    try {
      await store.update({ ...node, status: { ...node.status, placement: { generation: (counter.generation ?? 0) + 1, revisions } } }, { subresource: 'status' });
      return;
    } catch (err) {
      // Another placement (or a Node status write) came between: count again.
      if (!isN0Error(err, 'Conflict') || attempt >= 50) throw err;
    }
  }
}

/** Writes (step 2) and removes (after a refused commit) one placement's record. */
export interface Recorder {
  record(nodeName: string): Promise<PlacementRecord>;
  undo(nodeName: string): Promise<void>;
}

/** Chooses a node for `key`, records and commits there; returns the node's name. */
export async function placeAndRecord(store: Store, view: PlacementView, key: string, r: Reservation, recorder: Recorder, options: ComputeScheduleOptions & ScheduleOptions = {}): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const nodes = await candidates(view, options);
    const rendered = await Promise.all(nodes.map(async (n) => renderNode(n, await view.placedOn(n.metadata.name))));
    const { nodeName } = r.what === 'compute'
      ? scheduleCompute(rendered, { name: key, requestCpuMilli: r.value.request_cpu_milli_core, limitCpuMilli: r.value.limit_cpu_milli_core, requestMemoryBytes: r.value.request_memory_bytes, limitMemoryBytes: r.value.limit_memory_bytes }, options)
      : scheduleStorage(rendered, { name: key, requestBytes: r.value.request_bytes, limitBytes: r.value.limit_bytes }, options);
    const record = await recorder.record(nodeName);
    try {
      await commitPlacement(store, view, nodeName, record);
      return nodeName;
    } catch (err) {
      // Any other failure leaves the record: it counts for everyone until a pass commits it (or
      // the object goes), which is what a placer that died here leaves too.
      if (!isN0Error(err, 'FailedPrecondition')) throw err;
      await recorder.undo(nodeName);
      // Someone took the room between our look and our commit: look again, a few times.
      if (attempt >= 3 || options.pinnedNode) throw err;
    }
  }
}

/**
 * The nodes the scheduler must look at: just one when the request is pinned (by the user, or by
 * disks already placed), every node otherwise.
 */
function candidates(view: PlacementView, options: ComputeScheduleOptions & ScheduleOptions): Promise<Node[]> {
  const disksOn = new Set((options.blockStorages ?? []).flatMap((b) => (b.nodeName ? [b.nodeName] : [])));
  const pinned = options.pinnedNode ?? (disksOn.size === 1 ? [...disksOn][0] : undefined);
  return view.nodes(disksOn.size > 1 ? undefined : pinned);
}

/** The Reservation document of a seed reservation. */
export function reservationDocument(nodeName: string, key: string, r: Reservation, annotations?: Record<string, string>): ReservationDoc {
  return {
    apiVersion: API_VERSION, kind: 'Reservation',
    metadata: { name: reservationName(r.what, nodeName, key), ...(annotations && Object.keys(annotations).length ? { annotations } : {}) },
    spec: { node_name: nodeName, what: r.what, key, ...r.value },
  };
}

/** Creates `wanted`, or changes the Reservation already there; `previous` is what to restore. */
async function writeReservation(store: Store, wanted: ReservationDoc): Promise<{ written: ReservationDoc; previous?: ReservationDoc }> {
  for (let attempt = 0; ; attempt++) {
    let previous: ReservationDoc;
    try {
      return { written: await store.create(wanted) };
    } catch (err) {
      if (!isN0Error(err, 'AlreadyExists')) throw err;
    }
    try {
      previous = await store.get('Reservation', wanted.metadata.name);
    } catch (err) {
      if (isN0Error(err, 'NotFound') && attempt < 3) continue; // released in between
      throw err;
    }
    if (JSON.stringify([previous.spec, previous.metadata.annotations]) === JSON.stringify([wanted.spec, wanted.metadata.annotations])) return { written: previous, previous };
    return { written: await store.update({ ...previous, metadata: { ...previous.metadata, annotations: wanted.metadata.annotations }, spec: wanted.spec }), previous };
  }
}

async function undoReservation(store: Store, written: ReservationDoc, previous: ReservationDoc | undefined): Promise<void> {
  if (previous === written) return;
  try {
    if (previous) await store.update({ ...written, metadata: { ...written.metadata, annotations: previous.metadata.annotations }, spec: previous.spec });
    else await store.delete('Reservation', written.metadata.name, { resourceVersion: written.metadata.resourceVersion });
  } catch (err) {
    // Changed since by someone else: theirs stands.
    if (!isN0Error(err, 'NotFound') && !isN0Error(err, 'Conflict')) throw err;
  }
}

/** Records a seed reservation as a Reservation object (create, or change in place). */
function reservationRecorder(store: Store, key: string, r: Reservation, annotations: Record<string, string> | undefined): Recorder & { written?: ReservationDoc } {
  let done: { written: ReservationDoc; previous?: ReservationDoc } | undefined;
  return {
    get written() { return done?.written; },
    async record(nodeName) {
      done = await writeReservation(store, reservationDocument(nodeName, key, r, annotations));
      return { kind: 'Reservation', key, resourceVersion: done.written.metadata.resourceVersion!, reservation: r };
    },
    async undo() { if (done) await undoReservation(store, done.written, done.previous); },
  };
}

/**
 * The seed's Reserve*: creates (or changes) the Reservation of `key` on `nodeName` and commits it;
 * idempotent when it already holds the same values. A refused commit leaves things as they were.
 */
export async function reserveOn(store: Store, nodeName: string, key: string, r: Reservation, annotations?: Record<string, string>): Promise<ReservationDoc> {
  const recorder = reservationRecorder(store, key, r, annotations);
  const record = await recorder.record(nodeName);
  try {
    await commitPlacement(store, storeView(store), nodeName, record);
  } catch (err) {
    if (isN0Error(err, 'FailedPrecondition')) await recorder.undo(nodeName);
    throw err;
  }
  return recorder.written!;
}

/** The seed's Schedule*: places the Reservation of `key` wherever it fits. */
export async function scheduleReservation(store: Store, key: string, r: Reservation, annotations?: Record<string, string>): Promise<ReservationDoc> {
  const recorder = reservationRecorder(store, key, r, annotations);
  await placeAndRecord(store, storeView(store), key, r, recorder);
  return recorder.written!;
}

/** The seed's Release*: NotFound when there is no such reservation. */
export async function releaseOn(store: Store, nodeName: string, key: string, what: Reservation['what']): Promise<void> {
  await store.delete('Reservation', reservationName(what, nodeName, key));
}
