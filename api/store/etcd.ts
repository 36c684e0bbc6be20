// The etcd backend: a thin KvBackend on etcd3. etcd already is a revisioned key-value store, so
// resourceVersion is the key's mod_revision, compare-and-swap is a transaction on mod_revision
// (create_revision == 0 for "absent"), and watch resumes from any non-compacted revision.
//
// Several members: etcd3 spreads calls over the endpoints; when a member dies, calls to it (and
// proposals it was forwarding as the Raft leader) fail or time out. Every call here is therefore
// retried on another member, with back-off, up to `retries` times. Reads are idempotent. A write
// is a compare-and-swap whose first attempt may have committed even though it failed or timed out
// on the client, so before retrying — and when a retry's CAS fails — the key is read back: holding
// exactly the value we wrote means our write committed. etcd3's own retries are switched off
// (global policy noop) because they would retry writes blindly.
import * as fs from 'node:fs';
import { circuitBreaker, ConsecutiveBreaker, handleWhen, noop } from 'cockatiel';
import { Etcd3, isRecoverableError, Range, type IKeyValue, type IOptions, type IWatchResponse } from 'etcd3';
import { TooOldError, UnavailableError } from '../errors';
import { logger } from '../log';
import { EventQueue, type KvBackend, type KvEntry, type KvEvent } from './kv';
import { FenceLostError, fenceLost, writeFence, type WriteFence } from './write-fence';

const log = logger('store-etcd');

export interface EtcdTls {
  /** Paths of PEM files. */
  ca?: string;
  cert?: string;
  key?: string;
}

export interface EtcdOptions {
  endpoints: string[];
  tls?: EtcdTls;
  /** Deadline of each unary call attempt (default 10 s). */
  timeoutMs?: number;
  /** Further attempts of a call that failed transiently, each on the next member (default 4). */
  retries?: number;
}

export function etcdClientOptions(options: EtcdOptions): IOptions {
  const timeout = options.timeoutMs ?? 10_000;
  const tls = options.tls;
  return {
    hosts: options.endpoints,
    ...(tls && {
      credentials: {
        rootCertificate: tls.ca ? fs.readFileSync(tls.ca) : Buffer.alloc(0),
        ...(tls.cert && { certChain: fs.readFileSync(tls.cert) }),
        ...(tls.key && { privateKey: fs.readFileSync(tls.key) }),
      },
    }),
    // A watch event or a range page can carry a big Node (every reservation on it); gRPC's
    // default 4 MiB receive limit is too tight for that (kube-apiserver lifts it too).
    grpcOptions: { 'grpc.max_receive_message_length': 256 * 2 ** 20 },
    // Streams (watch, lease keep-alive) live long; unary calls get a deadline.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeout }),
    faultHandling: {
      // A member that keeps failing is skipped for a second, then tried again (etcd3's default
      // is 5 s, which with one member dead and one slow left no member to call).
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }),
      global: noop,
    },
  };
}

/** Failures another attempt (on another member, or after a Raft election) can fix. */
export function isTransient(err: unknown): boolean {
  if (!(err instanceof Error) || err instanceof FenceLostError) return false;
  if (isRecoverableError(err)) return true;
  return /Unavailable|ECONNREFUSED|ECONNRESET|deadline|circuit breaker|request timed out|leader changed|no leader|connection|Cancelled/i.test(`${err.name} ${err.message}`);
}

/** Objects per range request: pages stay a few MiB even of big Nodes. */
const RANGE_PAGE = 200;

function entry(kv: IKeyValue): KvEntry {
  return { key: kv.key.toString(), value: kv.value.toString(), modRevision: Number(kv.mod_revision) };
}

