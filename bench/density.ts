// Control-plane density benchmark, after KubeVirt's kwok density test: N simulated nodes
// (agent/drivers/simulated.ts: in-memory disks/networks/VMs with fixed latencies, registered as
// Node documents with heartbeats), the real controllers and the real facade over gRPC, on the
// embedded store or on etcd. M users' worth of VMs are made through the seed's RPCs
// (GenerateBlockStorage from a per-node image, then CreateVirtualMachine with one nic; each
// returns when its status says so). Measured: apply→Running latency per VM, wall time, store
// writes per VM, CPU and peak RSS of this process (facade + controllers + simulated agents +
// client), idle CPU in steady state, and the time to reconcile every VM after a controller
// restart. Baseline in the same run: plain store creates/s of the same number of VM documents.
//   npm run build && npm run bench:density [-- --vms 10000 --store etcd]
import './quiet';
import { spawn } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openStore } from '../api/store';
import type { DeleteOptions, ListOptions, Patch, PatchOptions, Store, UpdateOptions, WatchOptions } from '../api/store/store';
import { startEtcd, type EtcdProcess } from '../api/store/etcd-process';
import type { AnyResource, Kind, VirtualMachine } from '../api/types';
import type { AgentApi, EnsureVmRequest } from '../agent/api';
import { SimulatedAgent } from '../agent/drivers/simulated';
import { Heartbeater, nodeDocument, readyStatus, StoreNodeRegistrar } from '../agent/registration';
import { DEFAULT_WORKERS, startControllers, type RunningControllers } from '../cli/controlplane';
import { histogramQuantile, histogramTotals, loadAverage, parseArgs, percentile, repoRoot, ResourceSampler, round, table, writeResults } from './util';
import { Cleanups, startFacadeClient } from './harness';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

const defaults = {
  nodes: 100,
  vms: 1000,
  /** embedded, etcd, or both (each in its own child process, so RSS figures do not mix). */
  store: 'both',
  /** Concurrent users calling the facade. */
  clients: 32,
  idleSeconds: 30,
  /** Stop starting new VMs after this long; what finished is reported (10-minute rule). */
  budgetSeconds: 200,
  heartbeatMs: 5000,
  /** Reconciles in flight per kind (startControllers' default, as `n0stack up` runs). */
  workers: DEFAULT_WORKERS,
};
type Options = typeof defaults;

/**
 * Counts every write that reaches the store, by kind and operation (write amplification), and
 * the size of what each write sends: the largest document per kind, separately for each tenth of
 * the measured phase (`slot`), so a write whose size grows with the VM count shows.
 */
