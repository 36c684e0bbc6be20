// BlockStorage reconciler: place the disk on a node, reserve its storage there, have the agent
// make it (empty, fetched, copied or copy-on-write), report progress and state; on delete,
// remove the file and release the reservation.
import type { BlockStorage, BlockStorageStatus } from '../api/types';
import { isN0Error } from '../api/errors';
import { setCondition, type ConditionInput } from '../api/conditions';
import { mutate } from '../api/store/mutate';
import { FINALIZERS } from '../api/server/context';
import type { AgentResolver } from './agents';
import { placeAndReserve, releaseOn } from '../api/placement';
import { getWithFinalizer } from './runtime/finalizer';
import type { ReconcileContext, ReconcileResult, Reconciler } from './runtime/types';
import { logger } from '../api/log';

const RESERVED_BY = 'n0core/provisioning/block_storage/reserved_by';

export class BlockStorageReconciler implements Reconciler<'BlockStorage'> {
  readonly kind = 'BlockStorage' as const;
  private readonly log = logger('blockstorage-controller');
  constructor(private readonly agents: AgentResolver) {}

  async reconcile(name: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    const bs = await getWithFinalizer(ctx, 'BlockStorage', name, FINALIZERS.blockStorage);
    if (!bs) return {};
    if (bs.metadata.deletionTimestamp) return this.finalize(bs, ctx);
    const generation = bs.metadata.generation ?? 1;

    // 1. Placement: kept once chosen; a copy or overlay goes where its source is.
    let nodeName = bs.status?.node_name;
    if (!nodeName) {
      const sourceName = bs.spec.backing_block_storage ?? bs.spec.source_block_storage;
      let pinned = bs.spec.node_name;
      if (sourceName) {
        const source = ctx.cache.get('BlockStorage', sourceName) ?? await ctx.store.get('BlockStorage', sourceName).catch(() => undefined);
        const sourceNode = source?.status?.node_name;
        if (!source || !sourceNode || source.status?.state === 'PENDING') {
          await this.setStatus(ctx, name, generation, { state: 'PENDING' }, { type: 'Ready', status: 'False', reason: 'WaitingForSource', message: `waiting for block storage ${sourceName} to be available` });
          return { requeueAfterMs: 2000 };
        }
        pinned = sourceNode;
      }
      try {
        nodeName = await placeAndReserve(ctx.store, name, { what: 'storage', value: { request_bytes: bs.spec.request_bytes, limit_bytes: bs.spec.limit_bytes } }, { [RESERVED_BY]: name }, { pinnedNode: pinned });
      } catch (err) {
        if (!isN0Error(err, 'FailedPrecondition')) throw err;
        await this.setStatus(ctx, name, generation, { state: 'FAILED' }, { type: 'Ready', status: 'False', reason: 'Unschedulable', message: (err as Error).message });
        return { requeueAfterMs: 15000 };
      }
      await this.setStatus(ctx, name, generation, { node_name: nodeName, state: 'PENDING' }, { type: 'Ready', status: 'False', reason: 'Creating', message: `creating on node ${nodeName}` });
    }

    // 2. Make it on the node (idempotent; long fetches and copies report progress).
    const agent = this.agents(nodeName);
    let obs;
    try {
      obs = await agent.ensureBlockStorage({
        name, limitBytes: bs.spec.limit_bytes, sourceUrl: bs.spec.source_url, sourceSha256: bs.spec.source_sha256,
        copyFrom: bs.spec.source_block_storage, backingFrom: bs.spec.backing_block_storage,
      });
    } catch (err) {
      if (isN0Error(err, 'InvalidArgument') || isN0Error(err, 'FailedPrecondition')) {
        await this.setStatus(ctx, name, generation, { state: 'FAILED' }, { type: 'Ready', status: 'False', reason: 'AgentRejected', message: (err as Error).message });
        return { requeueAfterMs: 30000 };
      }
      await this.setStatus(ctx, name, generation, {}, { type: 'Ready', status: 'Unknown', reason: 'AgentUnavailable', message: `node ${nodeName}: ${(err as Error).message}` });
      throw err;
    }
    if (obs.error) {
      await this.setStatus(ctx, name, generation, { state: 'FAILED' }, { type: 'Ready', status: 'False', reason: bs.spec.source_url ? 'FetchFailed' : 'CreateFailed', message: obs.error });
      return { requeueAfterMs: 30000 };
    }
    if (obs.inProgress || !obs.present) {
      const p = obs.inProgress;
      await this.setStatus(ctx, name, generation, { state: 'PENDING', progress: p ? { bytes_done: p.bytesDone, bytes_total: p.bytesTotal, phase: p.phase } : undefined },
        { type: 'Ready', status: 'False', reason: 'InProgress', message: p ? `${p.phase}: ${p.bytesDone}/${p.bytesTotal || '?'} bytes` : 'creating' });
      return { requeueAfterMs: 1000 };
    }
    // 3. Grow when the limit was raised (UpdateBlockStorage).
    if (obs.info && obs.info.virtualSize < bs.spec.limit_bytes) {
      obs = await agent.resizeBlockStorage(name, bs.spec.limit_bytes);
    }
    const fresh = await ctx.store.get('BlockStorage', name);
    const user = fresh.status?.in_use_by || fresh.spec.claimed_by;
    const state = fresh.spec.protected ? 'PROTECTED' : user ? 'IN_USE' : 'AVAILABLE';
    await this.setStatus(ctx, name, generation, { state, actual_limit_bytes: obs.info?.virtualSize, progress: undefined },
      { type: 'Ready', status: 'True', reason: state, message: `on node ${nodeName}` });
    return {};
  }

  private async setStatus(ctx: ReconcileContext, name: string, generation: number, fields: Partial<BlockStorageStatus>, condition: ConditionInput): Promise<void> {
    await mutate(ctx.store, 'BlockStorage', name, (b) => {
      b.status ??= {};
      const before = JSON.stringify(b.status);
      for (const [k, v] of Object.entries(fields)) {
        if (v === undefined) delete (b.status as any)[k]; else (b.status as any)[k] = v;
      }
      b.status.observedGeneration = generation;
      b.status.conditions = setCondition(b.status.conditions, condition, generation);
      return JSON.stringify(b.status) !== before;
    }, { subresource: 'status' });
  }

  private async finalize(bs: BlockStorage, ctx: ReconcileContext): Promise<ReconcileResult> {
    const name = bs.metadata.name;
    if (bs.status?.in_use_by) {
      await this.setStatus(ctx, name, bs.metadata.generation ?? 1, {}, { type: 'Ready', status: 'False', reason: 'InUse', message: `waiting for VirtualMachine ${bs.status.in_use_by} to release it` });
      return { requeueAfterMs: 5000 };
    }
    const nodeName = bs.status?.node_name;
    if (nodeName) {
      await this.agents(nodeName).deleteBlockStorage(name);
      await releaseOn(ctx.store, nodeName, name, 'storage');
    }
    await mutate(ctx.store, 'BlockStorage', name, (b) => {
      b.metadata.finalizers = (b.metadata.finalizers ?? []).filter((f) => f !== FINALIZERS.blockStorage);
    }).catch((err) => { if (!isN0Error(err, 'NotFound')) throw err; });
    this.log.info(`block storage ${name} deleted${nodeName ? ` from node ${nodeName}` : ''}`);
    return {};
  }
}
