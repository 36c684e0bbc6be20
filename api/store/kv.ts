// All resource semantics (validation, uid, generation, resourceVersion, finalizers, patches,
// watch event types) live once here, in KvStore; a backend (lmdb, etcd) is only a revisioned
// key-value store with compare-and-swap, the shape etcd has and an embedded database can give.
import { randomUUID } from 'node:crypto';
import { applyPatch } from 'fast-json-patch';
import { AlreadyExistsError, ConflictError, InvalidArgumentError, NotFoundError } from '../errors';
import { validateName } from '../names';
import { validateDocument } from '../schema';
import { isKind, type AnyResource, type Kind, type KindMap, type Resource } from '../types';
import { matchesLabels, parseLabelSelector } from './labels';
import { KvEventStore, type EventStore } from './events';
import { KvSecretStore, type SecretStore } from './secrets';
import type { DeleteOptions, ListOptions, ListResult, Patch, PatchOptions, Store, UpdateOptions, WatchEvent, WatchOptions } from './store';

export interface KvEntry {
  key: string;
  value: string;
  /** Revision of the last write of this key (etcd mod_revision). */
  modRevision: number;
}

export interface KvEvent {
  type: 'put' | 'delete';
  key: string;
  /** The new value of a put; the last value before a delete. */
  value: string;
  revision: number;
  /** True for the put that created the key (etcd: version 1). */
  created: boolean;
}

export interface KvBackend {
  get(key: string): Promise<KvEntry | undefined>;
  /** Every key under a prefix, and the revision the snapshot was read at. */
  range(prefix: string): Promise<{ entries: KvEntry[]; revision: number }>;
  /** Writes when the key's modRevision is `expected` (0: the key must be absent). Returns the new revision, or undefined when the precondition failed. */
  put(key: string, value: string, expected: number): Promise<number | undefined>;
  /** Deletes when the key's modRevision is `expected`. Returns the deletion's revision, or undefined. */
  delete(key: string, expected: number): Promise<number | undefined>;
  /** Events under a prefix with revision > `after`, in revision order; throws TooOldError when compacted; ends when the signal aborts. */
  watch(prefix: string, after: number, signal?: AbortSignal): AsyncIterable<KvEvent>;
  revision(): Promise<number>;
  close(): Promise<void>;
}

/** Push-to-pull bridge for backends whose watches are callbacks. */
export class EventQueue<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private error: unknown;
  private ended = false;
  private wake: (() => void) | undefined;

  push(item: T): void { if (!this.ended) { this.items.push(item); this.notify(); } }
  fail(error: unknown): void { if (!this.ended) { this.error = error; this.ended = true; this.notify(); } }
  end(): void { this.ended = true; this.notify(); }
  private notify(): void { const w = this.wake; this.wake = undefined; w?.(); }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.items.length) { yield this.items.shift()!; continue; }
      if (this.ended) { if (this.error) throw this.error; return; }
      await new Promise<void>((resolve) => { this.wake = resolve; });
    }
  }
}

/** RFC 7386 JSON merge patch: objects merge recursively, null removes, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const result: Record<string, unknown> = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/** Seconds precision, like Kubernetes metav1.Time. */
function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

function parseRevision(rv: string, field: string): number {
  if (!/^\d{1,15}$/.test(rv)) throw new InvalidArgumentError(`${field} ${JSON.stringify(rv)} is not a resourceVersion from this store`, field);
  return Number(rv);
}

function checkKind(kind: unknown): Kind {
  if (!isKind(kind)) throw new InvalidArgumentError(`kind ${JSON.stringify(kind)} is not a known kind`, 'kind');
  return kind;
}

/**
 * The next stored state when `incoming` is written over `current` (Kubernetes update rules):
 * spec writes take spec, labels, annotations and finalizers and keep status; status writes take
 * only status. Server-owned metadata always comes from `current`. The result shares what it keeps
 * with `current` (the store's freshly read copy, never handed out) and copies what it takes from
 * `incoming` (the caller's); copying all of `current` cost more than anything else on big Nodes.
 */
