// The controller manager: one informer per kind (a shared read cache), one work queue per
// registered reconciler, enqueueing on changes of the reconciler's own kind and of the kinds it
// `watches`, a periodic resync, and — with a leader elector — workers only while leading.
import { setMaxListeners } from 'node:events';
import { register as globalRegistry, type Registry } from 'prom-client';
import { InvalidArgumentError, isN0Error } from '../../api/errors';
import { logger } from '../../api/log';
import type { Store } from '../../api/store/store';
import { KINDS, type Kind, type KindMap } from '../../api/types';
import { writeFence } from '../../api/store/write-fence';
import { fencedStore } from './fence';
import { Informer } from './informer';
import { sleep } from './sleep';
import { TerminalError, type Cache, type ReconcileContext, type Reconciler } from './types';
import { NO_EVENTS, Recorder, type EventRecorder } from './events';
import { backoffDelay, DEFAULT_BACKOFF, WorkQueue, type BackoffOptions, type Outcome } from './workqueue';

const log = logger('manager');

/**
 * What the manager needs from leader election (api/store/leader.ts LeaderElection fits with
 * `{ campaign: (s) => election.campaign(identity, { signal: s }), onLost: (cb) => election.onLost(cb) }`).
 */
export interface LeaderElector {
  /** Resolves once this process leads; rejects when the signal aborts or the election fails. */
  campaign(signal: AbortSignal): Promise<void>;
  /** Called when leadership is lost: the workers must stop at once, another process may lead. */
  onLost(cb: (err?: Error) => void): void;
  /**
   * Asks the election's backend whether this process still leads. Called before every write of
   * a reconcile: onLost comes only when a keep-alive fails, while a lease revoked (or expired
   * under a stalled process) may already have a successor.
   */
  stillLeading?(): Promise<boolean>;
  /**
   * A store key that exists exactly while this process leads (etcd: the election key). Writes of a
   * reconcile are then made conditional on it in their own transaction (api/store/write-fence.ts),
   * which closes the gap a check before the write leaves, and saves that check's round trip.
   */
  fenceKey?(): Promise<string | undefined>;
}

export interface ManagerOptions {
  store: Store;
  /** Concurrent reconciles per kind, of different keys (default 2). */
  workersPerKind?: number;
  /** Every object is reconciled at least this often even without changes (default 5 min). */
  resyncMs?: number;
  /** Per-key retry back-off after errors (default 200 ms doubling to 60 s). */
  backoff?: Partial<BackoffOptions>;
  /** Registry for the work queue metrics (default prom-client's global registry). */
  registry?: Registry;
  /** How long start() waits for the first list of every kind (default 60 s). */
  syncTimeoutMs?: number;
  /** How long in-flight reconciles may take to finish on shutdown (default 10 s). */
  shutdownDeadlineMs?: number;
  /** Kinds to cache (default all). */
  kinds?: readonly Kind[];
  /** How often expired Events are swept while leading (default 60 s). */
  eventSweepMs?: number;
}

export class Manager {
  private readonly store: Store;
  private readonly options: Required<Omit<ManagerOptions, 'store' | 'backoff' | 'kinds'>> & { backoff: BackoffOptions };
  /** The recorder every reconcile gets as ctx.events (one, so aggregation sees every reconcile). */
  readonly events: EventRecorder;
  private readonly reconcilers = new Map<Kind, Reconciler>();
  private readonly informers = new Map<Kind, Informer<Kind>>();
  private queues = new Map<Kind, WorkQueue>();
  private leadingNow = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** Aborted when this term of leading ends; the audit loops it runs. */
  private term: { stop: AbortController; audits: Promise<void>[] } | undefined;
  private started = false;
  private elector: LeaderElector | undefined;
  private readonly internal = new AbortController();
  private stoppedPromise: Promise<void> = Promise.resolve();

  /** The shared read cache of every kind, filled by the informers. */
  readonly cache: Cache;

