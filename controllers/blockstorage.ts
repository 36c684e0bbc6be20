// BlockStorage reconciler: place the disk on a node, reserve its storage there, have the agent
// make it (empty, fetched, copied or copy-on-write), report progress and state; on delete,
// remove the file and release the reservation — but only once nothing needs the disk any more
// (its finalizer is also its protection, like kubernetes.io/pvc-protection: another disk's
// backing file, a copy in progress, a VM naming it), whichever entrance deleted it.
import type { BlockStorage, BlockStorageStatus, VirtualMachine } from '../api/types';
import { isN0Error } from '../api/errors';
import { setCondition, type ConditionInput } from '../api/conditions';
import { mutate } from '../api/store/mutate';
import { DELETION_BLOCKED, describeDependants, FINALIZERS, strategyFor, type World } from '../api/admission';
import type { AgentResolver } from './agents';
import { blockStorageNode, commitPlacement, placeAndRecord, type Reservation } from '../api/placement';
import { cacheView, USAGE_INDEXES } from './usage';
import { getWithFinalizer } from './runtime/finalizer';
import type { ReconcileContext, ReconcileResult, Reconciler } from './runtime/types';
import { logger } from '../api/log';
import { recordTransition, type TransitionEvents } from './runtime/events';


const READY: TransitionEvents['x'] = { type: 'Normal', reason: 'Provisioned' };
/** Events for the disk's Ready reasons (progress, waiting and retries of the same step are not news). */
const EVENTS: TransitionEvents = {
  Creating: { type: 'Normal', reason: 'Scheduled' }, AVAILABLE: READY, IN_USE: READY, PROTECTED: READY,
  Unschedulable: { type: 'Warning' }, SourceBeingDeleted: { type: 'Warning' }, AgentRejected: { type: 'Warning' },
  FetchFailed: { type: 'Warning' }, CreateFailed: { type: 'Warning' }, AgentUnavailable: { type: 'Warning' },
  [DELETION_BLOCKED]: { type: 'Normal' },
};
/** How often a running fetch or copy is looked at (and its progress written). */
const PROGRESS_MS = 1000;
const READY_REASONS = new Set(['AVAILABLE', 'IN_USE', 'PROTECTED']);

const INDEX = { bySource: 'blockstorage-by-source', byBlockStorage: 'vm-by-blockstorage-protection' } as const;

/** The Ready condition of a disk that is made: its state, and where. */
const readyCondition = (state: string, nodeName: string | undefined): ConditionInput => ({ type: 'Ready', status: 'True', reason: state, message: `on node ${nodeName}` });

/**
 * A VM's claim on a made disk (`vm`) or its release (undefined), as the VM reconciler writes it:
 * with the state and Ready condition this reconciler would write next, so the claim is the disk's
 * one write for it, and the pass the claim wakes up has nothing to change. False when it already says so.
 */
export function setUser(b: BlockStorage, vm: string | undefined): boolean {
  const state = vm ? 'IN_USE' : b.spec.protected ? 'PROTECTED' : 'AVAILABLE';
  if (b.status?.in_use_by === vm && b.status?.state === state) return false;
  b.status ??= {};
  if (vm) b.status.in_use_by = vm; else delete b.status.in_use_by;
  b.status.state = state;
  // Only a disk that was made carries a Ready condition to follow (claims wait for AVAILABLE).
  if (READY_REASONS.has(readyReasonOf(b) ?? '')) b.status.conditions = setCondition(b.status.conditions, readyCondition(state, b.status.node_name), b.status.observedGeneration);
  return true;
}

const readyReasonOf = (b: BlockStorage) => b.status?.conditions?.find((c) => c.type === 'Ready')?.reason;

/** A deleting disk's dependants changed: look at it again (only ones in deletion are requeued). */
const deleting = (names: (string | undefined)[], cache: { get(kind: 'BlockStorage', name: string): BlockStorage | undefined }) =>
  names.filter((n): n is string => !!n && !!cache.get('BlockStorage', n)?.metadata.deletionTimestamp);