export function nextState(current: Resource, incoming: Resource, subresource?: 'status'): Resource {
  if (incoming.metadata.uid !== undefined && incoming.metadata.uid !== current.metadata.uid) {
    throw new ConflictError(current.kind, current.metadata.name, `uid ${incoming.metadata.uid} does not match the stored object's uid ${current.metadata.uid}`);
  }
  const { resourceVersion: _rv, ...metadata } = current.metadata;
  const next = { ...current, metadata } as Resource;
  if (subresource === 'status') {
    if (incoming.status === undefined) delete next.status;
    else next.status = structuredClone(incoming.status);
    return next;
  }
  for (const field of ['labels', 'annotations', 'finalizers'] as const) {
    const value = incoming.metadata[field];
    if (value === undefined || (Array.isArray(value) && value.length === 0)) delete next.metadata[field];
    else (next.metadata as unknown as Record<string, unknown>)[field] = structuredClone(value);
  }
  next.spec = structuredClone(incoming.spec);
  return next;
}

const MAX_PATCH_ATTEMPTS = 20;

/**
 * Stored texts of keys recently read or written, by revision. A revision names one write of one
 * key, so the text is exact for as long as it is kept: an update at the revision its caller just
 * read (mutate's read-modify-write) needs no second read, and its CAS still refuses it when the
 * key has moved on. On etcd that is one round trip less per write.
 */
class RecentValues {
  private readonly entries = new Map<string, { rev: number; stored: string }>();
  constructor(private readonly limit = 1024) {}
  remember(key: string, rev: number, stored: string): void {
    this.entries.delete(key);
    this.entries.set(key, { rev, stored });
    if (this.entries.size > this.limit) this.entries.delete(this.entries.keys().next().value!);
  }
  at(key: string, rev: number): string | undefined {
    const entry = this.entries.get(key);
    return entry?.rev === rev ? entry.stored : undefined;
  }
}

export class KvStore implements Store {
  private readonly recent = new RecentValues();
  readonly events: EventStore;
  readonly secrets: SecretStore;
  constructor(readonly backend: 'embedded' | 'etcd', private readonly kv: KvBackend, private readonly prefix: string) {
    this.events = new KvEventStore(kv, prefix);
    this.secrets = new KvSecretStore(kv, prefix);
  }

  private kindPrefix(kind: Kind): string { return `${this.prefix}/${kind}/`; }
  private key(kind: Kind, name: string): string { return `${this.kindPrefix(kind)}${validateName(name, 'metadata.name')}`; }

  private decode<T>(value: string, revision: number): T {
    const doc = JSON.parse(value) as Resource;
    doc.metadata.resourceVersion = String(revision);
    return doc as T;
  }

  /** The stored object, its revision, and the stored text (what a write that changes nothing would store again). */
  private async read<K extends Kind>(kind: K, name: string): Promise<{ doc: KindMap[K]; rev: number; stored: string }> {
    const key = this.key(kind, name);
    const entry = await this.kv.get(key);
    if (!entry) throw new NotFoundError(kind, name);
    this.recent.remember(key, entry.modRevision, entry.value);
    return { doc: this.decode<KindMap[K]>(entry.value, entry.modRevision), rev: entry.modRevision, stored: entry.value };
  }

  async get<K extends Kind>(kind: K, name: string): Promise<KindMap[K]> {
    return (await this.read(checkKind(kind) as K, name)).doc;
  }

  async list<K extends Kind>(kind: K, options: ListOptions = {}): Promise<ListResult<KindMap[K]>> {
    const selector = parseLabelSelector(options.labelSelector);
    const { entries, revision } = await this.kv.range(this.kindPrefix(checkKind(kind)));
    const items = entries.map((e) => this.decode<KindMap[K]>(e.value, e.modRevision)).filter((d) => matchesLabels(d.metadata.labels, selector));
    return { items, resourceVersion: String(revision) };
  }