  constructor(options: ManagerOptions) {
    this.store = options.store;
    this.options = {
      workersPerKind: options.workersPerKind ?? 2,
      resyncMs: options.resyncMs ?? 5 * 60_000,
      registry: options.registry ?? globalRegistry,
      syncTimeoutMs: options.syncTimeoutMs ?? 60_000,
      shutdownDeadlineMs: options.shutdownDeadlineMs ?? 10_000,
      eventSweepMs: options.eventSweepMs ?? 60_000,
      backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
    };
    this.events = this.store.events ? new Recorder(this.store.events) : NO_EVENTS;
    for (const kind of options.kinds ?? KINDS) {
      const informer = new Informer(this.store, kind, { backoff: this.options.backoff });
      informer.addHandlers({
        onAdd: (obj) => this.changed(kind, obj),
        onUpdate: (old, obj) => this.changed(kind, obj, old),
        onDelete: (obj) => this.changed(kind, obj),
      });
      this.informers.set(kind, informer as unknown as Informer<Kind>);
    }
    const informers = this.informers;
    this.cache = {
      get<K extends Kind>(kind: K, name: string): KindMap[K] | undefined {
        return informers.get(kind)?.get(name) as KindMap[K] | undefined;
      },
      list<K extends Kind>(kind: K): KindMap[K][] {
        return (informers.get(kind)?.list() ?? []) as KindMap[K][];
      },
      byIndex<K extends Kind>(kind: K, index: string, key: string): KindMap[K][] {
        const informer = informers.get(kind);
        if (!informer) throw new InvalidArgumentError(`this manager does not cache ${kind}`, 'kind');
        return informer.byIndex(index, key) as KindMap[K][];
      },
      revision: (kind: Kind) => informers.get(kind)?.resourceVersion,
    };
  }

  register<K extends Kind>(reconciler: Reconciler<K>): void {
    if (this.started) throw new InvalidArgumentError('register reconcilers before start()', 'reconciler');
    if (this.reconcilers.has(reconciler.kind)) throw new InvalidArgumentError(`a reconciler for ${reconciler.kind} is already registered`, 'kind');
    const needed = [reconciler.kind, ...(reconciler.watches ?? []).map((w) => w.kind), ...(reconciler.indexes ?? []).map((i) => i.kind)];
    for (const kind of needed) {
      if (!this.informers.has(kind)) throw new InvalidArgumentError(`${reconciler.kind} reconciler needs ${kind}, which this manager does not cache`, 'kind');
    }
    // An index several reconcilers declare (the same spec object, e.g. controllers/usage.ts) is kept once.
    for (const index of reconciler.indexes ?? []) {
      const informer = this.informers.get(index.kind)!;
      if (!informer.hasIndex(index.name, index.keys)) informer.addIndex(index.name, index.keys);
    }
    this.reconcilers.set(reconciler.kind, reconciler as unknown as Reconciler);
  }

  get leading(): boolean { return this.leadingNow; }

  /** Resolves when everything started by start() has stopped (after the signal aborted). */
  get stopped(): Promise<void> { return this.stoppedPromise; }

  /** Queues a reconcile of kind/name (dropped while not leading or for kinds without a reconciler). */
  enqueue(kind: Kind, name: string): void {
    this.queues.get(kind)?.add(name);
  }

  /** Queue statistics per kind, for health endpoints and tests. */
  queueStats(): Record<string, { queued: number; inFlight: number; scheduled: number }> {
    const out: Record<string, { queued: number; inFlight: number; scheduled: number }> = {};
    for (const [kind, q] of this.queues) out[kind] = { queued: q.length, inFlight: q.inFlight, scheduled: q.scheduled };
    return out;
  }

