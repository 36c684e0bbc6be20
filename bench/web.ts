// Web UI page-load benchmark: a control plane (embedded store, controllers, facade with its HTTP
// side) with one simulated node (agent/drivers/simulated.ts) and N running VMs, and Debian's
// Chromium (playwright-core, headless) loading the VM list. Each run is a fresh browser context
// (empty cache, a new session cookie): the time from navigation to the table showing all N VMs
// (log-in and the browser's renderer start excluded), plus the time of a reload with the cache warm.
// node dist/bench/web.js [--vms 100] [--runs 5]
import './quiet';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium } from 'playwright-core';
import { openStore } from '../api/store';
import { ensureCertBundle, readTlsMaterial } from '../api/pki';
import { SimulatedAgent } from '../agent/drivers/simulated';
import { Heartbeater, nodeDocument, readyStatus, StoreNodeRegistrar } from '../agent/registration';
import { startApi, startControllers } from '../cli/controlplane';
import { FacadeClient } from '../cli/client';
import { Cleanups } from './harness';
import { parseArgs, percentile, round, writeResults } from './util';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'];

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2), { vms: 100, runs: 5 });
  const cleanups = new Cleanups();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-bench-web-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  try {
    const store = await openStore({ backend: 'embedded', dataDir: path.join(dir, 'store') });
    cleanups.push(() => store.close());
    const agent = new SimulatedAgent({ nodeName: 'sim-node', latencies: { fetchBytes: 64 * MiB, fetchMBps: 200 } });
    cleanups.push(() => agent.close());
    const registrar = new StoreNodeRegistrar(store);
    const facts = { nodeName: 'sim-node', address: '10.255.0.1', agentEndpoint: 'sim-node.sim:20181', accelerator: 'kvm' as const, agentVersion: 'simulated', capacity: { cpuMilliCores: 640_000, memoryBytes: 1024 * GiB, storageBytes: 100 * 1024 * GiB } };
    await registrar.register(nodeDocument(facts));
    const beats = new AbortController();
    const hb = new Heartbeater({ registrar, nodeName: 'sim-node', intervalMs: 5000, status: () => readyStatus(facts), node: () => nodeDocument(facts) });
    const beating = hb.run(beats.signal);
    cleanups.push(async () => { beats.abort(); await beating; });
    const stop = new AbortController();
    const controllers = await startControllers({ store, agentFor: () => agent, signal: stop.signal });
    cleanups.push(async () => { stop.abort(); await controllers.manager.stopped.catch(() => undefined); });

    const pki = path.join(dir, 'pki');
    ensureCertBundle(pki, { servers: [{ name: 'facade', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }] });
    const tls = readTlsMaterial(pki, 'facade');
    const token = randomBytes(16).toString('hex');
    const api = await startApi({ store, listen: '127.0.0.1:0', token, tls: { cert: tls.cert, key: tls.key }, consoleListen: '127.0.0.1:0', agents: controllers.agents, defaultWaitMs: 120_000 });
    cleanups.push(() => api.stop());
    const client = new FacadeClient({ endpoint: `127.0.0.1:${api.facade.port}`, token, ca: path.join(pki, 'ca.crt'), sources: { endpoint: 'bench' } }, 120_000);
    cleanups.push(() => client.close());

    const setupT = Date.now();
    await client.call('NetworkService', 'ApplyNetwork', { name: 'net', ipv4_cidr: '10.0.0.0/16' });
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < opts.vms) {
        const j = next++;
        await client.call('BlockStorageService', 'CreateBlockStorage', { name: `disk-${j}`, request_bytes: GiB, limit_bytes: GiB });
        await client.call('VirtualMachineService', 'CreateVirtualMachine', {
          name: `vm-${String(j).padStart(3, '0')}`, request_cpu_milli_core: 100, limit_cpu_milli_core: 1000, request_memory_bytes: 256 * MiB, limit_memory_bytes: 256 * MiB,
          block_storage_names: [`disk-${j}`], nics: [{ network_name: 'net' }],
        });
      }
    }));
    process.stderr.write(`setup: ${opts.vms} running VMs in ${((Date.now() - setupT) / 1000).toFixed(1)} s\n`);

    const base = `https://127.0.0.1:${api.consoles!.listenPort}`;
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
    cleanups.push(() => browser.close());
    const cold: number[] = [];
    const warm: number[] = [];
    let transferred = 0;
    const phases: Record<string, number[]> = {};
    for (let run = 0; run < opts.runs; run++) {
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      const login = await context.request.post(`${base}/api/v0/session`, { data: { token } });
      if (!login.ok()) throw new Error(`log-in failed: ${login.status()}`);
      const page = await context.newPage();
      // The renderer process starts with the first navigation: start it outside the figure.
      await page.goto('about:blank');
      let bytes = 0;
      page.on('response', (r) => { void r.body().then((b) => { bytes += b.length; }, () => undefined); });
      const rows = `[data-testid="table-virtual_machine"] tbody tr`;
      const load = async () => {
        const t = performance.now();
        await page.goto(`${base}/#/vms`);
        await page.waitForFunction(([sel, n]) => (globalThis as any).document.querySelectorAll(sel).length === n, [rows, opts.vms] as const, { polling: 'raf' });
        return performance.now() - t;
      };
      cold.push(await load());
      // Where the time goes, from the page's own clock (navigation start = 0).
      const marks = await page.evaluate<Record<string, number>>(`(() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const res = (s) => performance.getEntriesByType('resource').find((e) => e.name.includes(s));
        return { html: nav.responseEnd, script: res('/assets/app-')?.responseEnd, session: res('/api/v0/session')?.responseEnd,
          synced: performance.getEntriesByName('n0stack:synced:virtual_machine')[0]?.startTime };
      })()`);
      for (const [k, v] of Object.entries(marks)) (phases[k] ??= []).push(v);
      transferred = bytes;
      warm.push(await load());
      await context.close();
    }
    const result = {
      vms: opts.vms, runs: opts.runs,
      cold_ms: { p50: round(percentile(cold, 50), 1), max: round(Math.max(...cold), 1), all: cold.map((v) => round(v, 1)) },
      warm_ms: { p50: round(percentile(warm, 50), 1), max: round(Math.max(...warm), 1), all: warm.map((v) => round(v, 1)) },
      cold_bytes_transferred: transferred,
      cold_phases_p50_ms: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, round(percentile(v, 50), 1)])),
    };
    process.stdout.write(`VM list with ${opts.vms} VMs: cold load p50 ${result.cold_ms.p50} ms (max ${result.cold_ms.max}), warm reload p50 ${result.warm_ms.p50} ms; ${Math.round(transferred / 1024)} KiB on a cold load; cold p50 phases (ms after navigation): ${JSON.stringify(result.cold_phases_p50_ms)}\n`);
    writeResults('web', result);
  } finally {
    await cleanups.run();
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