  async create<T extends AnyResource>(doc: T): Promise<T> {
    const kind = checkKind(doc?.kind);
    const meta = doc.metadata ?? ({} as T['metadata']);
    // A created object starts without status (the status subresource owns it) and with
    // server-owned metadata; what the caller sent for those is dropped, as Kubernetes does.
    const created = {
      apiVersion: doc.apiVersion,
      kind,
      metadata: {
        name: meta.name,
        uid: randomUUID(),
        generation: 1,
        creationTimestamp: now(),
        ...(meta.labels && { labels: meta.labels }),
        ...(meta.annotations && { annotations: meta.annotations }),
        ...(meta.finalizers?.length && { finalizers: meta.finalizers }),
      },
      spec: doc.spec,
    } as Resource;
    validateDocument(created);
    const rev = await this.kv.put(this.key(kind, meta.name), JSON.stringify(created), 0);
    if (rev === undefined) throw new AlreadyExistsError(kind, meta.name);
    return this.decode<T>(JSON.stringify(created), rev);
  }

  async update<T extends AnyResource>(doc: T, options: UpdateOptions = {}): Promise<T> {
    const kind = checkKind(doc?.kind);
    const rv = doc.metadata?.resourceVersion;
    if (rv === undefined || rv === '') throw new InvalidArgumentError(`${kind} "${doc.metadata?.name}": metadata.resourceVersion is required for an update`, 'metadata.resourceVersion');
    const expected = parseRevision(rv, 'metadata.resourceVersion');
    const known = this.recent.at(this.key(kind, doc.metadata.name), expected);
    const { doc: current, rev, stored } = known !== undefined
      ? { doc: this.decode<AnyResource>(known, expected), rev: expected, stored: known }
      : await this.read(kind, doc.metadata.name);
    if (rev !== expected) throw new ConflictError(kind, doc.metadata.name);
    return (await this.write(current, stored, nextState(current, doc, options.subresource), rev, known !== undefined)) as T;
  }

  async patch<K extends Kind>(kind: K, name: string, patch: Patch, options: PatchOptions = {}): Promise<KindMap[K]> {
    checkKind(kind);
    const precondition = options.resourceVersion === undefined ? undefined : parseRevision(options.resourceVersion, 'resourceVersion');
    // Without a precondition a patch applies to whatever is current, so a lost race is retried
    // against the new state (a JSON Patch `test` op is then evaluated again).
    for (let attempt = 0; ; attempt++) {
      const { doc: current, rev, stored } = await this.read(kind, name);
      if (precondition !== undefined && precondition !== rev) throw new ConflictError(kind, name);
      const patched = applyTo(current, patch) as KindMap[K];
      if (patched?.metadata?.name !== name || patched.kind !== kind) {
        throw new InvalidArgumentError(`${kind} "${name}": a patch may not change kind or metadata.name`, 'metadata.name');
      }
      if (patched.metadata.resourceVersion !== current.metadata.resourceVersion) {
        if (parseRevision(patched.metadata.resourceVersion ?? '', 'metadata.resourceVersion') !== rev) throw new ConflictError(kind, name);
      }
      try {
        return await this.write(current, stored, nextState(current, patched, options.subresource), rev);
      } catch (err) {
        if (!(err instanceof ConflictError) || precondition !== undefined || attempt + 1 >= MAX_PATCH_ATTEMPTS) throw err;
      }
    }
  }

  async delete<K extends Kind>(kind: K, name: string, options: DeleteOptions = {}): Promise<KindMap[K] | undefined> {
    checkKind(kind);
    const precondition = options.resourceVersion === undefined ? undefined : parseRevision(options.resourceVersion, 'resourceVersion');
    for (let attempt = 0; ; attempt++) {
      const { doc: current, rev } = await this.read(kind, name);
      if (precondition !== undefined && precondition !== rev) throw new ConflictError(kind, name);
      let result: number | undefined;
      if (current.metadata.finalizers?.length) {
        if (current.metadata.deletionTimestamp) return current;
        // Like Kubernetes, marking for deletion is a new generation: controllers must act on it.
        const marked = structuredClone(current) as Resource;
        delete marked.metadata.resourceVersion;
        marked.metadata.deletionTimestamp = now();
        marked.metadata.generation = (marked.metadata.generation ?? 0) + 1;
        result = await this.kv.put(this.key(kind, name), JSON.stringify(marked), rev);
        if (result !== undefined) return this.decode<KindMap[K]>(JSON.stringify(marked), result);
      } else {
        result = await this.kv.delete(this.key(kind, name), rev);
        if (result !== undefined) return undefined;
      }
      if (precondition !== undefined || attempt + 1 >= MAX_PATCH_ATTEMPTS) throw new ConflictError(kind, name);
    }
  }