  /**
   * Starts the informers and resolves once every cache has synced; workers run from then on
   * (without an elector) or while this process leads. Everything stops when `signal` aborts;
   * await `stopped` (or call stop()) to know when it has.
   */
  async start(signal: AbortSignal, leaderElector?: LeaderElector): Promise<void> {
    if (this.started) throw new InvalidArgumentError('the manager is already started', 'start');
    this.started = true;
    const stop = this.internal;
    // Every informer, watch and sync wait listens on this one signal.
    setMaxListeners(100, stop.signal);
    const onAbort = () => stop.abort(signal.reason);
    if (signal.aborted) stop.abort(signal.reason);
    else signal.addEventListener('abort', onAbort, { once: true });

    const informerRuns = [...this.informers.values()].map((i) => i.run(stop.signal));
    let leadership: Promise<void> = Promise.resolve();
    this.stoppedPromise = (async () => {
      await new Promise<void>((resolve) => {
        if (stop.signal.aborted) resolve();
        else stop.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      signal.removeEventListener('abort', onAbort);
      await leadership;
      await this.stopLeading(false);
      await Promise.all(informerRuns);
      log.info('controllers stopped');
    })();

    try {
      await Promise.all([...this.informers.values()].map((i) => i.waitForSync(this.options.syncTimeoutMs, stop.signal)));
    } catch (err) {
      stop.abort(err);
      await this.stoppedPromise;
      throw err;
    }
    log.info('caches synced', { kinds: [...this.informers.keys()], objects: Object.fromEntries([...this.informers].map(([k, i]) => [k, i.list().length])) });

    if (!leaderElector) {
      this.startLeading();
    } else {
      leadership = this.leaderLoop(leaderElector, stop.signal);
    }
  }

  /** Aborts everything start() began and waits until it has stopped. */
  async stop(): Promise<void> {
    this.internal.abort(new Error('manager stopped'));
    await this.stoppedPromise;
  }

  private async leaderLoop(elector: LeaderElector, signal: AbortSignal): Promise<void> {
    this.elector = elector;
    let lost: (() => void) | undefined;
    elector.onLost((err) => {
      log.warn('leadership lost; stopping reconcilers', { error: err?.message });
      lost?.();
    });
    let failures = 0;
    while (!signal.aborted) {
      try {
        await elector.campaign(signal);
      } catch (err) {
        if (signal.aborted) break;
        const delay = backoffDelay(failures++, this.options.backoff);
        log.warn('leader campaign failed; campaigning again', { error: (err as Error).message, retryInMs: delay });
        await sleep(delay, signal);
        continue;
      }
      failures = 0;
      if (signal.aborted) break;
      let onAbort: (() => void) | undefined;
      const lostOrStopped = new Promise<void>((resolve) => {
        lost = resolve;
        onAbort = () => resolve();
        signal.addEventListener('abort', onAbort, { once: true });
      });
      log.info('leading: starting reconcilers');
      this.startLeading();
      await lostOrStopped;
      lost = undefined;
      signal.removeEventListener('abort', onAbort!);
      // On loss another process may already act: stop ours at once rather than let them finish.
      await this.stopLeading(!signal.aborted);
    }
  }

  private startLeading(): void {
    if (this.leadingNow) return;
    this.leadingNow = true;
    for (const [kind, reconciler] of this.reconcilers) {
      const queue = new WorkQueue({
        kind,
        workers: this.options.workersPerKind,
        backoff: this.options.backoff,
        registry: this.options.registry,
        handler: (name, signal) => this.reconcileOne(reconciler, name, signal),
        onProcessed: (name, outcome, durationMs) => this.logOutcome(queue, kind, name, outcome, durationMs),
      });
      this.queues.set(kind, queue);
    }
    // Everything is reconciled once on becoming leader: nothing changed "for" this process yet.
    this.resyncAll();
    for (const q of this.queues.values()) q.start();
    this.resyncTimer = setInterval(() => this.resyncAll(), this.options.resyncMs);
    this.resyncTimer.unref();
    const stop = new AbortController();
    const audits = [...this.reconcilers.values()].filter((r) => r.audit).map((r) => this.auditLoop(r, stop.signal));
    if (this.store.events) audits.push(this.sweepLoop(stop.signal));
    const sourceCtx = { cache: this.cache, signal: stop.signal, enqueue: (kind: Kind, name: string) => this.enqueue(kind, name) };
    const sources = [...this.reconcilers.values()].filter((r) => r.sources).map((r) => r.sources!(sourceCtx).catch((err: Error) => {
      if (!stop.signal.aborted) log.warn('event source stopped', { kind: r.kind, error: err.message });
    }));
    this.term = { stop, audits: [...audits, ...sources] };
  }

  private async auditLoop(reconciler: Reconciler, signal: AbortSignal): Promise<void> {
    const audit = reconciler.audit!;
    const ctx = { cache: this.cache, signal, enqueue: (kind: Kind, name: string) => this.enqueue(kind, name) };
    for (;;) {
      await sleep(audit.everyMs, signal);
      if (signal.aborted) return;
      try {
        await audit.run(ctx);
      } catch (err) {
        if (!signal.aborted) log.warn('audit failed; trying again next period', { kind: reconciler.kind, error: (err as Error).message });
      }
    }
  }

  /** Deletes expired Events while leading (one sweeper in a replicated control plane). */
  private async sweepLoop(signal: AbortSignal): Promise<void> {
    for (;;) {
      await sleep(this.options.eventSweepMs, signal);
      if (signal.aborted) return;
      try {
        const swept = await this.store.events!.sweep();
        if (swept) log.debug('expired events swept', { swept });
      } catch (err) {
        if (!signal.aborted) log.warn('event sweep failed; trying again next period', { error: (err as Error).message });
      }
    }
  }

  private async stopLeading(abort: boolean): Promise<void> {
    if (!this.leadingNow) return;
    this.leadingNow = false;
    clearInterval(this.resyncTimer);
    this.term?.stop.abort();
    await Promise.all(this.term?.audits ?? []);
    this.term = undefined;
    const queues = [...this.queues.values()];
    this.queues = new Map();
    await Promise.all(queues.map((q) => q.shutdown({ deadlineMs: this.options.shutdownDeadlineMs, abort })));
  }

  private resyncAll(): void {
    for (const [kind, queue] of this.queues) {
      for (const obj of this.cache.list(kind)) queue.add(obj.metadata.name);
    }
  }

  private changed(kind: Kind, obj: KindMap[Kind], old?: KindMap[Kind]): void {
    if (!this.leadingNow) return;
    this.queues.get(kind)?.add(obj.metadata.name);
    for (const reconciler of this.reconcilers.values()) {
      const queue = this.queues.get(reconciler.kind);
      if (!queue) continue;
      // Collected first: adding a key twice in one tick would reconcile it twice (the first add
      // is already in flight when the second arrives).
      const keys = new Set<string>();
      for (const watch of reconciler.watches ?? []) {
        if (watch.kind !== kind) continue;
        try {
          for (const key of watch.map(obj, this.cache, old)) keys.add(key);
          // The old state matters too: a VM that moved off a node must still hear about that node.
          if (old) for (const key of watch.map(old, this.cache)) keys.add(key);
        } catch (err) {
          log.error('watch mapping threw', { kind: reconciler.kind, watched: kind, name: obj.metadata.name, error: (err as Error).message });
        }
      }
      for (const key of keys) queue.add(key);
    }
  }

  private async reconcileOne(reconciler: Reconciler, name: string, signal: AbortSignal): Promise<Outcome> {
    const fence = this.elector?.fenceKey ? await this.elector.fenceKey().catch(() => undefined) : undefined;
    const ctx: ReconcileContext = {
      // With an elector, a reconcile writes only while this process provably leads (its signal
      // not aborted, the election's backend confirming): the old leader writes nothing after its
      // lease ends, even from a reconcile that was in flight.
      store: this.elector ? fencedStore(this.store, signal, fence ? undefined : this.elector.stillLeading?.bind(this.elector)) : this.store,
      cache: this.cache,
      signal,
      enqueue: (kind, key) => this.enqueue(kind, key),
      events: this.events,
    };
    try {
      const result = fence ? await writeFence.run({ key: fence }, () => reconciler.reconcile(name, ctx)) : await reconciler.reconcile(name, ctx);
      const after = result?.requeueAfterMs;
      if (after !== undefined && Number.isFinite(after) && after >= 0) return { result: 'requeue', afterMs: after };
      return { result: 'success' };
    } catch (error) {
      if (error instanceof TerminalError || (error as Error)?.name === 'TerminalError') return { result: 'terminal', error };
      return { result: 'error', error };
    }
  }

  private logOutcome(queue: WorkQueue, kind: Kind, name: string, outcome: Outcome, durationMs: number): void {
    const base = { kind, name, durationMs: Math.round(durationMs * 10) / 10 };
    switch (outcome.result) {
      case 'success':
        log.debug('reconciled', base);
        break;
      case 'requeue':
        log.debug('reconciled; looking again later', { ...base, requeueAfterMs: outcome.afterMs });
        break;
      case 'error': {
        const err = outcome.error as Error;
        const failures = queue.failureCount(name);
        // A conflict is routine under concurrency; only persistent failures deserve a warning.
        const level = isN0Error(err, 'Conflict') && failures < 3 ? 'debug' : 'warn';
        log[level]('reconcile failed; retrying with back-off', { ...base, error: err?.message ?? String(err), code: isN0Error(err) ? err.code : undefined, failures, retryInMs: backoffDelay(failures - 1, this.options.backoff) });
        break;
      }
      case 'terminal': {
        const err = outcome.error as TerminalError;
        log.error('reconcile failed terminally; not retrying until the object changes', { ...base, error: err?.message, reason: err?.reason });
        break;
      }
    }
  }
}
