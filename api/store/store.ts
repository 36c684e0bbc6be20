// The one persistence contract. Three backends implement it (embedded, etcd, kubernetes) and
// all pass api/store/conformance.ts. Semantics follow the Kubernetes API server:
//  - resourceVersion is opaque, changes on every write, and is the optimistic-concurrency token;
//  - metadata.generation increases only when spec (or labels/annotations/finalizers are not
//    counted, like Kubernetes) changes; status writes go through updateStatus/patch status and
//    never bump generation, and spec writes never change status;
//  - delete of an object with finalizers only sets deletionTimestamp; the object disappears when
//    the last finalizer is removed by an update;
//  - watch delivers ADDED/MODIFIED/DELETED in revision order from a resourceVersion, and throws
//    TooOldError when that revision has been compacted.
import type { AnyResource, Kind, KindMap } from '../types';

export interface ListOptions {
  /** Kubernetes equality-based selector: "a=b,c!=d,e" (e: key exists, !e: key absent). */
  labelSelector?: string;
}

export interface ListResult<T> {
  items: T[];
  /** Pass to watch() to see every change after this list. */
  resourceVersion: string;
}

export interface UpdateOptions {
  /** Write status instead of spec/metadata (the status subresource). */
  subresource?: 'status';
}

export type Patch =
  | { type: 'json'; ops: import('fast-json-patch').Operation[] }
  | { type: 'merge'; value: Record<string, unknown> };

export interface PatchOptions extends UpdateOptions {
  /** When set, the patch applies only if the object is still at this resourceVersion. */
  resourceVersion?: string;
}

export interface DeleteOptions {
  /** When set, the delete applies only if the object is still at this resourceVersion. */
  resourceVersion?: string;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEvent<T> {
  type: WatchEventType;
  /** For DELETED, the last state of the object, with the deletion's resourceVersion. */
  object: T;
}

export interface WatchOptions {
  /** Deliver every change after this resourceVersion (from list()). Omitted: from now on. */
  resourceVersion?: string;
  signal?: AbortSignal;
  /**
   * Only this object's events are wanted. A hint: the facade's watch cache then hands a waiter
   * its object's events only, instead of waking each of N waiters for every event of the kind;
   * other stores may still deliver every event, so the caller filters by name as well.
   */
  name?: string;
}

export interface Store {
  readonly backend: 'embedded' | 'etcd' | 'kubernetes';
  get<K extends Kind>(kind: K, name: string): Promise<KindMap[K]>;
  list<K extends Kind>(kind: K, options?: ListOptions): Promise<ListResult<KindMap[K]>>;
  /** Sets uid, generation 1, resourceVersion, creationTimestamp. AlreadyExistsError if taken. */
  create<T extends AnyResource>(doc: T): Promise<T>;
  /**
   * Replaces spec and metadata (labels, annotations, finalizers), or status with subresource.
   * doc.metadata.resourceVersion is required; ConflictError when it is not current.
   */
  update<T extends AnyResource>(doc: T, options?: UpdateOptions): Promise<T>;
  patch<K extends Kind>(kind: K, name: string, patch: Patch, options?: PatchOptions): Promise<KindMap[K]>;
  /**
   * Deletes at once when there are no finalizers; otherwise sets deletionTimestamp and returns
   * the object. Returns undefined when the object was removed.
   */
  delete<K extends Kind>(kind: K, name: string, options?: DeleteOptions): Promise<KindMap[K] | undefined>;
  /** Yields events until the signal aborts or an error (TooOldError, UnavailableError) is thrown. */
  watch<K extends Kind>(kind: K, options?: WatchOptions): AsyncIterable<WatchEvent<KindMap[K]>>;
  /** Where Events are kept (api/store/events.ts); absent on stores that keep none (test doubles). */
  readonly events?: import('./events').EventStore;
  /** Keys and one-time claims the facade replicas share, never served by an RPC (api/store/secrets.ts). */
  readonly secrets?: import('./secrets').SecretStore;
  close(): Promise<void>;
}
