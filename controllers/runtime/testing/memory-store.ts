// An in-memory Store for tests of the controller runtime and reconcilers. The resource semantics
// (validation, generation, resourceVersion, finalizers, patches, watch event types) are the real
// ones from api/store/kv.ts KvStore; only the revisioned key-value layer underneath is a Map and
// an EventEmitter instead of LMDB or etcd. It passes the same conformance suite as the real
// backends (memory-store.test.ts) and adds fault injection: compaction and broken watches.
import { EventEmitter } from 'node:events';
import { TooOldError } from '../../../api/errors';
import { EventQueue, KvStore, type KvBackend, type KvEntry, type KvEvent } from '../../../api/store/kv';

export class MemoryKv implements KvBackend {
  private readonly data = new Map<string, KvEntry>();
  private readonly history: KvEvent[] = [];
  private readonly events = new EventEmitter();
  private readonly openWatches = new Set<EventQueue<KvEvent>>();
  private rev = 0;
  private compacted = 0;
  private closed = false;

  constructor(private readonly retained = 10_000) {
    this.events.setMaxListeners(0);
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const e = this.data.get(key);
    return e && { ...e };
  }

  async range(prefix: string): Promise<{ entries: KvEntry[]; revision: number }> {
    const entries = [...this.data.values()].filter((e) => e.key.startsWith(prefix)).sort((a, b) => (a.key < b.key ? -1 : 1)).map((e) => ({ ...e }));
    return { entries, revision: this.rev };
  }

  async put(key: string, value: string, expected: number): Promise<number | undefined> {
    const current = this.data.get(key);
    if ((current?.modRevision ?? 0) !== expected) return undefined;
    const revision = ++this.rev;
    this.data.set(key, { key, value, modRevision: revision });
    this.record({ type: 'put', key, value, revision, created: !current });
    return revision;
  }

  async delete(key: string, expected: number): Promise<number | undefined> {
    const current = this.data.get(key);
    if (!current || current.modRevision !== expected) return undefined;
    const revision = ++this.rev;
    this.data.delete(key);
    this.record({ type: 'delete', key, value: current.value, revision, created: false });
    return revision;
  }

  private record(event: KvEvent): void {
    this.history.push(event);
    if (this.history.length > this.retained) this.compact(this.history[this.history.length - this.retained - 1].revision);
    this.events.emit('event', event);
  }

  watch(prefix: string, after: number, signal?: AbortSignal): AsyncIterable<KvEvent> {
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        if (after < self.compacted) throw new TooOldError(String(after), `compacted through ${self.compacted}`);
        const queue = new EventQueue<KvEvent>();
        // Replay and subscribe in one synchronous step, so no event falls between them.
        for (const e of self.history) if (e.revision > after && e.key.startsWith(prefix)) queue.push(e);
        const listener = (e: KvEvent) => { if (e.revision > after && e.key.startsWith(prefix)) queue.push(e); };
        const onAbort = () => queue.end();
        self.events.on('event', listener);
        self.openWatches.add(queue);
        signal?.addEventListener('abort', onAbort, { once: true });
        if (signal?.aborted || self.closed) queue.end();
        try {
          yield* queue;
        } finally {
          self.events.off('event', listener);
          self.openWatches.delete(queue);
          signal?.removeEventListener('abort', onAbort);
        }
      },
    };
  }

  async revision(): Promise<number> { return this.rev; }

  async close(): Promise<void> {
    this.closed = true;
    for (const q of this.openWatches) q.end();
  }

  // ---- fault injection for tests ----

  /** Forgets history up to and including `revision`: watches from before it get TooOldError. */
  compact(revision: number): void {
    this.compacted = Math.max(this.compacted, revision);
    while (this.history.length && this.history[0].revision <= this.compacted) this.history.shift();
  }

  /** Fails every open watch with `error`, as a dropped connection would. */
  breakWatches(error: Error): number {
    const n = this.openWatches.size;
    for (const q of this.openWatches) q.fail(error);
    return n;
  }

  get watchCount(): number { return this.openWatches.size; }
}

export class MemoryStore extends KvStore {
  constructor(readonly memory: MemoryKv = new MemoryKv()) {
    super('embedded', memory, '/n0stack');
  }
}
