// Facade overhead: unary calls/s of a cheap read through the real facade (NetworkService.GetNetwork
// over the embedded store, bearer token checked, TLS) next to a bare grpc-js server that answers
// the same RPC of the same proto with the same message at once, in the same run, over the same
// TLS, from the same client, at 1 and 64 concurrent callers. Rounds alternate between the two so
// a neighbour's load falls on both alike. Goal (issue 17): the facade >= 0.8x the echo server.
//   npm run build && npm run bench:facade     (BENCH_SECONDS per cell, default 1; --rounds 8)
import './quiet';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { openStore } from '../api/store';
import { grpcService, loadFacadeProto } from '../api/server/proto';
import { FacadeClient } from '../cli/client';
import { startApi } from '../cli/controlplane';
import { benchPki, Cleanups } from './harness';
import { loadAverage, measure, parseArgs, profiled, round, table, writeResults } from './util';

// Short cells, many rounds: a neighbour's load on this shared machine changes within seconds, and
// the finer the two sides alternate, the more alike it falls on both.
const SECONDS = Number(process.env.BENCH_SECONDS ?? 1);
const CONCURRENCY = [1, 64];
const GOAL = 0.8;
// --only echo|facade: one side alone, for profiling it; --profile FILE: a CPU profile of the
// measured rounds only (node dist/bench/facade.js --only facade --profile /tmp/facade.cpuprofile).
const defaults = { rounds: 8, only: '', profile: '', profileIntervalUs: 200 };

/** What each side does per call, printed with the figures so the comparison can be judged. */
const SIDES = [
  'both: the same FacadeClient (n0ctl\'s) in this process, one TLS channel to each server, bearer token metadata, a deadline, GetNetworkRequest{name} -> the same Network message (~200-byte annotation); grpc-js server options alike (4 MiB receive limit, channelz off)',
  'echo: grpc-js decodes the request and serializes a constant message at once; no authentication, no store, no metrics',
  'facade: the real startFacade: token checked (authenticate + authorize), request decoding checked, store read (embedded lmdb, JSON.parse), document -> message (api/server/convert.ts), latency histogram, error mapping',
];

/** A grpc-js server with only NetworkService.GetNetwork, answering `answer` without looking at anything. */
async function startEcho(tls: { cert: Buffer; key: Buffer }, answer: unknown, cleanups: Cleanups): Promise<number> {
  // The facade's own server options (startFacade), so the difference is the facade's work alone.
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024, 'grpc.enable_channelz': 0 });
  server.addService(grpcService(loadFacadeProto(), 'NetworkService').service, { GetNetwork: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, answer) });
  const credentials = grpc.ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }], false);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))));
  cleanups.push(() => server.forceShutdown());
  return port;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2), defaults);
  const cleanups = new Cleanups();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-bench-facade-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  try {
    const store = await openStore({ backend: 'embedded', dataDir: path.join(dir, 'store') });
    cleanups.push(() => store.close());
    await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name: 'bench', annotations: { 'n0stack/n0core/description': 'x'.repeat(200) } }, spec: { ipv4_cidr: '10.0.0.0/24' } });
    const token = randomBytes(16).toString('hex');
    const { tls, caFile } = benchPki(cleanups);
    const api = await startApi({ store, listen: '127.0.0.1:0', token, tls, defaultWaitMs: 60_000 });
    cleanups.push(() => api.stop());
    const client = (port: number) => {
      const c = new FacadeClient({ endpoint: `127.0.0.1:${port}`, token, ca: caFile, sources: { endpoint: 'bench' } }, 60_000);
      cleanups.push(() => c.close());
      return c;
    };
    const facade = client(api.facade.port);
    const answer = await facade.call('NetworkService', 'GetNetwork', { name: 'bench' });
    const echo = client(await startEcho(tls, answer, cleanups));
    const targets = Object.fromEntries(Object.entries({ echo, facade }).filter(([name]) => !opts.only || name === opts.only));
    const counts: Record<string, { count: number; seconds: number; cpuSeconds: number }> = {};
    // Warm-up outside the clock: connections, JIT.
    for (const c of Object.values(targets)) await measure(1, 64, async () => { await c.call('NetworkService', 'GetNetwork', { name: 'bench' }); });
    await profiled(opts.profile || undefined, Number(opts.profileIntervalUs), async () => { for (let r = 0; r < opts.rounds; r++) {
      for (const concurrency of CONCURRENCY) {
        // Each round reverses the order, so a drift in the neighbours' load favours neither side.
        const order = Object.entries(targets);
        if (r % 2) order.reverse();
        for (const [name, c] of order) {
          const cpu = process.cpuUsage();
          const m = await measure(SECONDS, concurrency, async () => { await c.call('NetworkService', 'GetNetwork', { name: 'bench' }); });
          const used = process.cpuUsage(cpu);
          const cell = (counts[`${name}/${concurrency}`] ??= { count: 0, seconds: 0, cpuSeconds: 0 });
          cell.count += m.count;
          cell.seconds += m.count / m.opsPerSec;
          cell.cpuSeconds += (used.user + used.system) / 1e6;
        }
      }
    } });
    if (opts.only) { process.stdout.write(`${opts.only}: ${JSON.stringify(counts)}\n`); return; }
    const rate = (name: string, concurrency: number) => counts[`${name}/${concurrency}`].count / counts[`${name}/${concurrency}`].seconds;
    // Calls per CPU second of this process (client and server): what the wall rate would be on
    // an otherwise idle core, and steady while neighbours load the machine.
    const perCpu = (name: string, concurrency: number) => counts[`${name}/${concurrency}`].count / counts[`${name}/${concurrency}`].cpuSeconds;
    const rows = CONCURRENCY.map((concurrency) => {
      const ratio = rate('facade', concurrency) / rate('echo', concurrency);
      const cpuRatio = perCpu('facade', concurrency) / perCpu('echo', concurrency);
      return {
        concurrency, echoPerSec: round(rate('echo', concurrency), 0), facadePerSec: round(rate('facade', concurrency), 0), ratio: round(ratio, 2),
        echoPerCpuSecond: round(perCpu('echo', concurrency), 0), facadePerCpuSecond: round(perCpu('facade', concurrency), 0), cpuRatio: round(cpuRatio, 2),
        goal: GOAL, met: ratio >= GOAL,
      };
    });
    const lines = [`facade benchmark: GetNetwork over TLS with a bearer token, ${opts.rounds} rounds of ${SECONDS} s per cell; load ${loadAverage()}`, ...SIDES.map((s) => `  ${s}`), ''];
    lines.push(table(['clients', 'bare grpc-js echo calls/s (baseline)', 'facade GetNetwork calls/s', 'facade vs echo', 'goal', 'met', 'calls per CPU second echo / facade (client + server)', 'facade vs echo per CPU second'],
      rows.map((r) => [r.concurrency, r.echoPerSec, r.facadePerSec, `${r.ratio.toFixed(2)}x`, `>= ${GOAL}x`, r.met ? 'yes' : 'no', `${r.echoPerCpuSecond} / ${r.facadePerCpuSecond}`, `${r.cpuRatio.toFixed(2)}x`])));
    process.stdout.write(`${lines.join('\n')}\n`);
    writeResults('facade', { options: opts, seconds: SECONDS, rows });
  } finally {
    await cleanups.run();
  }
}

main().then(() => process.exit(), (err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
