// Store benchmark: creates/s, updates/s and gets/s through the embedded and etcd Stores, and
// creates/s and gets/s through the facade (gRPC: ResourceService.Apply, NetworkService.GetNetwork)
// over each, next to the raw durable write and the raw read of the database under each (lmdb put
// + flush / get, etcd3 put against an fsyncing etcd / get), at 1 and 64 concurrent clients,
// measured in the same run so the ratios mean something.
//   npm run build && npm run bench:store     (results also in bench/results/store.json)
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { open } from 'lmdb';
import { LmdbBackend } from '../api/store/embedded';
import { EtcdBackend } from '../api/store/etcd';
import { startEtcd } from '../api/store/etcd-process';
import { KvStore } from '../api/store/kv';
import type { Network } from '../api/types';
import { Cleanups, startFacadeClient } from './harness';
import { measure } from './util';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const CONCURRENCY = [1, 64];
const DESCRIPTION = 'x'.repeat(900); // documents of about 1 KiB

interface Row { target: string; op: string; concurrency: number; opsPerSec: number; count: number }

function doc(name: string): Network {
  return { apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name }, spec: { ipv4_cidr: '10.0.0.0/24', description: DESCRIPTION } };
}

async function storeRows(target: string, store: KvStore, run: string): Promise<Row[]> {
  const rows: Row[] = [];
  // Warm-up outside the clock: the first write compiles the CRD schemas (ajv) and opens connections.
  for (let i = 0; i < 20; i++) await store.create(doc(`${run}-warm-${i}`));
  for (const concurrency of CONCURRENCY) {
    const c = await measure(SECONDS, concurrency, async (client, i) => { await store.create(doc(`${run}-c${concurrency}-${client}-${i}`)); });
    rows.push({ target, op: 'create', concurrency, ...c });
    // Each client updates its own object, always with the resourceVersion it got back.
    const held = await Promise.all(Array.from({ length: concurrency }, (_, client) => store.create(doc(`${run}-u${concurrency}-${client}`))));
    const u = await measure(SECONDS, concurrency, async (client, i) => {
      held[client] = await store.update({ ...held[client], metadata: { ...held[client].metadata, annotations: { i: String(i) } } });
    });
    rows.push({ target, op: 'update', concurrency, ...u });
    const g = await measure(SECONDS, concurrency, async (client) => { await store.get('Network', held[client].metadata.name); });
    rows.push({ target, op: 'get', concurrency, ...g });
  }
  return rows;
}

/** The same through the facade over `store`: what a client of n0stack gets. */
async function facadeRows(target: string, store: KvStore, run: string): Promise<Row[]> {
  const cleanups = new Cleanups();
  try {
    const client = await startFacadeClient(store, cleanups, 60_000);
    const apply = (name: string) => client.call('ResourceService', 'Apply', { document_json: JSON.stringify(doc(name)) });
    for (let i = 0; i < 20; i++) await apply(`${run}-fwarm-${i}`);
    const rows: Row[] = [];
    for (const concurrency of CONCURRENCY) {
      const c = await measure(SECONDS, concurrency, async (c, i) => { await apply(`${run}-fc${concurrency}-${c}-${i}`); });
      rows.push({ target, op: 'create', concurrency, ...c });
      const g = await measure(SECONDS, concurrency, async (c) => { await client.call('NetworkService', 'GetNetwork', { name: `${run}-fc${concurrency}-${c}-0` }); });
      rows.push({ target, op: 'get', concurrency, ...g });
    }
    return rows;
  } finally {
    await cleanups.run();
  }
}

function repoRoot(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'crds'))) return dir;
  }
  throw new Error(`repository root not found above ${__dirname}`);
}

async function main(): Promise<void> {
  const run = `b${randomBytes(3).toString('hex')}`;
  const value = JSON.stringify(doc('raw'));
  const rows: Row[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-bench-'));
  const etcd = await startEtcd({ durable: true });
  try {
    // Raw lmdb: one put per operation, acknowledged after the flush (what the embedded store waits for).
    const raw = open({ path: path.join(dir, 'raw') });
    for (const concurrency of CONCURRENCY) {
      const r = await measure(SECONDS, concurrency, async (client, i) => { await raw.put(`/raw/${concurrency}/${client}/${i}`, value); await raw.flushed; });
      rows.push({ target: 'lmdb put (raw)', op: 'put', concurrency, ...r });
      const g = await measure(SECONDS, concurrency, async (client) => { raw.get(`/raw/${concurrency}/${client}/0`); });
      rows.push({ target: 'lmdb get (raw)', op: 'get', concurrency, ...g });
    }
    await raw.close();
    const embedded = new KvStore('embedded', new LmdbBackend(path.join(dir, 'store')), '/n0stack');
    rows.push(...await storeRows('embedded store', embedded, run));
    rows.push(...await facadeRows('facade (embedded)', embedded, run));
    await embedded.close();

    const client = new Etcd3({ hosts: [etcd.endpoint] });
    for (const concurrency of CONCURRENCY) {
      const r = await measure(SECONDS, concurrency, async (c, i) => { await client.put(`/raw/${run}/${concurrency}/${c}/${i}`).value(value); });
      rows.push({ target: 'etcd3 put (raw)', op: 'put', concurrency, ...r });
      const g = await measure(SECONDS, concurrency, async (c) => { await client.get(`/raw/${run}/${concurrency}/${c}/0`).string(); });
      rows.push({ target: 'etcd3 get (raw)', op: 'get', concurrency, ...g });
    }
    client.close();
    const etcdStore = new KvStore('etcd', new EtcdBackend({ endpoints: [etcd.endpoint] }), `/${run}`);
    rows.push(...await storeRows('etcd store', etcdStore, run));
    rows.push(...await facadeRows('facade (etcd)', etcdStore, run));
    await etcdStore.close();
  } finally {
    await etcd.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const rate = (target: string, op: string, concurrency: number) => rows.find((r) => r.target === target && r.op === op && r.concurrency === concurrency)!.opsPerSec;
  const lines = [`store benchmark: ${SECONDS} s per cell, ~1 KiB documents, durable writes (lmdb flushed, etcd with fsync)`, ''];
  lines.push('| target | op | clients | ops/s | vs the raw put (writes) or get (reads) of the same db | embedded vs etcd |', '| --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    const lmdb = /embedded|lmdb/.test(r.target);
    const rawOp = r.op === 'get' ? 'get' : 'put';
    const vsRaw = r.opsPerSec / rate(`${lmdb ? 'lmdb' : 'etcd3'} ${rawOp} (raw)`, rawOp, r.concurrency);
    const twin = r.target === 'embedded store' ? 'etcd store' : r.target === 'facade (embedded)' ? 'facade (etcd)' : undefined;
    const vsEtcd = twin ? `${(r.opsPerSec / rate(twin, r.op, r.concurrency)).toFixed(2)}x` : '';
    lines.push(`| ${r.target} | ${r.op} | ${r.concurrency} | ${r.opsPerSec.toFixed(0)} | ${vsRaw < 0.01 ? vsRaw.toPrecision(2) : vsRaw.toFixed(2)}x | ${vsEtcd} |`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  const out = path.join(repoRoot(), 'bench', 'results');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'store.json'), `${JSON.stringify({ date: new Date().toISOString(), seconds: SECONDS, cpus: os.cpus().length, load: os.loadavg(), rows }, null, 2)}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