  /** Validates and writes `next` over `current` (at revision `rev`); deletes it when its last finalizer went away during deletion. */
  private async write<T extends AnyResource>(current: T, stored: string, next: Resource, rev: number, remembered = false): Promise<T> {
    if (JSON.stringify(next.spec) !== JSON.stringify(current.spec)) next.metadata.generation = (current.metadata.generation ?? 0) + 1;
    validateDocument(next);
    const kind = current.kind;
    const name = current.metadata.name;
    const key = this.key(kind, name);
    const value = JSON.stringify(next);
    // A write that changes nothing is not a write: no new resourceVersion, no watch event. No CAS
    // runs then, so a remembered text must be confirmed still current (the key may be gone).
    if (value === stored) {
      if (remembered) {
        const entry = await this.kv.get(key);
        if (!entry) throw new NotFoundError(kind, name);
        if (entry.modRevision !== rev) throw new ConflictError(kind, name);
      }
      return current;
    }
    if (next.metadata.deletionTimestamp && !next.metadata.finalizers?.length) {
      const deleted = await this.kv.delete(key, rev);
      if (deleted === undefined) throw await this.lostCas(key, kind, name, remembered);
      return this.decode<T>(value, deleted);
    }
    const written = await this.kv.put(key, value, rev);
    if (written === undefined) throw await this.lostCas(key, kind, name, remembered);
    this.recent.remember(key, written, value);
    // `next` is this call's own object (nextState copied what it took): hand it back, not a re-parse.
    next.metadata.resourceVersion = String(written);
    return next as T;
  }

  /** The error for a write whose CAS failed: NotFound when the object went away (only a remembered text had not checked), else Conflict. */
  private async lostCas(key: string, kind: Kind, name: string, remembered: boolean): Promise<Error> {
    if (remembered && !(await this.kv.get(key))) return new NotFoundError(kind, name);
    return new ConflictError(kind, name);
  }

  watch<K extends Kind>(kind: K, options: WatchOptions = {}): AsyncIterable<WatchEvent<KindMap[K]>> {
    checkKind(kind);
    const from = options.resourceVersion === undefined || options.resourceVersion === '' ? undefined : parseRevision(options.resourceVersion, 'resourceVersion');
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        const after = from ?? (await self.kv.revision());
        for await (const event of self.kv.watch(self.kindPrefix(kind), after, options.signal)) {
          const object = self.decode<KindMap[K]>(event.value, event.revision);
          yield { type: event.type === 'delete' ? 'DELETED' : event.created ? 'ADDED' : 'MODIFIED', object };
        }
      },
    };
  }

  close(): Promise<void> { return this.kv.close(); }
}

function applyTo(doc: Resource, patch: Patch): unknown {
  if (patch.type === 'merge') return mergePatch(doc, patch.value);
  if (patch.type !== 'json' || !Array.isArray(patch.ops)) throw new InvalidArgumentError('patch type must be json or merge', 'patch');
  try {
    return applyPatch(structuredClone(doc), patch.ops, true, true).newDocument;
  } catch (err) {
    const name = (err as Error).name;
    // A failed `test` op is a precondition that no longer holds: the object changed under the caller.
    if (name === 'TEST_OPERATION_FAILED') throw new ConflictError(doc.kind, doc.metadata.name, `patch test failed: ${(err as Error).message.split('\n')[0]}`);
    throw new InvalidArgumentError(`${doc.kind} "${doc.metadata.name}": invalid patch: ${(err as Error).message.split('\n')[0]}`, 'patch');
  }
}
