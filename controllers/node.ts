// Node reconciler: a node is Ready while its agent's heartbeat (its NodeLease's renew_time, or the
// Node's own status.last_heartbeat_time when later: api/lease.ts) is younger than the timeout. Nothing writes "NotReady" when an agent dies, so the reconciler looks
// again just after the heartbeat would expire (requeueAfter). What a node has given away is not
// its to publish: it is derived from what is placed there (api/placement.ts). Its finalizer
// protects a Node in deletion while VMs or disks are placed on it (or the seed's Reservations
// name it), so their own finalizers still find the node's agent to clean up with.
import { isN0Error } from '../api/errors';
import { DELETION_BLOCKED, dependantsIn, describeDependants, FINALIZERS } from '../api/admission';
import { getWithFinalizer } from './runtime/finalizer';
import { mutate } from '../api/store/mutate';
import type { Node, NodeStatus } from '../api/types';
import type { Cache } from './runtime/types';
import { setCondition } from '../api/conditions';
import { lastHeartbeat } from '../api/lease';
import { hasLegacyReservations, migrateLegacyReservations } from './legacy-reservations';
import type { ReconcileContext, ReconcileResult, Reconciler } from './runtime/types';

export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 20_000;

export interface NodeReconcilerOptions {
  heartbeatTimeoutMs?: number;
  /** Clock, for tests. */
  now?: () => Date;
}

export interface Readiness {
  ready: boolean;
  reason: 'HeartbeatFresh' | 'HeartbeatTimeout' | 'NoHeartbeat';
  message: string;
  /** When to look again (only while Ready: the moment the heartbeat would expire). */
  recheckAfterMs?: number;
}

/** Pure: readiness from the last heartbeat. Messages stay constant between heartbeats, so re-evaluating writes nothing. */
export function readiness(lastHeartbeat: string | undefined, now: Date, timeoutMs: number): Readiness {
  const seconds = `${Math.round(timeoutMs / 100) / 10}s`;
  const at = lastHeartbeat === undefined ? NaN : Date.parse(lastHeartbeat);
  if (Number.isNaN(at)) {
    return { ready: false, reason: 'NoHeartbeat', message: lastHeartbeat === undefined ? 'the node agent has not reported a heartbeat yet' : `last_heartbeat_time ${JSON.stringify(lastHeartbeat)} is not a timestamp` };
  }
  const expiresIn = at + timeoutMs - now.getTime();
  if (expiresIn < 0) {
    return { ready: false, reason: 'HeartbeatTimeout', message: `no agent heartbeat since ${lastHeartbeat} (timeout ${seconds})` };
  }
  // A heartbeat from the future (clock skew) is capped: never trust it for longer than one timeout.
  return { ready: true, reason: 'HeartbeatFresh', message: `the node agent reports heartbeats (timeout ${seconds})`, recheckAfterMs: Math.min(timeoutMs, expiresIn) + 50 };
}

/** A placed object moved or went: the deleting Node it was on looks again (others are not requeued). */
const deletingNodes = (obj: { status?: { node_name?: string }; spec?: { node_name?: string } }, cache: Cache, node = obj.status?.node_name): string[] => {
  return node && cache.get('Node', node)?.metadata.deletionTimestamp ? [node] : [];
};

/** Condition a Node in deletion carries while something holds it (shown by n0ctl describe). */
const DELETING = 'Deleting';

export class NodeReconciler implements Reconciler<'Node'> {
  readonly kind = 'Node' as const;
  readonly watches = [
    { kind: 'VirtualMachine' as const, map: (obj: any, cache: Cache) => deletingNodes(obj, cache) },
    { kind: 'BlockStorage' as const, map: (obj: any, cache: Cache) => deletingNodes(obj, cache) },
    { kind: 'Reservation' as const, map: (obj: any, cache: Cache) => deletingNodes(obj, cache, obj.spec.node_name) },
    // A renewal requeues its Node, judged from the cache: it writes only when readiness flips.
    { kind: 'NodeLease' as const, map: (lease: any) => [lease.metadata.name as string] },
  ];
  private readonly timeoutMs: number;
  private readonly now: () => Date;

  constructor(options: NodeReconcilerOptions = {}) {
    this.timeoutMs = options.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
    if (!(this.timeoutMs > 0)) throw new RangeError(`heartbeatTimeoutMs must be positive, got ${this.timeoutMs}`);
    this.now = options.now ?? (() => new Date());
  }

