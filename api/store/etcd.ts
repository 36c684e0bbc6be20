// The etcd backend: a thin KvBackend on etcd3. etcd already is a revisioned key-value store, so
// resourceVersion is the key's mod_revision, compare-and-swap is a transaction on mod_revision
// (create_revision == 0 for "absent"), and watch resumes from any non-compacted revision.
import * as fs from 'node:fs';
import { Etcd3, type IKeyValue, type IOptions, type IWatchResponse } from 'etcd3';
import { TooOldError, UnavailableError } from '../errors';
import { logger } from '../log';
import { EventQueue, type KvBackend, type KvEntry, type KvEvent } from './kv';

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
  /** Deadline of each unary call (default 10 s). */
  timeoutMs?: number;
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
    // Streams (watch, lease keep-alive) live long; unary calls get a deadline.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeout }),
  };
}

function entry(kv: IKeyValue): KvEntry {
  return { key: kv.key.toString(), value: kv.value.toString(), modRevision: Number(kv.mod_revision) };
}

function unavailable(err: unknown): never {
  if (err instanceof Error && /Unavailable|ECONNREFUSED|deadline|connect/i.test(`${err.name} ${err.message}`)) {
    throw new UnavailableError(`etcd: ${err.message}`);
  }
  throw err;
}

export class EtcdBackend implements KvBackend {
  readonly client: Etcd3;

  constructor(options: EtcdOptions | Etcd3) {
    this.client = options instanceof Etcd3 ? options : new Etcd3(etcdClientOptions(options));
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const res = await this.client.get(key).exec().catch(unavailable);
    return res.kvs[0] && entry(res.kvs[0]);
  }

  async range(prefix: string): Promise<{ entries: KvEntry[]; revision: number }> {
    const res = await this.client.getAll().prefix(prefix).exec().catch(unavailable);
    return { entries: res.kvs.map(entry), revision: Number(res.header.revision) };
  }

  async put(key: string, value: string, expected: number): Promise<number | undefined> {
    const res = await this.client
      .if(key, expected === 0 ? 'Create' : 'Mod', '==', expected)
      .then(this.client.put(key).value(value))
      .commit()
      .catch(unavailable);
    return res.succeeded ? Number(res.header.revision) : undefined;
  }

  async delete(key: string, expected: number): Promise<number | undefined> {
    if (expected === 0) return undefined;
    const res = await this.client.if(key, 'Mod', '==', expected).then(this.client.delete().key(key)).commit().catch(unavailable);
    return res.succeeded ? Number(res.header.revision) : undefined;
  }

  async revision(): Promise<number> {
    // A range that matches nothing still returns the store's current revision in its header.
    const res = await this.client.get('\0').exec().catch(unavailable);
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