function unavailable(err: unknown): never {
  if (isTransient(err)) throw new UnavailableError(`etcd: ${(err as Error).message}`);
  throw err;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class EtcdBackend implements KvBackend {
  readonly client: Etcd3;
  private readonly retries: number;
  /** How often calls were retried, and how many failed writes turned out to have committed. */
  readonly stats = { retries: 0, recoveredWrites: 0 };

  constructor(options: EtcdOptions | Etcd3) {
    this.client = options instanceof Etcd3 ? options : new Etcd3(etcdClientOptions(options));
    this.retries = options instanceof Etcd3 ? 4 : options.retries ?? 4;
  }

  /** Runs an idempotent call, retrying transient failures with jittered back-off. */
  private async retrying<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!isTransient(err) || attempt >= this.retries) unavailable(err);
        this.stats.retries++;
        log.debug('etcd call failed; retrying on another member', { attempt, error: (err as Error).message });
        await sleep(this.backoff(attempt));
      }
    }
  }

  private backoff(attempt: number): number {
    return Math.min(2000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2);
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const res = await this.retrying(() => this.client.get(key).exec());
    return res.kvs[0] && entry(res.kvs[0]);
  }

  /**
   * In pages at one revision (a consistent snapshot, as Kubernetes lists with limit/continue): one
   * response with every object of a kind passes gRPC's 4 MiB message limit at a few thousand
   * objects (a controller restart with 10,000 BlockStorages never synced).
   */
  async range(prefix: string): Promise<{ entries: KvEntry[]; revision: number }> {
    const end = Range.prefix(prefix).end;
    const entries: KvEntry[] = [];
    let start: Buffer = Buffer.from(prefix);
    let revision: number | undefined;
    for (;;) {
      const res = await this.retrying(() => {
        const page = this.client.getAll().inRange(new Range(start, end)).limit(RANGE_PAGE);
        return (revision === undefined ? page : page.revision(revision)).exec();
      });
      revision ??= Number(res.header.revision);
      entries.push(...res.kvs.map(entry));
      if (!res.more || res.kvs.length === 0) return { entries, revision };
      // The next page starts just after the last key of this one.
      start = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
    }
  }

  /** A failed compare: was it the fence (its key gone) rather than the object's revision? */
  private async checkFence(fence: WriteFence | undefined, what: string): Promise<void> {
    if (fence && (await this.retrying(() => this.client.get(fence.key).exec())).kvs.length === 0) throw fenceLost(fence, what);
  }

  async put(key: string, value: string, expected: number): Promise<number | undefined> {
    const fence = writeFence.getStore();
    for (let attempt = 0; ; attempt++) {
      let failure: unknown;
      try {
        let txn = this.client.if(key, expected === 0 ? 'Create' : 'Mod', '==', expected);
        if (fence) txn = txn.and(fence.key, 'Create', '>', 0);
        const res = await txn.then(this.client.put(key).value(value)).commit();
        if (res.succeeded) return Number(res.header.revision);
        await this.checkFence(fence, `put of ${key}`);
        // Lost the CAS; after an earlier failed attempt that may be because that attempt committed.
        if (attempt === 0) return undefined;
        const mine = await this.ownWrite(key, value, expected);
        if (mine !== undefined) this.stats.recoveredWrites++;
        return mine;
      } catch (err) {
        if (!isTransient(err)) throw err;
        failure = err;
      }
      // The attempt may have committed before the member died or the deadline passed: look first.
      const mine = await this.ownWrite(key, value, expected).catch(() => undefined);
      if (mine !== undefined) { this.stats.recoveredWrites++; return mine; }
      if (attempt >= this.retries) unavailable(failure);
      this.stats.retries++;
      log.debug('etcd write failed; retrying on another member', { key, attempt, error: (failure as Error).message });
      await sleep(this.backoff(attempt));
    }
  }

  /**
   * The key's modRevision when it holds exactly `value` written after `expected`: our CAS write
   * committed (the value carries the object's uid, so another writer's value differs; an equal
   * one written by someone else over the same revision is the same state either way).
   */
  private async ownWrite(key: string, value: string, expected: number): Promise<number | undefined> {
    const current = await this.get(key);
    return current && current.value === value && current.modRevision > expected ? current.modRevision : undefined;
  }

  async delete(key: string, expected: number): Promise<number | undefined> {
    if (expected === 0) return undefined;
    const fence = writeFence.getStore();
    for (let attempt = 0; ; attempt++) {
      try {
        let txn = this.client.if(key, 'Mod', '==', expected);
        if (fence) txn = txn.and(fence.key, 'Create', '>', 0);
        const res = await txn.then(this.client.delete().key(key)).commit();
        if (!res.succeeded) await this.checkFence(fence, `delete of ${key}`);
        return res.succeeded ? Number(res.header.revision) : undefined;
      } catch (err) {
        if (!isTransient(err)) throw err;
        // Gone now: our delete (or a concurrent one of the same object) committed. Still there at
        // `expected`: it did not, try again. Changed: someone else wrote, a conflict.
        const res = await this.retrying(() => this.client.get(key).exec());
        const kv = res.kvs[0];
        if (!kv) return Number(res.header.revision);
        if (Number(kv.mod_revision) !== expected) return undefined;
        if (attempt >= this.retries) unavailable(err);
        this.stats.retries++;
        await sleep(this.backoff(attempt));
      }
    }
  }

  async revision(): Promise<number> {
    // A range that matches nothing still returns the store's current revision in its header.
    const res = await this.retrying(() => this.client.get('\0').exec());
    return Number(res.header.revision);
  }

  async compact(revision: number): Promise<void> {
    await this.client.kv.compact({ revision: String(revision), physical: true });
  }

  async *watch(prefix: string, after: number, signal?: AbortSignal): AsyncIterable<KvEvent> {
    if (signal?.aborted) return;
    const queue = new EventQueue<KvEvent>();
    const watcher = await this.client.watch().prefix(prefix).startRevision(String(after + 1)).withPreviousKV().create().catch(unavailable);
    watcher.on('data', (res: IWatchResponse) => {
      for (const ev of res.events) {
        const kv = ev.kv;
        const isDelete = ev.type === 'Delete';
        queue.push({
          type: isDelete ? 'delete' : 'put',
          key: kv.key.toString(),
          // etcd keeps the last value of a deleted key only as prev_kv.
          value: isDelete ? (ev.prev_kv?.value.toString() ?? '') : kv.value.toString(),
          revision: Number(kv.mod_revision),
          created: !isDelete && kv.version === '1',
        });
      }
    });
    watcher.on('error', (err: Error) => {
      // etcd cancels a watch whose start revision was compacted; the client only says "canceled".
      this.isCompacted(after + 1).then(
        (compacted) => queue.fail(compacted ? new TooOldError(String(after)) : new UnavailableError(`etcd watch on ${prefix} failed: ${err.message}`)),
        () => queue.fail(new UnavailableError(`etcd watch on ${prefix} failed: ${err.message}`)),
      );
    });
    watcher.on('disconnected', (err: Error) => log.warn('etcd watch disconnected; the client resumes it', { prefix, error: err.message }));
    const stop = () => queue.end();
    signal?.addEventListener('abort', stop);
    try {
      for await (const event of queue) yield event;
    } finally {
      signal?.removeEventListener('abort', stop);
      await watcher.cancel().catch(() => undefined);
    }
  }

  /** True when `revision` can no longer be read because it was compacted. */
  private async isCompacted(revision: number): Promise<boolean> {
    try {
      await this.client.get('\0').revision(String(revision)).exec();
      return false;
    } catch (err) {
      return /compacted/.test((err as Error).message);
    }
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
