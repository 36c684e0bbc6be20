// A de-duplicating work queue in the manner of client-go's: a key waits in the queue at most once;
// a key added while it is being processed is processed once more after, never concurrently;
// failures back off per key exponentially; a success resets the back-off.
import { Gauge, Histogram, register as globalRegistry, type Registry } from 'prom-client';
import { logger } from '../../api/log';

const log = logger('workqueue');

export interface BackoffOptions {
  baseMs: number;
  factor: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = Object.freeze({ baseMs: 200, factor: 2, maxMs: 60_000 });

/** The delay before retry number `failures` (0-based): base × factor^failures, at most max. */
export function backoffDelay(failures: number, options: BackoffOptions = DEFAULT_BACKOFF): number {
  return Math.min(options.maxMs, options.baseMs * options.factor ** Math.max(0, failures));
}

/** What processing a key came to; the queue schedules the key's next turn from it. */
export type Outcome =
  | { result: 'success' }
  | { result: 'requeue'; afterMs: number }
  | { result: 'error'; error: unknown }
  | { result: 'terminal'; error: unknown };

export type Handler = (key: string, signal: AbortSignal) => Promise<Outcome>;

export interface WorkQueueOptions {
  /** Label for metrics and logs (the resource kind). */
  kind: string;
  handler: Handler;
  workers?: number;
  backoff?: Partial<BackoffOptions>;
  /** Where the metrics are registered (default: prom-client's global registry). */
  registry?: Registry;
  /** Called after each key is processed (for logs and tests). */
  onProcessed?: (key: string, outcome: Outcome, durationMs: number) => void;
}

export interface ShutdownOptions {
  /** How long in-flight work may take to finish (default 10 s); then its signal is aborted. */
  deadlineMs?: number;
  /** Abort the in-flight work's signal at once (on lost leadership: stop acting now). */
  abort?: boolean;
}

interface Metrics {
  depth: Gauge<'kind'>;
  duration: Histogram<'kind' | 'result'>;
}

const registered = new WeakMap<Registry, Metrics>();

/** One set of metric objects per registry: all queues share them, labelled by kind. */
function metricsFor(registry: Registry): Metrics {
  let m = registered.get(registry);
  if (!m) {
    const depth = (registry.getSingleMetric('n0stack_controller_queue_depth') as Gauge<'kind'> | undefined)
      ?? new Gauge({ name: 'n0stack_controller_queue_depth', help: 'Keys waiting in the controller work queue', labelNames: ['kind'], registers: [registry] });
    const duration = (registry.getSingleMetric('n0stack_controller_reconcile_duration_seconds') as Histogram<'kind' | 'result'> | undefined)
      ?? new Histogram({
        name: 'n0stack_controller_reconcile_duration_seconds',
        help: 'Time to reconcile one key, by kind and result (success, requeue, error, terminal)',
        labelNames: ['kind', 'result'],
        buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
        registers: [registry],
      });
    m = { depth, duration };
    registered.set(registry, m);
  }
  return m;
}

export class WorkQueue {
  readonly kind: string;
  private readonly handler: Handler;
  private readonly workerCount: number;
  private readonly backoff: BackoffOptions;
  private readonly metrics: Metrics;
  private readonly onProcessed?: WorkQueueOptions['onProcessed'];

  private readonly queue: string[] = [];
  /** Keys that need processing (queued, or re-added while processing). */
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private readonly abortController = new AbortController();
  private workers: Promise<void>[] = [];
  private stopping = false;

  constructor(options: WorkQueueOptions) {
    this.kind = options.kind;
    this.handler = options.handler;
    this.workerCount = options.workers ?? 2;
    if (!Number.isInteger(this.workerCount) || this.workerCount < 1) throw new RangeError(`workers must be a positive integer, got ${this.workerCount}`);
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.metrics = metricsFor(options.registry ?? globalRegistry);
    this.onProcessed = options.onProcessed;
    this.updateDepth();
  }