  async reconcile(name: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    // Most Node events are lease renewals and placements that leave readiness as it is: judge the cached copy first and touch the store only when something is to write.
    const cached = ctx.cache.get('Node', name);
    // Lists stored by an older version first: until they are Reservations, placement cannot see them.
    if (hasLegacyReservations(cached)) {
      const again = await migrateLegacyReservations(ctx, name);
      if (again !== undefined) return { requeueAfterMs: again };
    }
    let held = false;
    // The store is read only while the finalizer is missing or the node is being deleted.
    if (!cached || cached.metadata.deletionTimestamp || !cached.metadata.finalizers?.includes(FINALIZERS.node)) {
      const node = await getWithFinalizer(ctx, 'Node', name, FINALIZERS.node);
      if (!node) return {};
      if (node.metadata.deletionTimestamp) {
        held = await this.finalize(node, ctx);
        if (!held) return {};
      }
    }
    // A held Node still reports readiness (its VMs' clean-up needs its agent); the watches requeue
    // it when what holds it goes, the delay covers a missed event.
    if (held) return { requeueAfterMs: Math.min(30_000, after(await this.readinessPass(name, ctx, cached)).requeueAfterMs ?? 30_000) };
    return after(await this.readinessPass(name, ctx, cached));
  }

  private async readinessPass(name: string, ctx: ReconcileContext, cached: Node | undefined): Promise<Readiness | undefined> {
    if (cached) {
      const { verdict, changes } = this.evaluate(cached, ctx.cache);
      if (!changes) return verdict;
    }
    let verdict: Readiness | undefined;
    try {
      await mutate(ctx.store, 'Node', name, (node: Node) => {
        // Evaluated per attempt: a conflict is usually a newer heartbeat.
        const result = this.evaluate(node, ctx.cache);
        verdict = result.verdict;
        if (!result.changes) return false;
        node.status = { ...node.status, ...result.changes };
      }, { subresource: 'status' });
    } catch (err) {
      if (isN0Error(err, 'NotFound')) return undefined;
      throw err;
    }
    return verdict;
  }

  /**
   * A Node in deletion: gone (its finalizer dropped) once nothing is placed or reserved on it,
   * else held with a Deleting condition naming what holds it. True while held.
   */
  private async finalize(node: Node, ctx: ReconcileContext): Promise<boolean> {
    const name = node.metadata.name;
    const dependants = await dependantsIn(ctx.store, node);
    if (dependants.length) {
      const message = `deletion waits for ${describeDependants(dependants)}`;
      if (conditionChanged(node, DELETING, DELETION_BLOCKED, message)) {
        await mutate(ctx.store, 'Node', name, (n) => {
          if (!conditionChanged(n, DELETING, DELETION_BLOCKED, message)) return false;
          n.status = { ...n.status, conditions: setCondition(n.status?.conditions, { type: DELETING, status: 'True', reason: DELETION_BLOCKED, message }, n.metadata.generation ?? 1) };
        }, { subresource: 'status' }).catch((err) => { if (!isN0Error(err, 'NotFound')) throw err; });
      }
      return true;
    }
    await mutate(ctx.store, 'Node', name, (n) => {
      if (!n.metadata.finalizers?.includes(FINALIZERS.node)) return false;
      n.metadata.finalizers = n.metadata.finalizers.filter((f) => f !== FINALIZERS.node);
    }).catch((err) => { if (!isN0Error(err, 'NotFound')) throw err; });
    return false;
  }

  /**
   * The status fields this reconciler owns, as the heartbeat says they should be; `changes` is
   * undefined when the node already says so. Pure, and compares only those fields.
   */
  private evaluate(node: Node, cache: Cache): { verdict: Readiness; changes?: Pick<NodeStatus, 'state' | 'observedGeneration' | 'conditions'> } {
    const now = this.now();
    const verdict = readiness(lastHeartbeat(node, cache.get('NodeLease', node.metadata.name)), now, this.timeoutMs);
    const generation = node.metadata.generation ?? 1;
    const status = node.status ?? {};
    const wanted = {
      state: verdict.ready ? 'Ready' : 'NotReady',
      observedGeneration: generation,
      conditions: setCondition(status.conditions, { type: 'Ready', status: verdict.ready ? 'True' : 'False', reason: verdict.reason, message: verdict.message }, generation, now),
    } as const;
    const same = JSON.stringify([status.state, status.observedGeneration, status.conditions]) === JSON.stringify([wanted.state, wanted.observedGeneration, wanted.conditions]);
    return { verdict, changes: same ? undefined : wanted };
  }
}

function conditionChanged(node: Node, type: string, reason: string, message: string): boolean {
  const c = node.status?.conditions?.find((x) => x.type === type);
  return c?.reason !== reason || c?.message !== message;
}

function after(verdict: Readiness | undefined): ReconcileResult {
  return verdict?.recheckAfterMs !== undefined ? { requeueAfterMs: verdict.recheckAfterMs } : {};
}