export class BlockStorageReconciler implements Reconciler<'BlockStorage'> {
  readonly kind = 'BlockStorage' as const;
  readonly indexes = [
    { kind: 'BlockStorage' as const, name: INDEX.bySource, keys: (bs: BlockStorage) => [bs.spec.backing_block_storage, bs.spec.source_block_storage].filter((n): n is string => !!n) },
    { kind: 'VirtualMachine' as const, name: INDEX.byBlockStorage, keys: (vm: VirtualMachine) => vm.spec.block_storage_names ?? [] },
    ...USAGE_INDEXES,
  ] as Reconciler['indexes'];
  readonly watches = [
    { kind: 'BlockStorage' as const, map: (obj: any, cache: any) => deleting([(obj as BlockStorage).spec.backing_block_storage, (obj as BlockStorage).spec.source_block_storage], cache) },
    { kind: 'VirtualMachine' as const, map: (obj: any, cache: any) => deleting((obj as VirtualMachine).spec.block_storage_names ?? [], cache) },
  ];
  private readonly log = logger('blockstorage-controller');
  constructor(private readonly agents: AgentResolver) {}

  async reconcile(name: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    const bs = await getWithFinalizer(ctx, 'BlockStorage', name, FINALIZERS.blockStorage);
    if (!bs) return {};
    if (bs.metadata.deletionTimestamp) return this.finalize(bs, ctx);
    const generation = bs.metadata.generation ?? 1;

    // 1. Placement: kept once chosen; a copy or overlay goes where its source is.
    let nodeName = bs.status?.node_name;
    // Written with every status write until the status names the node: a disk pinned at creation
    // is committed without a record write of its own (api/placement.ts blockStorageNode).
    let recordNode: Partial<BlockStorageStatus> = {};
    const reservation: Reservation = { what: 'storage', value: { request_bytes: bs.spec.request_bytes, limit_bytes: bs.spec.limit_bytes } };
    const unplace = () => this.setStatus(ctx, name, generation, { node_name: undefined, state: 'PENDING' }, { type: 'Ready', status: 'False', reason: 'Unschedulable', message: 'the placement was refused; placing again' });
    if (!nodeName) {
      const sourceName = bs.spec.backing_block_storage ?? bs.spec.source_block_storage;
      let pinned = bs.spec.node_name;
      if (sourceName) {
        const source = ctx.cache.get('BlockStorage', sourceName) ?? await ctx.store.get('BlockStorage', sourceName).catch(() => undefined);
        const sourceNode = source?.status?.node_name;
        if (source?.metadata.deletionTimestamp) {
          await this.setStatus(ctx, name, generation, { state: 'FAILED' }, { type: 'Ready', status: 'False', reason: 'SourceBeingDeleted', message: `block storage ${sourceName} is being deleted; nothing is built on it` });
          return {};
        }
        if (!source || !sourceNode || source.status?.state === 'PENDING') {
          await this.setStatus(ctx, name, generation, { state: 'PENDING' }, { type: 'Ready', status: 'False', reason: 'WaitingForSource', message: `waiting for block storage ${sourceName} to be available` });
          return { requeueAfterMs: 2000 };
        }
        pinned = sourceNode;
      }
      try {
        if (pinned && blockStorageNode(bs) === pinned) {
          // Its creation is the record: commit it (a no-op when a pass already did), then make it.
          await commitPlacement(ctx.store, cacheView(ctx), pinned, { kind: 'BlockStorage', key: name, resourceVersion: bs.metadata.resourceVersion!, reservation });
          nodeName = pinned;
          recordNode = { node_name: pinned };
          ctx.events?.normal(bs, 'Scheduled', `creating on node ${pinned}`);
        } else {
          // Record the node in status, then commit it against the node's placement counter (api/placement.ts).
          nodeName = await placeAndRecord(ctx.store, cacheView(ctx), name, reservation, {
            record: async (n) => {
              const written = await this.setStatus(ctx, name, generation, { node_name: n, state: 'PENDING' }, { type: 'Ready', status: 'False', reason: 'Creating', message: `creating on node ${n}` });
              return { kind: 'BlockStorage', key: name, resourceVersion: written.metadata.resourceVersion!, reservation };
            },
            undo: async () => { if (pinned) await this.agents(pinned).deleteBlockStorage(name); await unplace(); },
          }, { pinnedNode: pinned });
        }
      } catch (err) {
        if (!isN0Error(err, 'FailedPrecondition')) throw err;
        // A pinned disk refused here (its spec grew, or a write gave it a reason before its first
        // pass's status landed) may have been made by an earlier pass killed before that write.
        // Without a node in its status it was never AVAILABLE, so nobody can have written to it:
        // remove it from its pinned node (a no-op there when absent) rather than leave a file no
        // placement accounts for.
        if (pinned) await this.agents(pinned).deleteBlockStorage(name);
        await this.setStatus(ctx, name, generation, { state: 'FAILED' }, { type: 'Ready', status: 'False', reason: 'Unschedulable', message: (err as Error).message });
        return { requeueAfterMs: 15000 };
      }
    } else if (bs.status?.state === 'PENDING' && bs.status.conditions?.find((c) => c.type === 'Ready')?.reason === 'Creating') {
      // Recorded by a pass that may have stopped before its commit: commit (a no-op when done).
      try {
        await commitPlacement(ctx.store, cacheView(ctx), nodeName, { kind: 'BlockStorage', key: name, resourceVersion: bs.metadata.resourceVersion!, reservation });
      } catch (err) {
        if (!isN0Error(err, 'FailedPrecondition')) throw err;
        // As above: a pinned disk an earlier, killed pass made is removed with its placement.
        if (bs.spec.node_name) await this.agents(nodeName).deleteBlockStorage(name);
        await unplace();
        await this.setStatus(ctx, name, generation, { state: 'FAILED' }, { type: 'Ready', status: 'False', reason: 'Unschedulable', message: (err as Error).message });
        return { requeueAfterMs: 15000 };
      }
    }

    // 2. Make it on the node (idempotent; long fetches and copies report progress).
    // Calls cancelled when the reconcile is aborted (leadership lost): a deposed leader stops at once.
    const resolved = this.agents(nodeName);
    const agent = resolved.withSignal?.(ctx.signal) ?? resolved;
    let obs;
    const asked = Date.now();
    try {
      obs = await agent.ensureBlockStorage({
        name, limitBytes: bs.spec.limit_bytes, sourceUrl: bs.spec.source_url, sourceSha256: bs.spec.source_sha256,
        copyFrom: bs.spec.source_block_storage, backingFrom: bs.spec.backing_block_storage,
      });
    } catch (err) {
      if (isN0Error(err, 'InvalidArgument') || isN0Error(err, 'FailedPrecondition')) {
        await this.setStatus(ctx, name, generation, { ...recordNode, state: 'FAILED' }, { type: 'Ready', status: 'False', reason: 'AgentRejected', message: (err as Error).message });
        return { requeueAfterMs: 30000 };
      }
      await this.setStatus(ctx, name, generation, recordNode, { type: 'Ready', status: 'Unknown', reason: 'AgentUnavailable', message: `node ${nodeName}: ${(err as Error).message}` });
      throw err;
    }
    if (obs.error) {
      await this.setStatus(ctx, name, generation, { ...recordNode, state: 'FAILED' }, { type: 'Ready', status: 'False', reason: bs.spec.source_url ? 'FetchFailed' : 'CreateFailed', message: obs.error });
      return { requeueAfterMs: 30000 };
    }
    if (obs.inProgress || !obs.present) {
      const p = obs.inProgress;
      await this.setStatus(ctx, name, generation, { ...recordNode, state: 'PENDING', progress: p ? { bytes_done: p.bytesDone, bytes_total: p.bytesTotal, phase: p.phase } : undefined },
        { type: 'Ready', status: 'False', reason: 'InProgress', message: p ? `${p.phase}: ${p.bytesDone}/${p.bytesTotal || '?'} bytes` : 'creating' });
      // An agent holds the answer while the work runs (completionWaitMs) and answers the moment
      // it ends, so asking again at once loses nothing; one that answers at once is asked once a second.
      return { requeueAfterMs: Math.max(0, PROGRESS_MS - (Date.now() - asked)) };
    }
    // 3. Grow when the limit was raised (UpdateBlockStorage).
    if (obs.info && obs.info.virtualSize < bs.spec.limit_bytes) {
      obs = await agent.resizeBlockStorage(name, bs.spec.limit_bytes);
    }
    const fresh = await ctx.store.get('BlockStorage', name);
    const user = fresh.status?.in_use_by || fresh.spec.claimed_by;
    const state = fresh.spec.protected ? 'PROTECTED' : user ? 'IN_USE' : 'AVAILABLE';
    // Fenced on `fresh`: a VM claiming the disk meanwhile (IN_USE) must not be overwritten by AVAILABLE.
    await this.setStatus(ctx, name, generation, { ...recordNode, state, actual_limit_bytes: obs.info?.virtualSize, progress: undefined },
      readyCondition(state, nodeName), fresh);
    return {};
  }

