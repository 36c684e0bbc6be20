// Real-VM latency: a real agent (runAgent: HostAgent with its real drivers behind gRPC + mTLS, QEMU
// started inside a test network namespace) behind the real controllers and facade on the
// embedded store. 20 VMs (1 vCPU, 128 MiB, a copy-on-write disk of the test boot disk, a
// cloud-init seed ISO, written by the agent in-process) are created 100 ms apart on one node; measured per VM: create → QEMU
// running (its QMP answers), split into the agent's own work (timestamps around the cloud-init
// ISO and around QEMU's start, taken inside the agent's drivers) and the control plane (the rest:
// facade write, watch, queue, reconcile steps, gRPC hops). Physical baseline in the same run: the
// same QEMU command lines (read from each VM's spec.json), started bare 100 ms apart, spawn → QMP
// answers. Everything is deleted at the end, also on failure.
//   npm run build && npm run bench:vm
import './quiet';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { openStore } from '../api/store';
import { mutate } from '../api/store/mutate';
import { createCa, issueClientCert, issueServerCert } from '../api/pki';
import { run } from '../agent/exec';
import { runAgent, type RunningAgent } from '../agent/main';
import { NoCloudDriver } from '../agent/drivers/cloudinit';
import { QemuDriver, RUN_FILES } from '../agent/drivers/qemu';
import { withQmp } from '../agent/drivers/qmp';
import type { CloudInitDriver, VmDriver } from '../agent/drivers/types';
import { AgentPaths } from '../agent/paths';
import { StoreNodeRegistrar } from '../agent/registration';
import { DEFAULT_WORKERS, startControllers } from '../cli/controlplane';
import { NetnsLab } from '../e2e/netns';
import { histogramTotals, loadAverage, parseArgs, percentile, round, table, writeResults } from './util';
import { Cleanups, startFacadeClient } from './harness';

const MiB = 2 ** 20;
const defaults = { vms: 20, intervalMs: 100, memoryMib: 128, solo: 3, workers: DEFAULT_WORKERS };
/** Goals of issue 17: the control plane's part for one VM on an idle node, and the burst against bare QEMU. */
const SOLO_CONTROL_PLANE_GOAL_MS = 100;
const BURST_VS_BARE_GOAL = 1.3;

interface Stamps { agentEnter?: number; isoStart?: number; isoEnd?: number; qemuStart?: number; qemuEnd?: number }

/** The agent's VM and cloud-init drivers with timestamps around the calls that matter. */
function instrument(vm: VmDriver, cloudInit: CloudInitDriver, stamps: Map<string, Stamps>): { vm: VmDriver; cloudInit: CloudInitDriver } {
  const of = (name: string) => { let s = stamps.get(name); if (!s) stamps.set(name, (s = {})); return s; };
  return {
    vm: new Proxy(vm, {
      get: (target, prop, receiver) => {
        // The agent's EnsureVm looks at the VM's state first: the moment the control plane's call arrived.
        if (prop === 'state') return (name: string) => { of(name).agentEnter ??= Date.now(); return target.state(name); };
        if (prop !== 'start') return Reflect.get(target, prop, receiver);
        return async (spec: Parameters<VmDriver['start']>[0]) => {
        of(spec.name).qemuStart = Date.now();
        const state = await target.start(spec);
        of(spec.name).qemuEnd = Date.now();
        return state;
        };
      },
    }),
    cloudInit: {
      async buildSeedIso(file, spec) {
        of(spec.hostname).isoStart = Date.now();
        await cloudInit.buildSeedIso(file, spec);
        of(spec.hostname).isoEnd = Date.now();
      },
    },
  };
}

async function bootDisk(dir: string): Promise<{ file: string; what: string }> {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { buildTestBootDisk } = require('../agent/drivers/testing/bootdisk') as typeof import('../agent/drivers/testing/bootdisk');
    return { file: await buildTestBootDisk(), what: 'the test boot disk (busybox guest)' };
  } catch (err) {
    const file = path.join(dir, 'empty.qcow2');
    await run('qemu-img', ['create', '-f', 'qcow2', file, '64M']);
    return { file, what: `an empty 64 MiB qcow2 (test boot disk unavailable: ${(err as Error).message.slice(0, 120)})` };
  }
}

