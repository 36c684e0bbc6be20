// The embedded backend: a KvBackend on LMDB (npm `lmdb`), for a single machine without etcd.
//
// Why LMDB and not SQLite (better-sqlite3): lmdb's prebuilt binary comes from the npm registry
// itself, while better-sqlite3 12.x has to build from source here (~47 s, and 13.x segfaults on
// Node 20); LMDB transactions are fully ACID, copy-on-write B+trees never need recovery after a
// crash, and lmdb-js commits in a writer thread and batches every write of an event turn into one
// transaction, so concurrent writers share one fsync. Measured with bench/store.ts on this
// 2-core machine under heavy shared load (1 KiB documents, every write flushed): raw lmdb
// 160-320 puts/s from 1 client and ~5,000/s from 64 (group commit); the embedded Store 3,100
// creates/s and 4,100 updates/s at 64 clients, 2-5.6x the etcd Store on an fsyncing etcd (925
// raw puts/s at 64). From a single client etcd's WAL fsync was faster (~330 vs ~160-320/s).
//
// Layout: sub-database `data` (key -> {v: value, m: modRevision}), `log` (revision -> event), and
// `meta` (`rev`: the revision counter). Every write bumps the counter, writes the key and appends
// its event in ONE transaction, so the log has exactly one entry per revision and a gap in it
// can only mean compaction. The log keeps the newest RETAINED_REVISIONS entries.
//
// Durability: a write is acknowledged only after lmdb reports it flushed to disk (no noSync), and
// watchers only see revisions up to that point, so nothing a watcher acted on can be lost.
// Watches are served in this process, so one process owns a data directory: it holds an
// exclusive lock on it (dirlock.ts) and a second process gets an error naming the owner's pid.
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { TooOldError } from '../errors';
import { DirLock } from './dirlock';
import type { KvBackend, KvEntry, KvEvent } from './kv';

export const RETAINED_REVISIONS = 10_000;

interface Stored { v: string; m: number }
interface LogEntry { t: 'put' | 'delete'; k: string; v: string; c: boolean }

const WATCH_BATCH = 1000;

/** The smallest string greater than every string starting with `prefix`. */
function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

export class LmdbBackend implements KvBackend {
  private readonly root: RootDatabase;
  private readonly data: Database<Stored, string>;
  private readonly log: Database<LogEntry, number>;
  private readonly meta: Database<number, string>;
  private readonly advanced = new EventEmitter();
  private readonly lock: DirLock;
  /** Highest revision known to be on disk; watchers read the log up to here. */
  private durable: number;
  private closed = false;

  constructor(dataDir: string, private readonly retained = RETAINED_REVISIONS) {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    this.lock = DirLock.acquire(dataDir);
    try {
      this.root = open({ path: dataDir, maxDbs: 4 });
      this.data = this.root.openDB<Stored, string>({ name: 'data' });
      this.log = this.root.openDB<LogEntry, number>({ name: 'log' });
      this.meta = this.root.openDB<number, string>({ name: 'meta' });
      this.durable = this.meta.get('rev') ?? 0;
    } catch (err) {
      this.lock.release();
      throw err;
    }
    this.advanced.setMaxListeners(0);
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const stored = this.data.get(key);
    return stored && { key, value: stored.v, modRevision: stored.m };
  }

  async range(prefix: string): Promise<{ entries: KvEntry[]; revision: number }> {
    // One read transaction, so the revision is the snapshot the entries come from.
    const transaction = this.root.useReadTransaction();
    try {
      const entries: KvEntry[] = [];
      for (const { key, value } of this.data.getRange({ start: prefix, end: prefixEnd(prefix), transaction })) {
        entries.push({ key, value: value.v, modRevision: value.m });
      }
      return { entries, revision: this.meta.get('rev', { transaction }) ?? 0 };
    } finally {
      transaction.done();
    }
  }

  put(key: string, value: string, expected: number): Promise<number | undefined> {
    return this.commit(key, expected, (current, rev) => {
      this.data.put(key, { v: value, m: rev });
      return { t: 'put', k: key, v: value, c: current === undefined };
    });
  }

  delete(key: string, expected: number): Promise<number | undefined> {
    return this.commit(key, expected, (current) => {
      if (!current) return undefined;
      this.data.remove(key);
      return { t: 'delete', k: key, v: current.v, c: false };
    });
  }

  private async commit(key: string, expected: number, write: (current: Stored | undefined, rev: number) => LogEntry | undefined): Promise<number | undefined> {
    const rev = await this.root.transaction(() => {
      const current = this.data.get(key);
      if ((current?.m ?? 0) !== expected) return undefined;
      const next = (this.meta.get('rev') ?? 0) + 1;
      const event = write(current, next);
      if (!event) return undefined;
      this.log.put(next, event);
      this.meta.put('rev', next);
      if (next > this.retained) this.log.remove(next - this.retained);
      return next;
    });
    if (rev === undefined) return undefined;
    await this.root.flushed;
    if (rev > this.durable) {
      this.durable = rev;
      this.advanced.emit('advance');
    }
    return rev;
  }

  /** Drops the history before `revision` (a watch from revision-1 or later still works). */
  async compact(revision: number): Promise<void> {
    await this.root.transaction(() => {
      for (const key of this.log.getKeys({ end: revision })) this.log.remove(key);
    });
    await this.root.flushed;
  }

  async *watch(prefix: string, after: number, signal?: AbortSignal): AsyncIterable<KvEvent> {
    let last = after;
    while (!signal?.aborted && !this.closed) {
      if (last >= this.durable) {
        await this.nextAdvance(signal);
        continue;
      }
      // Read a batch eagerly: no read transaction stays open while the consumer awaits.
      const batch: { rev: number; e: LogEntry }[] = [];
      for (const { key, value } of this.log.getRange({ start: last + 1, end: this.durable + 1, limit: WATCH_BATCH })) batch.push({ rev: key, e: value });
      if (batch.length === 0 || batch[0].rev !== last + 1) throw new TooOldError(String(after), `the embedded store keeps the last ${this.retained} revisions`);
      for (const { rev, e } of batch) {
        last = rev;
        if (!e.k.startsWith(prefix)) continue;
        yield { type: e.t, key: e.k, value: e.v, revision: rev, created: e.c };
        if (signal?.aborted) return;
      }
    }
  }

  private nextAdvance(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.advanced.off('advance', done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.advanced.on('advance', done);
      signal?.addEventListener('abort', done);
    });
  }

  async revision(): Promise<number> {
    return this.durable;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.advanced.emit('advance');
    try { await this.root.close(); } finally { this.lock.release(); }
  }
}