  /**
   * What still needs this disk, as the store has it: the cache proposes (cheap while something
   * does) and the store confirms, so neither a dependant created a moment ago and not yet cached
   * can lose its backing file, nor one just gone (cache lagging) can make a delete look held.
   */
  private async dependants(bs: BlockStorage, ctx: ReconcileContext) {
    const strategy = strategyFor('BlockStorage');
    const name = bs.metadata.name;
    const cached: World = { blockStorages: ctx.cache.byIndex('BlockStorage', INDEX.bySource, name), virtualMachines: ctx.cache.byIndex('VirtualMachine', INDEX.byBlockStorage, name) };
    const proposed = strategy.dependants(bs, cached);
    if (!proposed.length) {
      const world: World = { blockStorages: (await ctx.store.list('BlockStorage')).items, virtualMachines: (await ctx.store.list('VirtualMachine')).items };
      return strategy.dependants(bs, world);
    }
    const current = async <K extends 'BlockStorage' | 'VirtualMachine'>(kind: K, names: string[]) =>
      (await Promise.all(names.map((n) => ctx.store.get(kind, n).catch((err) => { if (isN0Error(err, 'NotFound')) return undefined; throw err; })))).filter((o) => o !== undefined);
    const of = (kind: string) => [...new Set(proposed.filter((d) => d.kind === kind).map((d) => d.name))];
    return strategy.dependants(bs, {
      blockStorages: await current('BlockStorage', of('BlockStorage')) as BlockStorage[],
      virtualMachines: await current('VirtualMachine', of('VirtualMachine')) as VirtualMachine[],
    });
  }