async function waitQmp(socket: string, deadline: number): Promise<void> {
  for (;;) {
    if (fs.existsSync(socket)) {
      const ok = await withQmp(socket, (q) => q.execute('query-status'), { timeoutMs: 2000, commandTimeoutMs: 2000 }).then(() => true, () => false);
      if (ok) return;
    }
    if (Date.now() > deadline) throw new Error(`QMP at ${socket} did not answer in time`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2), defaults);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-bench-vm-'));
  const lab = new NetnsLab();
  const cleanups = new Cleanups();
  const bare = new Set<number>();
  let agent: RunningAgent | undefined;
  // Stopped first on the way out, so no reconcile starts a QEMU after the clean-up listed them.
  const stopControllers = new AbortController();
  let controllersStopped: Promise<void> = Promise.resolve();
  try {
    const disk = await bootDisk(dir);
    const server = http.createServer((req, res) => {
      if (req.url !== '/boot.qcow2') { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'Content-Length': fs.statSync(disk.file).size });
      fs.createReadStream(disk.file).pipe(res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => { server.closeAllConnections(); server.close(r); }));

    const ca = createCa({ commonName: 'n0stack bench CA' });
    // Controllers accept an agent only with a certificate naming its Node.
    const serverCert = issueServerCert(ca, { commonName: 'bench-host', dnsNames: ['bench-host', 'localhost'], ipAddresses: ['127.0.0.1'] });
    const clientCert = issueClientCert(ca, { commonName: 'controllers' });
    const rawStore = await openStore({ backend: 'embedded', dataDir: path.join(dir, 'store') });
    cleanups.push(() => rawStore.close());
    // Every write of the facade and the controllers, timed (each is a durable commit): in the
    // burst they are most of the control plane's part.
    const writes: { kind: string; ms: number; at: number; failed: boolean }[] = [];
    const store = new Proxy(rawStore, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver);
        if (!['create', 'update', 'patch', 'delete'].includes(String(prop))) return typeof value === 'function' ? value.bind(target) : value;
        return async (...args: unknown[]) => {
          const at = Date.now();
          const kind = String(prop === 'create' || prop === 'update' ? (args[0] as { kind: string }).kind : args[0]);
          try {
            const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
            writes.push({ kind, ms: Date.now() - at, at, failed: false });
            return result;
          } catch (err) {
            writes.push({ kind, ms: Date.now() - at, at, failed: true });
            throw err;
          }
        };
      },
    });
    const netns = await lab.create();
    const dataDir = path.join(dir, 'node');
    const paths = new AgentPaths(dataDir);
    const stamps = new Map<string, Stamps>();
    const drivers = instrument(new QemuDriver({ paths, netns }), new NoCloudDriver(), stamps);
    const stopAgent = new AbortController();
    agent = await runAgent({
      listen: '127.0.0.1:0', dataDir, nodeName: 'bench-host', address: '127.0.0.1', netns, metricsListen: '127.0.0.1:0',
      tls: { ca: ca.certPem, cert: serverCert.certPem, key: serverCert.keyPem },
      registrar: new StoreNodeRegistrar(store), heartbeatIntervalMs: 2000, drivers, signal: stopAgent.signal,
    });
    const running = agent;
    cleanups.push(async () => { stopAgent.abort(); await running.done; });
    // The Node says what the host has: 2 cores here, and the scheduler's 4x overcommit of CPU
    // limits would fit only 8 one-vCPU VMs. An admin's capacity override lets the 20 in.
    await mutate(store, 'Node', 'bench-host', (n) => { n.spec.cpu_milli_cores = Math.max(n.spec.cpu_milli_cores ?? 0, opts.vms * 1000); });
    const controllers = await startControllers({ store, workers: opts.workers, agentTls: { ca: ca.certPem, cert: clientCert.certPem, key: clientCert.keyPem }, signal: stopControllers.signal });
    controllersStopped = controllers.manager.stopped.catch(() => undefined);
    const client = await startFacadeClient(store, cleanups, 300_000);
    const call = (service: string, method: string, req: unknown) => client.call<any>(service, method, req);

    // Disks first (not measured): the boot disk as an image, one overlay per VM.
    const deadline = Date.now() + 60_000;
    while ((await call('NodeService', 'GetNode', { name: 'bench-host' }).catch(() => undefined))?.state !== 'Ready') {
      if (Date.now() > deadline) throw new Error('node bench-host did not become Ready within 60 s');
      await new Promise((r) => setTimeout(r, 200));
    }
    const size = (await run('qemu-img', ['info', '--output=json', disk.file])).stdout;
    const limit = Math.max(JSON.parse(size)['virtual-size'] as number, 64 * MiB);
    await call('BlockStorageService', 'FetchBlockStorage', { name: 'boot', request_bytes: MiB, limit_bytes: limit, source_url: `http://127.0.0.1:${(server.address() as { port: number }).port}/boot.qcow2` });
    await call('ImageService', 'ApplyImage', { name: 'boot' });
    await call('ImageService', 'RegisterBlockStorage', { image_name: 'boot', block_storage_name: 'boot', tags: ['latest'] });
    const names = Array.from({ length: opts.vms }, (_, i) => `lat-${String(i).padStart(2, '0')}`);
    const soloNames = Array.from({ length: opts.solo }, (_, i) => `solo-${i}`);
    for (const name of [...soloNames, ...names]) await call('ImageService', 'GenerateBlockStorage', { image_name: 'boot', tag: 'latest', block_storage_name: `${name}-disk`, request_bytes: MiB, limit_bytes: limit });
    const create = (name: string) => call('VirtualMachineService', 'CreateVirtualMachine', {
      name, request_cpu_milli_core: 100, limit_cpu_milli_core: 1000, request_memory_bytes: opts.memoryMib * MiB, limit_memory_bytes: opts.memoryMib * MiB,
      block_storage_names: [`${name}-disk`], login_username: 'bench',
    });
    const created = new Map<string, number>();
    const replied = new Map<string, number>();
    const breakdown = (name: string) => {
      const s = stamps.get(name) ?? {};
      const t0 = created.get(name)!;
      const total = (s.qemuEnd ?? NaN) - t0;
      const qemu = (s.qemuEnd ?? NaN) - (s.qemuStart ?? NaN);
      const iso = (s.isoEnd ?? NaN) - (s.isoStart ?? NaN);
      return { name, createToQemuMs: total, qemuStartMs: qemu, isoMs: iso, controlPlaneMs: total - qemu - iso, toAgentMs: (s.agentEnter ?? NaN) - t0, replyAfterQemuMs: replied.get(name)! - (s.qemuEnd ?? NaN), createToReplyMs: replied.get(name)! - t0 };
    };

    // One VM at a time on the otherwise idle node, each deleted (its guest stopped) before the next.
    for (const name of soloNames) {
      created.set(name, Date.now());
      const vm = await create(name);
      if (vm.state !== 'RUNNING') throw new Error(`${name} is ${vm.state}`);
      replied.set(name, Date.now());
      await call('VirtualMachineService', 'DeleteVirtualMachine', { name });
      await new Promise((r) => setTimeout(r, 500));
    }
    const solo = soloNames.map(breakdown);

    // The measured burst: one create every intervalMs, not waiting for the previous one.
    const facade0 = await histogramTotals('n0stack_facade_rpc_duration_seconds', { method: 'VirtualMachineService/CreateVirtualMachine' });
    const calls: Promise<void>[] = [];
    const burstFrom = Date.now();
    for (const name of names) {
      created.set(name, Date.now());
      calls.push(create(name).then((vm) => {
        if (vm.state !== 'RUNNING') throw new Error(`${name} is ${vm.state}`);
        replied.set(name, Date.now());
      }));
      await new Promise((r) => setTimeout(r, opts.intervalMs));
    }
    await Promise.all(calls);
    const burstWrites = writes.filter((w) => w.at >= burstFrom && w.kind !== 'Event');
    const facade1 = await histogramTotals('n0stack_facade_rpc_duration_seconds', { method: 'VirtualMachineService/CreateVirtualMachine' });
    const metricsText = await new Promise<string>((resolve, reject) => {
      http.get(`http://127.0.0.1:${running.metricsPort}/metrics`, (res) => { let t = ''; res.on('data', (c) => { t += c; }); res.on('end', () => resolve(t)); }).on('error', reject);
    });
    const scrape = (series: string) => Number(new RegExp(`^${series} ([0-9.e+-]+)$`, 'm').exec(metricsText)?.[1] ?? NaN);
    const ensureCount = scrape('n0stack_agent_rpc_duration_seconds_count\\{method="EnsureVm",code="OK"\\}');
    const ensureSum = scrape('n0stack_agent_rpc_duration_seconds_sum\\{method="EnsureVm",code="OK"\\}');

    const per = names.map(breakdown);

    // Physical baseline: the same command lines, bare, 100 ms apart, each until its QMP answers.
    const argvs = names.map((name) => {
      const vmDir = paths.vmDir(name);
      const stored = JSON.parse(fs.readFileSync(path.join(vmDir, RUN_FILES.spec), 'utf8')) as { args: string[] };
      const bareDir = path.join(dir, 'bare', name);
      fs.mkdirSync(bareDir, { recursive: true });
      fs.copyFileSync(path.join(vmDir, 'seed.iso'), path.join(bareDir, 'seed.iso'));
      return { bareDir, args: stored.args.map((a) => a.split(vmDir).join(bareDir)) };
    });
    for (const name of names) await call('VirtualMachineService', 'DeleteVirtualMachine', { name });
    const bareMs: number[] = [];
    const starts: Promise<void>[] = [];
    for (const { bareDir, args } of argvs) {
      const t0 = Date.now();
      const child = spawn('ip', ['netns', 'exec', netns, 'qemu-system-x86_64', ...args], { stdio: 'ignore', cwd: bareDir });
      if (child.pid) bare.add(child.pid);
      starts.push(waitQmp(path.join(bareDir, RUN_FILES.qmp), t0 + 120_000).then(() => { bareMs.push(Date.now() - t0); }));
      await new Promise((r) => setTimeout(r, opts.intervalMs));
    }
    await Promise.all(starts);

    type Row = (typeof per)[number];
    const col = (k: keyof Row, rows: Row[] = per) => rows.map((p) => p[k] as number);
    const p = (k: keyof Row, q: number, rows: Row[] = per) => round(percentile(col(k, rows), q), 0);
    const acc = agent.accelerator;
    const soloControlPlane = percentile(col('controlPlaneMs', solo), 50);
    const burstVsBare = percentile(col('createToQemuMs'), 50) / percentile(bareMs, 50);
    const lines = [`vm-latency: ${opts.solo} VMs one at a time, then ${opts.vms} VMs created ${opts.intervalMs} ms apart, on one node (${acc}), ${opts.workers} workers per kind, ${opts.memoryMib} MiB, 1 vCPU, disk: ${disk.what}; load ${loadAverage()}`, ''];
    lines.push(table(['one VM at a time on an idle node', 'p50 ms', 'max ms'], [
      ['create → QEMU running (QMP answers), through n0stack', p('createToQemuMs', 50, solo), p('createToQemuMs', 100, solo)],
      ['  of which control plane (facade, store, queue, reconcile, gRPC, agent bookkeeping)', p('controlPlaneMs', 50, solo), p('controlPlaneMs', 100, solo)],
      ['    of which create → the agent EnsureVm begins', p('toAgentMs', 50, solo), p('toAgentMs', 100, solo)],
      ['  of which agent: cloud-init seed ISO', p('isoMs', 50, solo), p('isoMs', 100, solo)],
      ['  of which agent: QEMU spawn → QMP answers', p('qemuStartMs', 50, solo), p('qemuStartMs', 100, solo)],
      ['QEMU running → CreateVirtualMachine returns RUNNING', p('replyAfterQemuMs', 50, solo), p('replyAfterQemuMs', 100, solo)],
    ]), '');
    lines.push(`goal: control plane p50 <= ${SOLO_CONTROL_PLANE_GOAL_MS} ms for one VM: ${round(soloControlPlane, 0)} ms, ${soloControlPlane <= SOLO_CONTROL_PLANE_GOAL_MS ? 'met' : 'not met'}`, '');
    lines.push(table([`${opts.vms} VMs, ${opts.intervalMs} ms apart`, 'p50 ms', 'p95 ms', 'max ms'], [
      ['create → QEMU running (QMP answers), through n0stack', p('createToQemuMs', 50), p('createToQemuMs', 95), p('createToQemuMs', 100)],
      ['  of which control plane (facade, store, queue, reconcile, gRPC)', p('controlPlaneMs', 50), p('controlPlaneMs', 95), p('controlPlaneMs', 100)],
      ['    of which create → the agent EnsureVm begins (facade, store, watch, queue, placement, gRPC)', p('toAgentMs', 50), p('toAgentMs', 95), p('toAgentMs', 100)],
      ['  of which agent: cloud-init seed ISO', p('isoMs', 50), p('isoMs', 95), p('isoMs', 100)],
      ['  of which agent: QEMU spawn → QMP answers', p('qemuStartMs', 50), p('qemuStartMs', 95), p('qemuStartMs', 100)],
      ['QEMU running → CreateVirtualMachine returns RUNNING', p('replyAfterQemuMs', 50), p('replyAfterQemuMs', 95), p('replyAfterQemuMs', 100)],
      ['bare qemu-system-x86_64, same argv, spawn → QMP answers (baseline)', round(percentile(bareMs, 50), 0), round(percentile(bareMs, 95), 0), round(percentile(bareMs, 100), 0)],
    ]));
    const cpShare = percentile(col('controlPlaneMs'), 50) / percentile(col('createToQemuMs'), 50);
    lines.push('', `control plane share of create→running (p50): ${round(cpShare * 100, 0)}%; n0stack p50 vs bare QEMU p50: ${round(burstVsBare, 2)}x (goal <= ${BURST_VS_BARE_GOAL}x: ${burstVsBare <= BURST_VS_BARE_GOAL ? 'met' : 'not met'})`);
    lines.push('each side: n0stack = CreateVirtualMachine through the facade, store, VM controller (placement, status), gRPC to the agent, '
      + 'the agent writing the cloud-init seed ISO (in-process) and starting QEMU, until QMP answers; bare = the same qemu-system-x86_64 argv '
      + '(same accelerator, same overlay disks, a copy of each VM\'s seed ISO, same netns) spawned directly, until QMP answers. '
      + 'The overlays are made before either side is timed (GenerateBlockStorage), so neither includes qemu-img create.');
    const byKind = [...new Set(burstWrites.map((w) => w.kind))].sort().map((k) => `${k} ${burstWrites.filter((w) => w.kind === k).length}`).join(', ');
    lines.push(`store writes during the burst (without Events): ${burstWrites.length} (${round(burstWrites.length / opts.vms, 1)} per VM: ${byKind}; ${burstWrites.filter((w) => w.failed).length} refused, e.g. conflicts), `
      + `each p50 ${round(percentile(burstWrites.map((w) => w.ms), 50), 0)} ms, p95 ${round(percentile(burstWrites.map((w) => w.ms), 95), 0)} ms`);
    lines.push(`from /metrics: agent EnsureVm mean ${round((ensureSum / ensureCount) * 1000, 0)} ms over ${ensureCount} calls; facade CreateVirtualMachine mean ${round(((facade1.sum - facade0.sum) / (facade1.count - facade0.count)) * 1000, 0)} ms over ${facade1.count - facade0.count} calls`);
    process.stdout.write(`${lines.join('\n')}\n`);
    writeResults('vm-latency', { options: opts, burstWrites, accelerator: acc, disk: disk.what, solo, soloControlPlaneP50Ms: soloControlPlane, burstVsBareP50: burstVsBare, perVm: per, bareMs, controlPlaneShareP50: cpShare, ensureVmMeanMs: (ensureSum / ensureCount) * 1000 });
  } finally {
    for (const pid of bare) { try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ } }
    stopControllers.abort();
    await controllersStopped;
    if (agent) {
      const vms = await agent.agent.observe().then((o) => o.vms).catch(() => []);
      for (const vm of vms) await agent.agent.deleteVm(vm.name).catch(() => undefined);
    }
    await cleanups.run();
    await lab.cleanupAll().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(), (err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
