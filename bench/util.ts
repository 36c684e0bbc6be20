// Small helpers the benchmarks share: percentiles, a resource sampler, prom-client readings,
// markdown tables and the results folder.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { register } from 'prom-client';

/** Nearest-rank percentile of `values` (p in 0..100); NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Runs `op` from `concurrency` clients for `seconds`; returns completed operations per second. */
export async function measure(seconds: number, concurrency: number, op: (client: number, i: number) => Promise<void>): Promise<{ opsPerSec: number; count: number }> {
  const deadline = Date.now() + seconds * 1000;
  let count = 0;
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async (_, client) => {
    for (let i = 0; Date.now() < deadline; i++) {
      await op(client, i);
      count++;
    }
  }));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  return { opsPerSec: count / elapsed, count };
}

export const round = (n: number, digits = 1) => (Number.isFinite(n) ? Math.round(n * 10 ** digits) / 10 ** digits : n);

/** Samples this process's RSS (for the peak) and measures its CPU time between start and stop. */
export class ResourceSampler {
  peakRssBytes = 0;
  private timer?: NodeJS.Timeout;
  private cpu0 = process.cpuUsage();
  private t0 = process.hrtime.bigint();

  start(intervalMs = 200): this {
    this.cpu0 = process.cpuUsage();
    this.t0 = process.hrtime.bigint();
    // memoryUsage.rss() alone: memoryUsage() also gathers heap statistics, which at 5,000 VMs
    // cost 0.3 ms of the measured process's CPU per VM, five times a second.
    this.peakRssBytes = process.memoryUsage.rss();
    this.timer = setInterval(() => { this.peakRssBytes = Math.max(this.peakRssBytes, process.memoryUsage.rss()); }, intervalMs);
    this.timer.unref();
    return this;
  }

  /** CPU seconds used and the average number of cores busy since start(). */
  stop(): { cpuSeconds: number; wallSeconds: number; cores: number; peakRssMiB: number } {
    clearInterval(this.timer);
    this.peakRssBytes = Math.max(this.peakRssBytes, process.memoryUsage.rss());
    const cpu = process.cpuUsage(this.cpu0);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const wallSeconds = Number(process.hrtime.bigint() - this.t0) / 1e9;
    return { cpuSeconds, wallSeconds, cores: cpuSeconds / wallSeconds, peakRssMiB: this.peakRssBytes / 2 ** 20 };
  }
}

interface MetricValue { labels: Record<string, string | number>; value: number; metricName?: string }

/** The values of one metric in prom-client's global registry whose labels include `labels`. */
export async function metricValues(name: string, labels: Record<string, string> = {}): Promise<MetricValue[]> {
  const metric = register.getSingleMetric(name);
  if (!metric) return [];
  const { values } = (await metric.get()) as { values: MetricValue[] };
  return values.filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want));
}

/** count and sum of a histogram (all series matching `labels`). */
export async function histogramTotals(name: string, labels: Record<string, string> = {}): Promise<{ count: number; sum: number }> {
  const values = await metricValues(name, labels);
  const pick = (suffix: string) => values.filter((v) => v.metricName === `${name}${suffix}`).reduce((s, v) => s + v.value, 0);
  return { count: pick('_count'), sum: pick('_sum') };
}

/** A quantile estimated from a histogram's cumulative buckets (upper bound of the bucket that holds it). */
export async function histogramQuantile(name: string, q: number, labels: Record<string, string> = {}): Promise<number> {
  const buckets = new Map<number, number>();
  for (const v of await metricValues(name, labels)) {
    if (v.metricName !== `${name}_bucket`) continue;
    const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + v.value);
  }
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total === 0) return NaN;
  for (const [le, count] of sorted) if (count >= q * total) return le;
  return Infinity;
}

export function table(header: string[], rows: (string | number)[][]): string {
  return [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function repoRoot(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'crds'))) return dir;
  }
  throw new Error(`repository root not found above ${__dirname}`);
}

/** Writes bench/results/<name>.json with the machine's context beside the figures. */
export function writeResults(name: string, data: Record<string, unknown>): string {
  const out = path.join(repoRoot(), 'bench', 'results');
  fs.mkdirSync(out, { recursive: true });
  const file = path.join(out, `${name}.json`);
  fs.writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), cpus: os.cpus().length, load: os.loadavg(), ...data }, null, 2)}\n`);
  return file;
}

export const loadAverage = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');

/** Parses --name value / --flag options against defaults (numbers stay numbers). */
export function parseArgs<T extends Record<string, string | number | boolean>>(argv: string[], defaults: T): T {
  const out: Record<string, string | number | boolean> = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z][a-z-]*)$/.exec(argv[i]);
    if (!m) throw new Error(`unexpected argument ${JSON.stringify(argv[i])}`);
    const key = m[1].replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!(key in defaults)) throw new Error(`unknown option --${m[1]} (known: ${Object.keys(defaults).join(', ')})`);
    const def = defaults[key];
    if (typeof def === 'boolean') { out[key] = true; continue; }
    const value = argv[++i];
    if (value === undefined) throw new Error(`--${m[1]} needs a value`);
    if (typeof def === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new Error(`--${m[1]} must be a number, got ${JSON.stringify(value)}`);
      out[key] = n;
    } else out[key] = value;
  }
  return out as T;
}

/**
 * A CPU profile of the measured phase alone (node:inspector), written to `file` when given:
 * `node --cpu-prof` also records start-up (loading, key generation, schema compiling), which
 * divided by the calls made hides a per-call cost of a few microseconds.
 */
export async function profiled<T>(file: string | undefined, intervalUs: number, run: () => Promise<T>): Promise<T> {
  if (!file) return run();
  const inspector = await import('node:inspector');
  const session = new inspector.Session();
  session.connect();
  const post = (method: string, params?: object) => new Promise<any>((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: intervalUs });
  await post('Profiler.start');
  try {
    return await run();
  } finally {
    const { profile } = await post('Profiler.stop');
    fs.writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  }
}