  /** `known`: the copy `fields` were computed from; the write lands only on its resourceVersion (else Conflict, requeue). */
  private async setStatus(ctx: ReconcileContext, name: string, generation: number, fields: Partial<BlockStorageStatus>, condition: ConditionInput, known?: BlockStorage): Promise<BlockStorage> {
    let previous: string | undefined;
    const written = await mutate(ctx.store, 'BlockStorage', name, (b) => {
      previous = b.status?.conditions?.find((c) => c.type === 'Ready')?.reason;
      b.status ??= {};
      const before = JSON.stringify(b.status);
      for (const [k, v] of Object.entries(fields)) {
        if (v === undefined) delete (b.status as any)[k]; else (b.status as any)[k] = v;
      }
      b.status.observedGeneration = generation;
      b.status.conditions = setCondition(b.status.conditions, condition, generation);
      return JSON.stringify(b.status) !== before;
    }, { subresource: 'status', resourceVersion: known?.metadata.resourceVersion });
    // AVAILABLE -> IN_USE is a claim, not a new disk.
    if (!(READY_REASONS.has(previous ?? '') && READY_REASONS.has(condition.reason ?? ''))) recordTransition(ctx.events, written, previous, condition, EVENTS);
    return written;
  }

  private async finalize(bs: BlockStorage, ctx: ReconcileContext): Promise<ReconcileResult> {
    const name = bs.metadata.name;
    // Once per deletion: a pass after the first finds the disk waiting (or it is gone).
    if (bs.status?.conditions?.find((c) => c.type === 'Ready')?.reason !== DELETION_BLOCKED) ctx.events?.normal(bs, 'Deleting', `deleting block storage ${name}${bs.status?.node_name ? ` from node ${bs.status.node_name}` : ''}`);
    const dependants = await this.dependants(bs, ctx);
    if (dependants.length) {
      // A disk placed by its creation keeps counting on its node while it waits: the write names the node.
      const placed = blockStorageNode(bs);
      await this.setStatus(ctx, name, bs.metadata.generation ?? 1, placed ? { node_name: placed } : {}, { type: 'Ready', status: 'False', reason: DELETION_BLOCKED, message: `deletion waits for ${describeDependants(dependants)}` });
      // The watches requeue it when a dependant changes; the delay covers a missed event.
      return { requeueAfterMs: 30000 };
    }
    // A disk pinned at creation may have been made on its node before any status write named it
    // (a pass killed after the agent's answer; one refused later, e.g. after a grow, writes none):
    // its pinned node is asked too while that Node exists. Deleting a disk an agent lacks is a no-op.
    const pinned = bs.spec.node_name && (ctx.cache.get('Node', bs.spec.node_name) ?? await ctx.store.get('Node', bs.spec.node_name).catch((err) => { if (isN0Error(err, 'NotFound')) return undefined; throw err; })) ? bs.spec.node_name : undefined;
    const nodeName = bs.status?.node_name ?? pinned;
    if (nodeName) await this.agents(nodeName).deleteBlockStorage(name);
    // Its storage is released by its going: what a node gives away is derived from what is placed.
    await mutate(ctx.store, 'BlockStorage', name, (b) => {
      b.metadata.finalizers = (b.metadata.finalizers ?? []).filter((f) => f !== FINALIZERS.blockStorage);
    }).catch((err) => { if (!isN0Error(err, 'NotFound')) throw err; });
    this.log.info(`block storage ${name} deleted${nodeName ? ` from node ${nodeName}` : ''}`);
    return {};
  }
}