class CountingStore implements Store {
  readonly writes = new Map<string, number>();
  /** Writes by whose path they are on: the disk's (GenerateBlockStorage) or the VM's (CreateVirtualMachine). */
  readonly paths = new Map<'disk' | 'vm' | 'other', number>();
  /** Node -> the placement counter's revisions as last written: which kind a counter write commits. */
  private readonly counters = new Map<string, Record<string, string>>();
  /** slot -> kind -> largest document written (bytes of JSON). */
  readonly largest = new Map<number, Map<string, number>>();
  slot = -1;
  constructor(private readonly inner: Store) {}
  get backend() { return this.inner.backend; }
  total(): number { let n = 0; for (const v of this.writes.values()) n += v; return n; }
  snapshot(): Record<string, number> { return Object.fromEntries(this.writes); }
  pathTotals(): Record<string, number> { return Object.fromEntries(this.paths); }
  /**
   * The disk's path: its create and status writes up to AVAILABLE, and counter commits of
   * BlockStorage records. The VM's: its create and status, its counter commits, its addresses and
   * its claim of the disk (a BlockStorage write that names the VM).
   */
  private pathOf(kind: string, doc: any): 'disk' | 'vm' | 'other' {
    if (kind === 'BlockStorage') return doc?.status?.in_use_by ? 'vm' : 'disk';
    if (kind === 'VirtualMachine') return 'vm';
    if (kind === 'Node') {
      const revisions: Record<string, string> = doc?.status?.placement?.revisions ?? {};
      const before = this.counters.get(doc?.metadata?.name) ?? {};
      const moved = Object.keys(revisions).filter((k) => revisions[k] !== before[k]);
      if (moved.includes('BlockStorage') && !moved.includes('VirtualMachine')) return 'disk';
      return moved.includes('VirtualMachine') ? 'vm' : 'other';
    }
    // Network status (a NIC's address) and address objects.
    return kind === 'Reservation' || kind === 'Image' ? 'other' : 'vm';
  }
  private count(kind: string, op: string, doc: unknown) {
    const k = `${kind}.${op}`;
    this.writes.set(k, (this.writes.get(k) ?? 0) + 1);
    const path = this.pathOf(kind, doc);
    this.paths.set(path, (this.paths.get(path) ?? 0) + 1);
    if (this.slot < 0) return;
    let sizes = this.largest.get(this.slot);
    if (!sizes) this.largest.set(this.slot, sizes = new Map());
    sizes.set(kind, Math.max(sizes.get(kind) ?? 0, Buffer.byteLength(JSON.stringify(doc))));
  }
  get<K extends Kind>(kind: K, name: string) { return this.inner.get(kind, name); }
  list<K extends Kind>(kind: K, options?: ListOptions) { return this.inner.list(kind, options); }
  create<T extends AnyResource>(doc: T) { this.count(doc.kind, 'create', doc); return this.inner.create(doc); }
  update<T extends AnyResource>(doc: T, options?: UpdateOptions) {
    this.count(doc.kind, options?.subresource === 'status' ? 'updateStatus' : 'update', doc);
    const written = this.inner.update(doc, options);
    if (doc.kind === 'Node') written.then((n: any) => { if (n.status?.placement?.revisions) this.counters.set(n.metadata.name, { ...n.status.placement.revisions }); }, () => undefined);
    return written;
  }
  patch<K extends Kind>(kind: K, name: string, patch: Patch, options?: PatchOptions) { this.count(kind, 'patch', patch); return this.inner.patch(kind, name, patch, options); }
  delete<K extends Kind>(kind: K, name: string, options?: DeleteOptions) { this.count(kind, 'delete', name); return this.inner.delete(kind, name, options); }
  watch<K extends Kind>(kind: K, options?: WatchOptions) { return this.inner.watch(kind, options); }
  close() { return this.inner.close(); }
}

/** Records which VMs reached ensureVm (the last step of a VM reconcile) since reset(). */
class EnsureTracker {
  seen = new Set<string>();
  /** ensureVm calls in all (a VM pass that reaches the agent makes one). */
  calls = 0;
  reset() { this.seen = new Set(); }
  wrap(agent: SimulatedAgent): AgentApi {
    const ensureVm = (req: EnsureVmRequest) => { this.calls++; return agent.ensureVm(req).then((obs) => { this.seen.add(req.name); return obs; }); };
    return new Proxy(agent, { get: (target, prop, receiver) => (prop === 'ensureVm' ? ensureVm : Reflect.get(target, prop, receiver)) });
  }
}

const pad = (i: number) => String(i).padStart(3, '0');
const nodeName = (i: number) => `sim-node-${pad(i)}`;

async function pool<T>(items: T[], concurrency: number, deadline: number, fn: (item: T) => Promise<void>): Promise<number> {
  let next = 0;
  let done = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length && Date.now() < deadline) {
      const item = items[next++];
      await fn(item);
      done++;
    }
  }));
  return done;
}

async function waitUntil(what: string, timeoutMs: number, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function vmDocument(name: string, disk: string, network: string): VirtualMachine {
  return {
    apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name },
    spec: { request_cpu_milli_core: 100, limit_cpu_milli_core: 1000, request_memory_bytes: 256 * MiB, limit_memory_bytes: 256 * MiB, block_storage_names: [disk], nics: [{ network_name: network }], uuid: randomUUID(), run_state: 'RUNNING' },
  } as VirtualMachine;
}

