// The reconciler contract, after controller-runtime: a reconcile gets only a key (the name) and
// observes the world itself; it is level-triggered and idempotent, and may be interrupted at any
// line and run again.
import type { Kind, KindMap } from '../../api/types';
import type { Store } from '../../api/store/store';
import type { EventRecorder } from './events';

export type ReconcileResult =
  /** Done; look again only when something changes. */
  | { requeueAfterMs?: undefined }
  /** Look again after this delay even if nothing changes (polling an agent's progress). */
  | { requeueAfterMs: number };

/** An error that retrying cannot fix: logged and recorded, not retried with back-off. */
export class TerminalError extends Error {
  constructor(message: string, readonly reason = 'Failed') {
    super(message);
    this.name = 'TerminalError';
  }
}

/** Read-only view of the informer caches, shared by all reconcilers. */
export interface Cache {
  get<K extends Kind>(kind: K, name: string): KindMap[K] | undefined;
  list<K extends Kind>(kind: K): KindMap[K][];
  /** Objects of `kind` that an index declared by a reconciler (Reconciler.indexes) files under `key`. */
  byIndex<K extends Kind>(kind: K, index: string, key: string): KindMap[K][];
  /** The resourceVersion of the newest event `kind`'s cache has applied (the manager's caches have one; test doubles may not). */
  revision?(kind: Kind): string | undefined;
}

/** An index over one kind's cache, declared by the reconciler whose watches look things up in it. */
export interface IndexSpec<K extends Kind = Kind> {
  kind: K;
  name: string;
  keys: (obj: KindMap[K]) => string[];
}

export interface ReconcileContext {
  store: Store;
  cache: Cache;
  signal: AbortSignal;
  /** Queue another object of any kind (e.g. a VM reconciler nudging its Network). */
  enqueue(kind: Kind, name: string): void;
  /**
   * Records Events about objects (Scheduled, StartFailed, ...); never fails, never blocks. The
   * manager always gives one; a test's hand-made context may leave it out (nothing is recorded).
   */
  events?: EventRecorder;
}

export interface AuditContext {
  cache: Cache;
  signal: AbortSignal;
  enqueue(kind: Kind, name: string): void;
}

export interface Reconciler<K extends Kind = Kind> {
  readonly kind: K;
  /** Other kinds whose changes should requeue objects of this kind, mapped to the keys to requeue; `old` is the previous state on an update (and the map is also called with the old state alone). */
  readonly watches?: { kind: Kind; map: (obj: KindMap[Kind], cache: Cache, old?: KindMap[Kind]) => string[] }[];
  /** Cache indexes the watches' maps use (registered on the informers before they start). */
  readonly indexes?: IndexSpec[];
  /**
   * A periodic look at the world that finds keys to reconcile, run while leading (one at a time):
   * e.g. asking each node's agent what runs, instead of reconciling every VM on a timer.
   */
  readonly audit?: { everyMs: number; run(ctx: AuditContext): Promise<void> };
  /**
   * Event sources outside the store, run once per term of leading until ctx.signal aborts: e.g.
   * the agents' VM event streams, so a guest that dies is reconciled at once, not at the next audit.
   */
  readonly sources?: (ctx: AuditContext) => Promise<void>;
  /** Thrown errors are retried with per-key exponential back-off (TerminalError is not). */
  reconcile(name: string, ctx: ReconcileContext): Promise<ReconcileResult>;
}