  /** Queues the key unless it is already waiting; a key being processed is processed again after. */
  add(key: string): void {
    if (this.stopping || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.queue.push(key);
    this.dispatch();
  }

  /** Queues the key after a delay; an earlier pending turn for the key wins over a later one. */
  addAfter(key: string, ms: number): void {
    if (this.stopping) return;
    if (!(ms > 0)) { this.add(key); return; }
    const at = Date.now() + ms;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    // A pending retry alone must not keep a process alive that is otherwise done.
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Queues the key after its back-off delay and counts a failure; returns the delay. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    const delay = backoffDelay(n, this.backoff);
    this.failures.set(key, n + 1);
    this.addAfter(key, delay);
    return delay;
  }

  /** Resets the key's back-off. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  failureCount(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  get length(): number { return this.queue.length; }
  get inFlight(): number { return this.processing.size; }
  /** Keys with a delayed turn pending (requeueAfter or back-off). */
  get scheduled(): number { return this.timers.size; }
  get signal(): AbortSignal { return this.abortController.signal; }

  start(): void {
    if (this.workers.length || this.stopping) return;
    for (let i = 0; i < this.workerCount; i++) this.workers.push(this.work());
  }

  /**
   * Stops taking keys, drops queued and delayed ones, and waits for in-flight work until the
   * deadline, after which it aborts that work's signal. Resolves true when all work finished in time.
   */
  async shutdown(options: ShutdownOptions = {}): Promise<boolean> {
    const deadlineMs = options.deadlineMs ?? 10_000;
    this.stopping = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.queue.length = 0;
    this.dirty.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
    this.updateDepth();
    if (options.abort) this.abortController.abort(new Error(`${this.kind} work queue is shutting down`));
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      Promise.all(this.workers).then(() => true),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), deadlineMs); }),
    ]);
    clearTimeout(timer);
    if (!drained) {
      log.warn('in-flight work did not finish before the shutdown deadline; aborting it', { kind: this.kind, keys: [...this.processing], deadlineMs });
      this.abortController.abort(new Error(`${this.kind} work queue shutdown deadline of ${deadlineMs} ms passed`));
    }
    return drained;
  }

  private dispatch(): void {
    while (this.waiters.length && this.queue.length) {
      const key = this.queue.shift()!;
      this.dirty.delete(key);
      this.processing.add(key);
      this.waiters.shift()!(key);
    }
    this.updateDepth();
  }

  private next(): Promise<string | undefined> {
    if (this.stopping) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.dispatch();
    });
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.next();
      if (key === undefined) return;
      await this.process(key);
    }
  }

  private async process(key: string): Promise<void> {
    const started = performance.now();
    let outcome: Outcome;
    try {
      outcome = await this.handler(key, this.abortController.signal);
    } catch (error) {
      outcome = { result: 'error', error };
    }
    const durationMs = performance.now() - started;
    this.metrics.duration.observe({ kind: this.kind, result: outcome.result }, durationMs / 1000);
    // This turn saw the latest state, so delayed turns scheduled by earlier turns are superseded.
    const pending = this.timers.get(key);
    if (pending) { clearTimeout(pending.timer); this.timers.delete(key); }
    switch (outcome.result) {
      case 'success': this.forget(key); break;
      case 'terminal': this.forget(key); break;
      case 'requeue': this.forget(key); this.addAfter(key, outcome.afterMs); break;
      case 'error': this.addRateLimited(key); break;
    }
    this.processing.delete(key);
    if (this.dirty.has(key) && !this.stopping) this.queue.push(key);
    this.dispatch();
    try {
      this.onProcessed?.(key, outcome, durationMs);
    } catch (err) {
      log.error('onProcessed hook threw', { kind: this.kind, key, error: (err as Error).message });
    }
  }

  private updateDepth(): void {
    this.metrics.depth.set({ kind: this.kind }, this.queue.length);
  }
}
