// A watch cache in front of a Store, after kube-apiserver's: every watcher of a kind is served
// from one upstream watch and a window of recent events, instead of opening a watch of its own.
// The facade needs this: each waiting RPC (CreateVirtualMachine waits for RUNNING) watches its
// kind, and with 64 callers every event was read and decoded 64 times.
//
// A watch from resourceVersion R is served from the cache when the window still holds every
// event after R (R >= the window's floor); otherwise, or when R is not a number, it gets its own
// upstream watch exactly as before. Events are shared between watchers and frozen.
import { deepFreeze } from '../freeze';
import { EventQueue } from './kv';
import type { DeleteOptions, ListOptions, Patch, PatchOptions, Store, UpdateOptions, WatchEvent, WatchOptions } from './store';
import type { AnyResource, Kind, KindMap } from '../types';

export interface WatchCacheOptions {
  /** Events kept per kind for watchers that start a little behind (default 4096). */
  window?: number;
}

interface Subscriber {
  after: number;
  queue: EventQueue<WatchEvent<KindMap[Kind]>>;
}

/** Subscribers of every event of a kind, and those of one object's events (WatchOptions.name). */
class Subscribers {
  private readonly all = new Set<Subscriber>();
  private readonly byName = new Map<string, Set<Subscriber>>();
  add(s: Subscriber, name: string | undefined): void {
    if (name === undefined) { this.all.add(s); return; }
    let set = this.byName.get(name);
    if (!set) this.byName.set(name, set = new Set());
    set.add(s);
  }
  delete(s: Subscriber, name: string | undefined): void {
    if (name === undefined) { this.all.delete(s); return; }
    const set = this.byName.get(name);
    if (set?.delete(s) && set.size === 0) this.byName.delete(name);
  }
  /** Who gets an event of object `name`. */
  *for(name: string): Iterable<Subscriber> {
    yield* this.all;
    const set = this.byName.get(name);
    if (set) yield* set;
  }
  *[Symbol.iterator](): Iterator<Subscriber> {
    yield* this.all;
    for (const set of this.byName.values()) yield* set;
  }
  clear(): void { this.all.clear(); this.byName.clear(); }
}

/** Index of the first event above `after` in a window ordered by revision (binary search). */
function firstAfter(events: readonly { revision: number }[], after: number): number {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (events[mid].revision > after) hi = mid; else lo = mid + 1;
  }
  return lo;
}

const revisionOf = (rv: string | undefined): number | undefined => (rv !== undefined && /^\d{1,15}$/.test(rv) ? Number(rv) : undefined);

/** One kind's upstream watch, its window of recent events and the watchers it feeds. */
class KindFeed {
  private readonly events: { revision: number; event: WatchEvent<KindMap[Kind]> }[] = [];
  /** Every event with a revision above the floor is in the window (or still to come). */
  private lowest: number;
  private readonly subscribers = new Subscribers();
  private readonly stop = new AbortController();
  private failed = false;

  constructor(private readonly store: Store, kind: Kind, from: number, private readonly window: number, onEnd: () => void) {
    this.lowest = from;
    void this.pump(kind, from).finally(onEnd);
  }

  get floor(): number { return this.lowest; }
  get usable(): boolean { return !this.failed && !this.stop.signal.aborted; }

  private async pump(kind: Kind, from: number): Promise<void> {
    try {
      for await (const event of this.store.watch(kind, { resourceVersion: String(from), signal: this.stop.signal })) {
        const revision = Number(event.object.metadata.resourceVersion);
        deepFreeze(event);
        this.events.push({ revision, event });
        if (this.events.length > this.window) this.lowest = this.events.shift()!.revision;
        for (const s of this.subscribers.for(event.object.metadata.name)) if (revision > s.after) s.queue.push(event);
      }
      for (const s of this.subscribers) s.queue.end();
    } catch (err) {
      this.failed = true;
      // A watcher must learn that it may have missed events, as with a watch of its own.
      for (const s of this.subscribers) s.queue.fail(err);
    }
    this.subscribers.clear();
  }

  /**
   * Replays the window after `after` and follows; synchronous, so no event falls in between.
   * With `name`, only that object's events (a waiter's): the window is searched, not scanned
   * (it holds thousands of events at scale, and every waiting RPC subscribes).
   */
  subscribe(after: number, signal: AbortSignal | undefined, name?: string): AsyncIterable<WatchEvent<KindMap[Kind]>> {
    const queue = new EventQueue<WatchEvent<KindMap[Kind]>>();
    const subscriber = { after, queue };
    for (let i = firstAfter(this.events, after); i < this.events.length; i++) {
      const { event } = this.events[i];
      if (name === undefined || event.object.metadata.name === name) queue.push(event);
    }
    this.subscribers.add(subscriber, name);
    const leave = () => { this.subscribers.delete(subscriber, name); queue.end(); };
    if (signal?.aborted) leave();
    signal?.addEventListener('abort', leave, { once: true });
    const subscribers = this.subscribers;
    return {
      async *[Symbol.asyncIterator]() {
        try {
          for await (const event of queue) {
            if (signal?.aborted) return;
            yield event;
          }
        } finally {
          subscribers.delete(subscriber, name);
          signal?.removeEventListener('abort', leave);
        }
      },
    };
  }

  close(): void { this.stop.abort(); }
}

export class WatchCacheStore implements Store {
  private readonly feeds = new Map<Kind, KindFeed>();
  private readonly window: number;
  /** How many watches were served from the cache and how many went upstream (tests, metrics). */
  readonly stats = { cached: 0, upstream: 0 };

  constructor(private readonly inner: Store, options: WatchCacheOptions = {}) {
    this.window = options.window ?? 4096;
  }

  get backend() { return this.inner.backend; }
  get events() { return this.inner.events; }
  get secrets() { return this.inner.secrets; }
  get<K extends Kind>(kind: K, name: string) { return this.inner.get(kind, name); }
  list<K extends Kind>(kind: K, options?: ListOptions) { return this.inner.list(kind, options); }
  create<T extends AnyResource>(doc: T) { return this.inner.create(doc); }
  update<T extends AnyResource>(doc: T, options?: UpdateOptions) { return this.inner.update(doc, options); }
  patch<K extends Kind>(kind: K, name: string, patch: Patch, options?: PatchOptions) { return this.inner.patch(kind, name, patch, options); }
  delete<K extends Kind>(kind: K, name: string, options?: DeleteOptions) { return this.inner.delete(kind, name, options); }

  watch<K extends Kind>(kind: K, options: WatchOptions = {}): AsyncIterable<WatchEvent<KindMap[K]>> {
    const after = revisionOf(options.resourceVersion);
    if (after === undefined) return this.upstream(kind, options);
    let feed = this.feeds.get(kind);
    if (!feed?.usable) {
      // The first watcher's position becomes the floor: later watchers are at or after it.
      const started = new KindFeed(this.inner, kind, after, this.window, () => { if (this.feeds.get(kind) === started) this.feeds.delete(kind); });
      this.feeds.set(kind, feed = started);
    }
    if (after < feed.floor) return this.upstream(kind, options);
    this.stats.cached++;
    return feed.subscribe(after, options.signal, options.name) as AsyncIterable<WatchEvent<KindMap[K]>>;
  }

  private upstream<K extends Kind>(kind: K, options: WatchOptions): AsyncIterable<WatchEvent<KindMap[K]>> {
    this.stats.upstream++;
    return this.inner.watch(kind, options);
  }

  /** Stops the shared watches; the inner store is the caller's to close. */
  async close(): Promise<void> {
    for (const feed of this.feeds.values()) feed.close();
    this.feeds.clear();
  }
}
