// Disk benchmark with the real agent (HostAgent with its real drivers, in this process, reached
// by the controllers directly rather than over gRPC) behind the real controllers and facade:
//  - GenerateBlockStorage (copy-on-write overlay) from a 100 MiB and from a 10 GiB base: must be
//    flat; beside it a bare `qemu-img create -b` and a full `qemu-img convert` copy of each base;
//  - FetchBlockStorage from a loopback HTTP server, next to the agent's fetch driver alone and
//    `curl -o` of the same file (and curl followed by an fsync), in the same run, the order of the
//    four turned each round; goal >= 0.9x curl -o. The fetch inside each RPC is timed where the
//    agent calls it, so the control plane's part (the RPC less that) is printed beside it.
// Options: --repeats N (rounds; medians are printed).
// The bases are honest: the 100 MiB one is fully written; the 10 GiB one is a sparse raw file
// with 256 MiB of data written in 16 MiB pieces spread over its whole length, converted to qcow2
// (so a full copy has 256 MiB to move and 10 GiB of address space to walk).
//   npm run build && npm run bench:disk
import './quiet';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { openStore } from '../api/store';
import { run } from '../agent/exec';
import { createHostDrivers } from '../agent/main';
import { HostAgent } from '../agent/service';
import { HttpFetchDriver } from '../agent/drivers/fetch';
import { fsyncFile } from '../agent/drivers/fsutil';
import { QemuImgDriver } from '../agent/drivers/qemuimg';
import { Heartbeater, hostCapacity, nodeDocument, readyStatus, StoreNodeRegistrar } from '../agent/registration';
import { startControllers } from '../cli/controlplane';
import { loadAverage, parseArgs, percentile, round, table, writeResults } from './util';
import { Cleanups, startFacadeClient } from './harness';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const defaults = { repeats: 5 };
const FETCH_GOAL = 0.9;