async function runOne(opts: Options, storeKind: 'embedded' | 'etcd') {
  const runT = Date.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-density-'));
  const run = randomBytes(3).toString('hex');
  let etcd: EtcdProcess | undefined;
  const cleanups = new Cleanups();
  try {
    const open = async (name: string) => storeKind === 'etcd'
      ? openStore({ backend: 'etcd', etcdEndpoints: [etcd!.endpoint], prefix: `/${name}-${run}` })
      : openStore({ backend: 'embedded', dataDir: path.join(dir, name) });
    if (storeKind === 'etcd') etcd = await startEtcd({ durable: true });

    // Baseline: the same number of VM documents created straight into a store of the same kind.
    const rawStore = await open('raw');
    for (let i = 0; i < 20; i++) await rawStore.create(vmDocument(`warm-${i}`, 'd', 'n'));
    let rawT = Date.now();
    const rawDone = await pool([...Array(opts.vms).keys()], opts.clients, Infinity, async (j) => { await rawStore.create(vmDocument(`vm-${j}`, `disk-${j}`, 'n')); });
    const rawCreatesPerSec = rawDone / ((Date.now() - rawT) / 1000);
    await rawStore.close();
    rawT = 0;

    const base = await open('n0stack');
    const store = new CountingStore(base);
    cleanups.push(() => base.close());

    // Nodes: Node documents and heartbeats as real agents post them (not counted as VM writes).
    const tracker = new EnsureTracker();
    const agents = new Map<string, AgentApi>();
    const simulated: SimulatedAgent[] = [];
    const registrar = new StoreNodeRegistrar(base);
    const beatsStop = new AbortController();
    // Every simulated node's heartbeater listens on this one signal.
    setMaxListeners(opts.nodes + 10, beatsStop.signal);
    const heartbeaters: Heartbeater[] = [];
    const beating: Promise<void>[] = [];
    cleanups.push(async () => { beatsStop.abort(); await Promise.all(beating); });
    for (let i = 0; i < opts.nodes; i++) {
      const name = nodeName(i);
      const endpoint = `${name}.sim:20181`;
      const agent = new SimulatedAgent({ nodeName: name, latencies: { fetchBytes: 64 * MiB, fetchMBps: 200 } });
      simulated.push(agent);
      agents.set(endpoint, tracker.wrap(agent));
      const facts = { nodeName: name, address: `10.255.${i >> 8}.${i & 255}`, agentEndpoint: endpoint, accelerator: 'kvm' as const, agentVersion: 'simulated', capacity: { cpuMilliCores: 64_000, memoryBytes: 1024 * GiB, storageBytes: 100 * 1024 * GiB } };
      await registrar.register(nodeDocument(facts));
      const hb = new Heartbeater({ registrar, nodeName: name, intervalMs: opts.heartbeatMs, status: () => readyStatus(facts), node: () => nodeDocument(facts) });
      heartbeaters.push(hb);
    }
    cleanups.push(() => simulated.forEach((a) => a.close()));
    // Staggered like real agents, which do not all start in the same millisecond.
    heartbeaters.forEach((hb, i) => beating.push(new Promise((r) => setTimeout(r, (i * opts.heartbeatMs) / opts.nodes)).then(() => hb.run(beatsStop.signal))));

    const agentFor = (endpoint: string): AgentApi => {
      const a = agents.get(endpoint);
      if (!a) throw new Error(`no simulated agent at ${endpoint}`);
      return a;
    };
    let controllersStop = new AbortController();
    let controllers: RunningControllers = await startControllers({ store, agentFor, workers: opts.workers, signal: controllersStop.signal });
    cleanups.push(async () => { controllersStop.abort(); await controllers.manager.stopped.catch(() => undefined); });
    const client = await startFacadeClient(store, cleanups, 600_000);
    const call = (service: string, method: string, req: unknown) => client.call<any>(service, method, req);

    // Setup (timed, not part of the figures): a network, a fetched base disk and an image per node.
    const setupT = Date.now();
    await pool([...Array(opts.nodes).keys()], 16, Infinity, async (i) => {
      const node = nodeName(i);
      await call('NetworkService', 'ApplyNetwork', { name: `net-${pad(i)}`, ipv4_cidr: `10.${i >> 8}.${i & 255}.0/24` });
      await call('BlockStorageService', 'FetchBlockStorage', {
        name: `base-${pad(i)}`, annotations: { 'n0core/provisioning/block_storage/request_node_name': node },
        request_bytes: GiB, limit_bytes: GiB, source_url: 'http://images.example.invalid/base.qcow2',
      });
      await call('ImageService', 'ApplyImage', { name: `image-${pad(i)}` });
      await call('ImageService', 'RegisterBlockStorage', { image_name: `image-${pad(i)}`, block_storage_name: `base-${pad(i)}`, tags: ['latest'] });
    });
    const setupSeconds = (Date.now() - setupT) / 1000;

    // The measured phase.
    const writes0 = store.total();
    const byKind0 = store.snapshot();
    const paths0 = store.pathTotals();
    const reconciles0 = await reconcilesByKind();
    const phase0 = await histogramTotals('n0stack_vm_phase_transition_seconds', { phase: 'Running' });
    const ensureCalls0 = tracker.calls;
    const latencies: number[] = [];
    const generateMs: number[] = [];
    const failures: string[] = [];
    const sampler = new ResourceSampler().start();
    const t0 = Date.now();
    let started0 = 0;
    const created = await pool([...Array(opts.vms).keys()], opts.clients, t0 + opts.budgetSeconds * 1000, async (j) => {
      const i = j % opts.nodes;
      // Which tenth of the VMs is being made: the largest write per tenth shows any growth.
      store.slot = Math.min(9, Math.floor((10 * started0++) / opts.vms));
      const started = Date.now();
      try {
        await call('ImageService', 'GenerateBlockStorage', { image_name: `image-${pad(i)}`, tag: 'latest', block_storage_name: `disk-${j}`, request_bytes: GiB, limit_bytes: GiB });
        generateMs.push(Date.now() - started);
        const vm = await call('VirtualMachineService', 'CreateVirtualMachine', {
          name: `vm-${j}`, request_cpu_milli_core: 100, limit_cpu_milli_core: 1000, request_memory_bytes: 256 * MiB, limit_memory_bytes: 256 * MiB,
          block_storage_names: [`disk-${j}`], nics: [{ network_name: `net-${pad(i)}` }],
        });
        if (vm.state !== 'RUNNING') throw new Error(`vm-${j} is ${vm.state}`);
        latencies.push(Date.now() - started);
      } catch (err) {
        failures.push(`vm-${j}: ${(err as Error).message}`);
      }
    });
    const wallSeconds = (Date.now() - t0) / 1000;
    store.slot = -1;
    const busy = sampler.stop();
    const largestBySlot = [...store.largest.entries()].sort(([a], [b]) => a - b).map(([, sizes]) => Object.fromEntries(sizes));
    const largest = largestBySlot.flatMap((sizes) => Object.entries(sizes)).reduce((m, [kind, n]) => (n > m.bytes ? { kind, bytes: n } : m), { kind: '', bytes: 0 });
    const largestFirst = Math.max(0, ...Object.values(largestBySlot[0] ?? {}));
    const largestLast = Math.max(0, ...Object.values(largestBySlot[largestBySlot.length - 1] ?? {}));
    const vmWrites = store.total() - writes0;
    const byKind = Object.fromEntries(Object.entries(store.snapshot()).map(([k, v]) => [k, v - (byKind0[k] ?? 0)]).filter(([, v]) => (v as number) > 0));
    const byPath = Object.fromEntries(Object.entries(store.pathTotals()).map(([k, v]) => [k, round((v - (paths0[k] ?? 0)) / Math.max(1, created), 2)]));
    const reconciles1 = await reconcilesByKind();
    const reconcilesDuringCreation = Object.fromEntries(Object.entries(reconciles1).map(([k, v]) => [k, { count: v.count - (reconciles0[k]?.count ?? 0), seconds: round(v.sum - (reconciles0[k]?.sum ?? 0), 2) }]));
    const phase1 = await histogramTotals('n0stack_vm_phase_transition_seconds', { phase: 'Running' });
    const ensureVmPerVm = round((tracker.calls - ensureCalls0) / Math.max(1, created), 2);
    const running = latencies.length;
    const onAgents = (await Promise.all(simulated.map((a) => a.observe()))).reduce((n, o) => n + o.vms.length, 0);

    // Steady state: every VM Running; what does the control plane cost when nothing changes?
    const rec0 = await histogramTotals('n0stack_controller_reconcile_duration_seconds');
    const recVm0 = await histogramTotals('n0stack_controller_reconcile_duration_seconds', { kind: 'VirtualMachine' });
    const idleWrites0 = store.total();
    const beats0 = heartbeaters.reduce((n, h) => n + h.beats, 0);
    const idleSampler = new ResourceSampler().start();
    await new Promise((r) => setTimeout(r, opts.idleSeconds * 1000));
    const idle = idleSampler.stop();
    const rec1 = await histogramTotals('n0stack_controller_reconcile_duration_seconds');
    const recVm1 = await histogramTotals('n0stack_controller_reconcile_duration_seconds', { kind: 'VirtualMachine' });
    const idleWrites = store.total() - idleWrites0;
    const idleBeats = heartbeaters.reduce((n, h) => n + h.beats, 0) - beats0;

    // Controller restart: a new manager lists everything and reconciles every VM once.
    controllersStop.abort();
    await controllers.manager.stopped;
    tracker.reset();
    const recVmBefore = await histogramTotals('n0stack_controller_reconcile_duration_seconds', { kind: 'VirtualMachine' });
    const restartT = Date.now();
    controllersStop = new AbortController();
    controllers = await startControllers({ store, agentFor, workers: opts.workers, signal: controllersStop.signal });
    const syncedSeconds = (Date.now() - restartT) / 1000;
    let resyncSeconds = NaN;
    try {
      await waitUntil('every VM to be reconciled after the restart', 300_000, () => tracker.seen.size >= onAgents);
      resyncSeconds = (Date.now() - restartT) / 1000;
    } catch (err) {
      failures.push((err as Error).message);
    }
    const recVmAfter = await histogramTotals('n0stack_controller_reconcile_duration_seconds', { kind: 'VirtualMachine' });

    return {
      store: storeKind, workers: opts.workers, nodes: opts.nodes, vmsRequested: opts.vms, vmsRunning: running, vmsOnAgents: onAgents, failures: failures.slice(0, 20), failureCount: failures.length,
      setupSeconds: round(setupSeconds, 2), wallSeconds: round(wallSeconds, 2), vmsPerSecond: round(running / wallSeconds, 2),
      latencyMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99), max: percentile(latencies, 100) },
      generateMs: { p50: percentile(generateMs, 50), p95: percentile(generateMs, 95) },
      phaseHistogram: { count: phase1.count - phase0.count, meanSeconds: round((phase1.sum - phase0.sum) / Math.max(1, phase1.count - phase0.count), 2), p50BucketSeconds: await histogramQuantile('n0stack_vm_phase_transition_seconds', 0.5, { phase: 'Running' }), p99BucketSeconds: await histogramQuantile('n0stack_vm_phase_transition_seconds', 0.99, { phase: 'Running' }) },
      writesPerVm: round(vmWrites / Math.max(1, created), 2), writesByKind: byKind, writesPerVmByPath: byPath, reconcilesDuringCreation, ensureVmPerVm,
      largestWrite: { ...largest, firstTenthBytes: largestFirst, lastTenthBytes: largestLast, byTenth: largestBySlot },
      busy: { cpuSeconds: round(busy.cpuSeconds, 1), cores: round(busy.cores, 2), peakRssMiB: round(busy.peakRssMiB, 0) },
      idle: { seconds: opts.idleSeconds, cores: round(idle.cores, 3), reconciles: rec1.count - rec0.count, vmReconciles: recVm1.count - recVm0.count, storeWrites: idleWrites, heartbeats: idleBeats, rssMiB: round(process.memoryUsage().rss / MiB, 0) },
      restart: { cacheSyncSeconds: round(syncedSeconds, 2), everyVmReconciledSeconds: round(resyncSeconds, 2), vmReconciles: recVmAfter.count - recVmBefore.count },
      baseline: { rawStoreCreatesPerSec: round(rawCreatesPerSec, 0), controlPlaneVsRaw: round(running / wallSeconds / rawCreatesPerSec, 4) },
      maxRssMiB: round(process.resourceUsage().maxRSS / 1024, 0),
      load: loadAverage(),
      wholeRunSeconds: round((Date.now() - runT) / 1000, 1),
    };
  } finally {
    await cleanups.run();
    await etcd?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Reconciles so far, by kind (count and seconds spent), from the controllers' histogram. */
async function reconcilesByKind(): Promise<Record<string, { count: number; sum: number }>> {
  const kinds = ['VirtualMachine', 'BlockStorage', 'Node', 'Network', 'Image'];
  return Object.fromEntries(await Promise.all(kinds.map(async (kind) => [kind, await histogramTotals('n0stack_controller_reconcile_duration_seconds', { kind })] as const)));
}

type Result = Awaited<ReturnType<typeof runOne>>;

function report(results: Result[]): string {
  const r0 = results[0];
  const lines = [`density: ${r0.nodes} simulated nodes, ${r0.vmsRequested} VMs (each: GenerateBlockStorage + CreateVirtualMachine with one nic), ${r0.workers} workers per kind, ${defaultsNote}`, ''];
  lines.push(table(
    ['store', 'VMs Running', 'wall s', 'VMs/s', 'p50 ms', 'p95 ms', 'p99 ms', 'writes/VM', 'CPU cores busy', 'peak RSS MiB', 'raw store creates/s (baseline)', 'VMs/s vs raw creates/s', 'load'],
    results.map((r) => [r.store, `${r.vmsRunning}/${r.vmsRequested}`, r.wallSeconds, r.vmsPerSecond, r.latencyMs.p50, r.latencyMs.p95, r.latencyMs.p99, r.writesPerVm, r.busy.cores, r.busy.peakRssMiB, r.baseline.rawStoreCreatesPerSec, `${r.baseline.controlPlaneVsRaw}x`, r.load]),
  ));
  lines.push('');
  lines.push(table(
    ['store', 'idle CPU (cores, 30 s)', 'idle reconciles/s', 'idle VM reconciles/s', 'idle store writes/s', 'heartbeats/s', 'restart: caches synced s', 'restart: every VM reconciled s', 'creation→Running histogram mean s (count)'],
    results.map((r) => [r.store, r.idle.cores, round(r.idle.reconciles / r.idle.seconds, 1), round(r.idle.vmReconciles / r.idle.seconds, 1), round(r.idle.storeWrites / r.idle.seconds, 1), round(r.idle.heartbeats / r.idle.seconds, 1), r.restart.cacheSyncSeconds, r.restart.everyVmReconciledSeconds, `${r.phaseHistogram.meanSeconds} (${r.phaseHistogram.count})`]),
  ));
  lines.push('', 'goals (issue [M]): each figure with its goal', '');
  lines.push(table(
    ['store', 'VMs/s', 'goal', 'writes/VM (VM + its disk)', 'goal', 'of which the VM\'s path', 'of which its disk\'s', 'largest write (kind)', 'largest, first vs last tenth of the VMs', 'goal', 'whole run s', 'goal'],
    results.map((r) => [
      r.store, r.vmsPerSecond, r.store === 'etcd' ? '>= 60 (at 10,000 VMs)' : '>= 88 (no regression)',
      r.writesPerVm, '<= 6', r.writesPerVmByPath?.vm ?? '-', r.writesPerVmByPath?.disk ?? '-',
      `${r.largestWrite.bytes} B (${r.largestWrite.kind})`, `${r.largestWrite.firstTenthBytes} / ${r.largestWrite.lastTenthBytes} B`, 'no growth with VM count',
      r.wholeRunSeconds, r.vmsRequested >= 10_000 ? '<= 600' : '-',
    ]),
  ));
  for (const r of results) {
    lines.push('', `${r.store}: writes by kind.op during creation: ${Object.entries(r.writesByKind).map(([k, v]) => `${k}=${v}`).join(' ')}`);
    lines.push(`${r.store}: writes per VM by path: ${Object.entries(r.writesPerVmByPath ?? {}).map(([k, v]) => `${k}=${v}`).join(' ')}; reconciles during creation (count, busy s): ${Object.entries(r.reconcilesDuringCreation ?? {}).map(([k, v]) => `${k}=${v.count} (${v.seconds} s)`).join(' ')}; agent ensureVm calls per VM (a pass that reaches the agent makes one): ${r.ensureVmPerVm}`);
    if (r.failureCount) lines.push(`${r.store}: ${r.failureCount} failures, e.g. ${r.failures.slice(0, 3).join(' | ')}`);
  }
  return lines.join('\n');
}

const defaultsNote = 'simulated ensureVm 50 ms, overlay 20 ms; durable stores (lmdb flushed, etcd fsync)';

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2), defaults);
  const name = `density-${opts.vms}`;
  if (opts.store === 'both') {
    // One child per store: separate processes, so peak RSS and CPU belong to one control plane.
    const results: Result[] = [];
    for (const storeKind of ['embedded', 'etcd']) {
      const argv = [...process.argv.slice(2).filter((_, i, a) => a[i] !== '--store' && a[i - 1] !== '--store'), '--store', storeKind];
      const code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn(process.execPath, [__filename, ...argv], { stdio: 'inherit' });
        child.once('error', reject);
        child.once('exit', resolve);
      });
      if (code !== 0) throw new Error(`density run on ${storeKind} exited with ${code}`);
      results.push(JSON.parse(fs.readFileSync(path.join(repoRoot(), 'bench', 'results', `${name}-${storeKind}.json`), 'utf8')).result);
    }
    process.stdout.write(`\n${report(results)}\n`);
    writeResults(name, { options: opts, results });
    return;
  }
  if (opts.store !== 'embedded' && opts.store !== 'etcd') throw new Error(`--store must be embedded, etcd or both, got ${opts.store}`);
  const result = await runOne(opts, opts.store);
  process.stdout.write(`${report([result])}\n`);
  writeResults(`${name}-${opts.store}`, { options: opts, result });
}

main().then(() => process.exit(), (err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