async function timed<T>(fn: () => Promise<T>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** A raw file of `size` bytes with `pieces` × `pieceBytes` of random data spread evenly over it. */
function writeSpreadRaw(file: string, size: number, pieces: number, pieceBytes: number): number {
  const fd = fs.openSync(file, 'w');
  try {
    fs.ftruncateSync(fd, size);
    const chunk = randomBytes(pieceBytes);
    const stride = Math.floor(size / pieces);
    for (let i = 0; i < pieces; i++) fs.writeSync(fd, chunk, 0, pieceBytes, i * stride);
  } finally {
    fs.closeSync(fd);
  }
  return pieces * pieceBytes;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2), defaults);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-bench-disk-'));
  const cleanups = new Cleanups();
  try {
    // The two bases.
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    const bases = [
      { key: '100m', virtual: 100 * MiB, data: writeSpreadRaw(path.join(src, 'raw100m'), 100 * MiB, 1, 100 * MiB) },
      { key: '10g', virtual: 10 * GiB, data: writeSpreadRaw(path.join(src, 'raw10g'), 10 * GiB, 16, 16 * MiB) },
    ];
    for (const b of bases) {
      await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', path.join(src, `raw${b.key}`), path.join(src, `base${b.key}.qcow2`)], { timeoutMs: 300_000 });
      fs.rmSync(path.join(src, `raw${b.key}`));
    }
    const fileSize = (key: string) => fs.statSync(path.join(src, `base${key}.qcow2`)).size;

    // The file server runs in a process of its own, as curl's does: in this one it shared the event
    // loop with the agent it was serving (and the facade and controllers), which curl never had to.
    const serverScript = `
      const fs = require('node:fs'), http = require('node:http'), path = require('node:path');
      const server = http.createServer((req, res) => {
        const m = /^\\/base(100m|10g)\\.qcow2$/.exec(req.url ?? '');
        if (!m) { res.writeHead(404).end(); return; }
        const file = path.join(process.argv[1], 'base' + m[1] + '.qcow2');
        res.writeHead(200, { 'Content-Length': fs.statSync(file).size, 'Content-Type': 'application/octet-stream' });
        fs.createReadStream(file).pipe(res);
      });
      server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));`;
    const server = spawn(process.execPath, ['-e', serverScript, src], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(() => server.kill());
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.once('exit', (code) => reject(new Error(`the file server exited with ${code}`)));
      server.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
    });
    const url = (key: string) => `http://127.0.0.1:${port}/base${key}.qcow2`;

    // Baselines outside the control plane: curl, the fetch driver alone, qemu-img create -b / convert.
    const rows: Record<string, Record<string, number>> = {};
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    const disk = new QemuImgDriver();
    const fetcher = new HttpFetchDriver({ disk });
    for (const b of bases) {
      const r: Record<string, number> = (rows[b.key] = { fileMiB: round(fileSize(b.key) / MiB, 1), dataMiB: b.data / MiB });
      const overlay: number[] = [];
      for (let k = 0; k < opts.repeats; k++) {
        overlay.push(await timed(() => disk.createOverlay(path.join(out, `ov${b.key}-${k}.qcow2`), path.join(src, `base${b.key}.qcow2`), b.virtual)));
      }
      r.qemuImgOverlayMs = percentile(overlay, 50);
      r.qemuImgConvertMs = await timed(() => run('qemu-img', ['convert', '-O', 'qcow2', path.join(src, `base${b.key}.qcow2`), path.join(out, `copy${b.key}.qcow2`)], { timeoutMs: 600_000 }));
      for (const f of fs.readdirSync(out)) fs.rmSync(path.join(out, f), { force: true });
    }

    // The control plane with the real agent.
    const store = await openStore({ backend: 'embedded', dataDir: path.join(dir, 'store') });
    cleanups.push(() => store.close());
    const dataDir = path.join(dir, 'node');
    fs.mkdirSync(dataDir);
    const drivers = createHostDrivers({ dataDir });
    // The fetch inside each RPC, timed where the agent calls it: the rest of the RPC is the
    // control plane's (facade write and watch, reconcile, placement and status writes, the held call).
    const inRpc: number[] = [];
    const fetchDriver = drivers.fetch;
    drivers.fetch = { fetch: async (...args: Parameters<typeof fetchDriver.fetch>) => {
      const t = process.hrtime.bigint();
      try { return await fetchDriver.fetch(...args); } finally { inRpc.push(Number(process.hrtime.bigint() - t) / 1e6); }
    } };
    const agent = new HostAgent({ nodeName: 'bench-node', dataDir, drivers });
    cleanups.push(() => agent.close());
    const facts = { nodeName: 'bench-node', address: '127.0.0.1', agentEndpoint: 'in-process:1', accelerator: await agent.accelerator(), agentVersion: 'bench', capacity: hostCapacity(dataDir) };
    const registrar = new StoreNodeRegistrar(store);
    await registrar.register(nodeDocument(facts));
    const beats = new AbortController();
    const beating = new Heartbeater({ registrar, nodeName: 'bench-node', intervalMs: 2000, status: () => readyStatus(facts) }).run(beats.signal);
    cleanups.push(async () => { beats.abort(); await beating; });
    const stop = new AbortController();
    const controllers = await startControllers({ store, agentFor: () => agent, signal: stop.signal });
    cleanups.push(async () => { stop.abort(); await controllers.manager.stopped.catch(() => undefined); });
    const client = await startFacadeClient(store, cleanups, 600_000);
    const call = (service: string, method: string, req: unknown) => client.call<any>(service, method, req);

    // Fetches: curl, curl + fsync, the driver alone and the RPC in turn, `repeats` times, medians
    // (one sample each was at the mercy of whatever else ran on the machine at that moment).
    for (const b of bases) {
      const r = rows[b.key];
      const samples: Record<'curl' | 'curlSync' | 'driver' | 'rpc' | 'controlPlane', number[]> = { curl: [], curlSync: [], driver: [], rpc: [], controlPlane: [] };
      for (let k = 0; k < opts.repeats; k++) {
        const curl = () => run('curl', ['-sS', '--fail', '-o', path.join(out, `curl${b.key}-${k}`), url(b.key)], { timeoutMs: 300_000 });
        const name = k === 0 ? `base-${b.key}` : `fetched-${b.key}-${k}`;
        const steps: (() => Promise<void>)[] = [
          async () => { samples.curl.push(await timed(curl)); },
          async () => { samples.curlSync.push(await timed(async () => { await curl(); await fsyncFile(path.join(out, `curl${b.key}-${k}`)); })); },
          async () => { samples.driver.push(await timed(() => fetcher.fetch(url(b.key), path.join(out, `fetch${b.key}-${k}.qcow2`), { virtualSizeBytes: b.virtual }))); },
          async () => {
            inRpc.length = 0;
            samples.rpc.push(await timed(() => call('BlockStorageService', 'FetchBlockStorage', { name, request_bytes: MiB, limit_bytes: b.virtual, source_url: url(b.key) })));
            if (inRpc.length !== 1) throw new Error(`the agent fetched ${inRpc.length} times for one FetchBlockStorage`);
            samples.controlPlane.push(samples.rpc[samples.rpc.length - 1] - inRpc[0]);
          },
        ];
        // The order turns each round, so none of the four always runs after the same other one
        // (after a synced one the disk is idle; after curl -o it is still writing curl's file back).
        for (let i = 0; i < steps.length; i++) await steps[(i + k) % steps.length]();
        for (const f of fs.readdirSync(out)) fs.rmSync(path.join(out, f), { force: true });
      }
      r.curlMs = percentile(samples.curl, 50);
      r.curlSyncMs = percentile(samples.curlSync, 50);
      r.fetchDriverMs = percentile(samples.driver, 50);
      r.fetchRpcMs = percentile(samples.rpc, 50);
      r.controlPlaneMs = percentile(samples.controlPlane, 50);
    }
    for (const b of bases) {
      const r = rows[b.key];
      await call('ImageService', 'ApplyImage', { name: `image-${b.key}` });
      await call('ImageService', 'RegisterBlockStorage', { image_name: `image-${b.key}`, block_storage_name: `base-${b.key}`, tags: ['latest'] });
      const gen: number[] = [];
      for (let k = 0; k < opts.repeats; k++) {
        gen.push(await timed(() => call('ImageService', 'GenerateBlockStorage', { image_name: `image-${b.key}`, tag: 'latest', block_storage_name: `gen-${b.key}-${k}`, request_bytes: MiB, limit_bytes: b.virtual })));
      }
      r.generateRpcMs = percentile(gen, 50);
      r.generateRpcMaxMs = percentile(gen, 100);
      const generated = await call('BlockStorageService', 'GetBlockStorage', { name: `gen-${b.key}-0` });
      if (generated.backing_block_storage !== `base-${b.key}`) throw new Error(`gen-${b.key}-0 is not an overlay on base-${b.key}`);
      r.copyRpcMs = await timed(() => call('BlockStorageService', 'CopyBlockStorage', { name: `copy-${b.key}`, request_bytes: MiB, limit_bytes: b.virtual, source_block_storage: `gen-${b.key}-0` }));
    }

    const mbps = (mib: number, ms: number) => round(mib / (ms / 1000), 0);
    const lines = [`disk benchmark: real agent (qemu-img, http fetch) behind controllers + facade on the embedded store; median of ${opts.repeats} for overlays; load ${loadAverage()}`, ''];
    lines.push(table(
      ['base', 'virtual', 'data written', 'GenerateBlockStorage RPC ms (p50 / max)', 'bare qemu-img create -b ms', 'full qemu-img convert ms', 'CopyBlockStorage RPC ms', 'convert / generate'],
      bases.map((b) => { const r = rows[b.key]; return [b.key, b.key === '10g' ? '10 GiB' : '100 MiB', `${r.dataMiB} MiB`, `${round(r.generateRpcMs, 0)} / ${round(r.generateRpcMaxMs, 0)}`, round(r.qemuImgOverlayMs, 0), round(r.qemuImgConvertMs, 0), round(r.copyRpcMs, 0), `${round(r.qemuImgConvertMs / r.generateRpcMs, 1)}x`]; }),
    ));
    lines.push('', table(
      ['file', 'size MiB', 'FetchBlockStorage RPC MB/s (ms)', 'of which control plane ms', 'fetch driver alone MB/s (ms)', 'curl -o MB/s (ms, baseline)', 'curl -o + fsync MB/s (ms)', 'RPC vs curl -o', 'goal', 'met', 'RPC vs curl -o + fsync', 'driver vs curl -o'],
      bases.map((b) => {
        const r = rows[b.key];
        r.rpcVsCurl = r.curlMs / r.fetchRpcMs;
        return [`base${b.key}.qcow2`, r.fileMiB, `${mbps(r.fileMiB, r.fetchRpcMs)} (${round(r.fetchRpcMs, 0)})`, round(r.controlPlaneMs, 0), `${mbps(r.fileMiB, r.fetchDriverMs)} (${round(r.fetchDriverMs, 0)})`,
          `${mbps(r.fileMiB, r.curlMs)} (${round(r.curlMs, 0)})`, `${mbps(r.fileMiB, r.curlSyncMs)} (${round(r.curlSyncMs, 0)})`,
          `${round(r.rpcVsCurl, 2)}x`, `>= ${FETCH_GOAL}x`, r.rpcVsCurl >= FETCH_GOAL ? 'yes' : 'no', `${round(r.curlSyncMs / r.fetchRpcMs, 2)}x`, `${round(r.curlMs / r.fetchDriverMs, 2)}x`];
      }),
    ));
    lines.push('', `MB/s here is MiB/s of the qcow2 file moved; medians of ${opts.repeats}. The fetch syncs the file before it is published (curl -o does not; the + fsync column does). The RPC includes the controller learning of completion (the agent answers the call that is open when the fetch ends).`);
    process.stdout.write(`${lines.join('\n')}\n`);
    writeResults('disk', { options: opts, rows });
  } finally {
    await cleanups.run();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(), (err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
