// Randomized invariant test with faults (issue [I] item 7). A seeded sequence of operations
// (controllers/testing/random-faults.ts) runs against a real control plane — facade here,
// controllers and agent as child processes on etcd — through every entrance: the seed RPCs,
// ResourceService apply/delete, and direct store writes as kubectl would make them. Meanwhile it
// kill -9's the controllers and the agent at random points and restarts them. After convergence
// it checks the invariants over the store and the host (disk files and their backing chains,
// QEMU processes, links in the host's namespace), then deletes everything and checks that
// nothing is left. On a violation it shrinks the sequence on fresh clouds and prints the
// shortest failing one.
//
// Short mode (default, CI): 1,000 operations, 24 kills, seed 20261201.
// N0STACK_FAULT_LONG=1: 5,000 operations, 100 kills, a random seed. N0STACK_FAULT_SEED replays a
// seed, N0STACK_FAULT_OPS / N0STACK_FAULT_KILLS set the counts, N0STACK_FAULT_SHRINK_RUNS bounds
// the shrinking (default 8 runs; 0 skips it; the shortest sequence is also written as JSON),
// N0STACK_FAULT_REPLAY=<file.json> runs such a sequence instead of a generated one, and
// N0STACK_FAULT_NODE_DELETE sets the weight of node deletes (default 0.25, about 1 in 220
// operations: a Node held in deletion takes no new placements until what it holds is gone), and
// N0STACK_FAULT_TIMING=1 prints the slowest operations. Sixteen operations are in flight at once,
// each slot taking the next as it frees, so one that waits out its deadline holds up one slot.
// The sequence is reproducible from its seed; the interleaving of a batch's concurrent calls and
// of the kills with them is not (it is timing).
import './quiet';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { TestCloud } from './cloud';
import { RestartableEtcd } from './etcd';
import { isN0Error } from '../api/errors';
import { checkInvariants, describeOp, generate, pools, shrink, type Doc, type HostView, type Op, type Snapshot, type Violation } from '../controllers/testing/random-faults';

const run = promisify(execFile);
const LONG = process.env.N0STACK_FAULT_LONG === '1';
const SEED = Number(process.env.N0STACK_FAULT_SEED ?? (LONG ? Math.floor(Math.random() * 2 ** 31) : 20261201));
const OPS = Number(process.env.N0STACK_FAULT_OPS ?? (LONG ? 5000 : 1000));
const KILLS = Number(process.env.N0STACK_FAULT_KILLS ?? (LONG ? 100 : 24));
const SHRINK_RUNS = Number(process.env.N0STACK_FAULT_SHRINK_RUNS ?? 8);
const NODE_DELETE_WEIGHT = Number(process.env.N0STACK_FAULT_NODE_DELETE ?? 0.25);
/** Operations in flight at once (the kills among them fire after their delay and hold a slot until the restart). */
const IN_FLIGHT = 16;
const CALL_DEADLINE_MS = 20_000;
const CONVERGE_MS = 150_000;
const NODE = 'host-a';
const MiB = 1024 ** 2;
const KINDS = ['Node', 'Network', 'BlockStorage', 'Image', 'VirtualMachine', 'Reservation', 'NetworkAddress'] as const;
const REQUEST_NODE = 'n0core/provisioning/block_storage/request_node_name';

jest.setTimeout(LONG ? 6 * 3600_000 : 1_800_000);

let etcd: RestartableEtcd | undefined;
beforeAll(async () => { if (!process.env.N0STACK_TEST_ETCD) etcd = await RestartableEtcd.start(); }, 120_000);
afterAll(async () => { await etcd?.stop(); });

interface Stats {
  ops: number;
  kills: Record<string, number>;
  ok: Record<string, number>;
  refusals: Record<string, number>;
  /** What the converged snapshot held when the invariants were checked. */
  checked?: string;
  /** The first message of each operation:code, to see what the refusals were. */
  samples: Record<string, string>;
  violations: Violation[];
}

const bump = (m: Record<string, number>, k: string) => { m[k] = (m[k] ?? 0) + 1; };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One cloud, one sequence: run, converge, check, tear down, check again. */
async function runOnce(ops: Op[], log: (line: string) => void): Promise<Stats> {
  const stats: Stats = { ops: 0, kills: {}, ok: {}, refusals: {}, samples: {}, violations: [] };
  const cloud = await TestCloud.start({ store: 'etcd', etcdEndpoint: etcd?.endpoint, nodes: [NODE], agents: 'process', controllers: 'process' });
  try {
    const faults = new Faults(cloud, stats);
    // Converged, the store and the host agree: checked halfway and at the end.
    const check = async (when: string) => {
      await faults.settled();
      const unconverged = await converge(cloud);
      for (const u of unconverged) stats.violations.push({ invariant: 'converges', detail: `${when}: ${u}` });
      const s = await snapshot(cloud);
      stats.violations.push(...checkInvariants(s).map((x) => ({ ...x, detail: `${when}: ${x.detail}` })));
      return s;
    };
    // IN_FLIGHT operations in flight at once: one that waits out its deadline holds one slot, not a batch.
    let done = 0;
    const slowest: [number, string][] = [];
    const runOne = async (op: Op) => {
      const t0 = Date.now();
      await (op.t === 'kill' ? faults.inject(op) : perform(cloud, op, stats));
      slowest.push([Date.now() - t0, describeOp(op)]);
      if (++done % 200 === 0) log(`  ${done}/${ops.length} ops, ${Object.values(stats.kills).reduce((s, n) => s + n, 0)} kills`);
    };
    const half = Math.floor(ops.length / 2);
    await inFlight(ops.slice(0, half), IN_FLIGHT, runOne);
    if (half > 0) await check(`after ${half} ops`);
    await inFlight(ops.slice(half), IN_FLIGHT, runOne);
    if (process.env.N0STACK_FAULT_TIMING) log(`  slowest: ${slowest.sort((a, b) => b[0] - a[0]).slice(0, 20).map(([ms, d]) => `${ms} ms ${d}`).join('; ')}`);
    // Uncordoned first, so that what waited for a place gets one and the last check sees it.
    await uncordon(cloud);
    const converged = await check('at the end');
    const [host] = converged.hosts;
    const count = (kind: string) => converged.docs.filter((d) => d.kind === kind).length;
    stats.checked = `${Object.keys(converged.actionExecutions ?? {}).length} action ids in the agent's journals, ${count('Network')} networks, ${count('BlockStorage')} disks, ${count('Image')} images, ${count('VirtualMachine')} VMs `
      + `(${converged.docs.filter((d) => d.kind === 'VirtualMachine' && d.status?.state === 'RUNNING').length} RUNNING); on the host ${host.disks.length} disk files `
      + `(${host.disks.filter((d) => d.backingFile).length} overlays), ${host.qemu.length} QEMU, ${host.links.filter((l) => l.startsWith('n0tp')).length} taps, ${host.links.filter((l) => l.startsWith('n0br')).length} bridges`;
    // Everything deleted, nothing is left: no object, no file, no process, no link.
    const left = await teardown(cloud);
    for (const u of left) stats.violations.push({ invariant: 'deleted-is-gone', detail: u });
    stats.violations.push(...checkInvariants(await snapshot(cloud), { final: true }));
  } finally {
    await cloud.stop();
  }
  return stats;
}

/** Runs `fn` over `items` with at most `limit` calls under way, each slot taking the next item as it frees. */
async function inFlight<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

/** kill -9 of the controllers or the agent after the op's delay, then a restart; one at a time per target. */
class Faults {
  private readonly chains: Record<string, Promise<void>> = {};
  constructor(private readonly cloud: TestCloud, private readonly stats: Stats) {}

  inject(op: Extract<Op, { t: 'kill' }>): Promise<void> {
    const previous = this.chains[op.what] ?? Promise.resolve();
    const next = previous.then(async () => {
      await sleep(op.delayMs);
      if (op.what === 'controllers') {
        await this.cloud.killControllers();
        bump(this.stats.kills, 'controllers');
        await this.cloud.startControllersProcess();
      } else {
        await this.cloud.killAgent(NODE);
        bump(this.stats.kills, 'agent');
        await this.cloud.restartAgent(NODE);
      }
    });
    this.chains[op.what] = next.catch(() => undefined);
    return next;
  }

  async settled(): Promise<void> {
    await Promise.all(Object.values(this.chains));
    if (!this.cloud.controllersProc?.alive()) await this.cloud.startControllersProcess();
    if (!this.cloud.processHosts.get(NODE)!.proc.alive()) await this.cloud.restartAgent(NODE);
  }
}

function document(kind: string, name: string, spec: Record<string, unknown>, annotations?: Record<string, string>) {
  return { apiVersion: 'n0stack.io/v1alpha1', kind, metadata: { name, ...(annotations ? { annotations } : {}) }, spec };
}

const vmSpec = (op: Extract<Op, { t: 'vm.create' }>) => ({
  request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: op.memMiB * MiB, limit_memory_bytes: op.memMiB * MiB,
  block_storage_names: [op.disk], nics: op.net ? [{ network_name: op.net }] : [],
});

/** One operation through its entrance; a refusal is counted by code, INTERNAL/UNKNOWN is a violation. */
async function perform(cloud: TestCloud, op: Op, stats: Stats): Promise<void> {
  stats.ops++;
  const call = (service: string, method: string, req: unknown) => cloud.client.call<any>(service, method, req, { deadlineMs: CALL_DEADLINE_MS });
  const apply = (doc: unknown) => call('ResourceService', 'Apply', { document_json: JSON.stringify(doc), wait: false });
  const resourceDelete = (kind: string, name: string) => call('ResourceService', 'Delete', { kind, name, wait: false });
  const stored = async (kind: (typeof KINDS)[number], name: string) => {
    const { metadata, spec } = await cloud.store.get(kind, name) as any;
    return { apiVersion: 'n0stack.io/v1alpha1', kind, metadata: { name, labels: metadata.labels, annotations: metadata.annotations }, spec };
  };
  /** kubectl edit: read, change the spec, write back with the read resourceVersion. */
  const storeEdit = async (kind: (typeof KINDS)[number], name: string, edit: (spec: any) => void) => {
    const doc = structuredClone(await cloud.store.get(kind, name)) as any;
    edit(doc.spec);
    await cloud.store.update(doc);
  };
  /** kubectl apply: create, or edit what is there. */
  const storeApply = async (kind: (typeof KINDS)[number], doc: any) => {
    try { await cloud.store.create(doc); } catch (err) {
      if (!isN0Error(err, 'AlreadyExists')) throw err;
      await storeEdit(kind, doc.metadata.name, (spec) => Object.assign(spec, doc.spec));
    }
  };
  const resourceEdit = async (kind: (typeof KINDS)[number], name: string, edit: (spec: any) => void) => {
    const doc = await stored(kind, name);
    edit(doc.spec);
    await apply(doc);
  };
  const diskAnnotations = { [REQUEST_NODE]: NODE };
  try {
    switch (op.t) {
      case 'net.apply': {
        const doc = document('Network', op.name, { ipv4_cidr: op.cidr });
        if (op.e === 'rpc') await call('NetworkService', 'ApplyNetwork', { name: op.name, ipv4_cidr: op.cidr });
        else if (op.e === 'resource') await apply(doc);
        else await storeApply('Network', doc);
        break;
      }
      case 'bs.create': {
        const spec = { request_bytes: MiB, limit_bytes: op.limitMiB * MiB };
        if (op.e === 'rpc') await call('BlockStorageService', 'CreateBlockStorage', { name: op.name, annotations: diskAnnotations, ...spec });
        else if (op.e === 'resource') await apply(document('BlockStorage', op.name, spec, diskAnnotations));
        else await cloud.store.create(document('BlockStorage', op.name, spec, diskAnnotations) as any);
        break;
      }
      case 'bs.grow': {
        if (op.e === 'rpc') await call('BlockStorageService', 'UpdateBlockStorage', { name: op.name, request_bytes: MiB, limit_bytes: op.limitMiB * MiB });
        else if (op.e === 'resource') await resourceEdit('BlockStorage', op.name, (s) => { s.limit_bytes = op.limitMiB * MiB; });
        else await storeEdit('BlockStorage', op.name, (s) => { s.limit_bytes = op.limitMiB * MiB; });
        break;
      }
      case 'img.apply': {
        if (op.e === 'rpc') await call('ImageService', 'ApplyImage', { name: op.name });
        else if (op.e === 'resource') await apply(document('Image', op.name, {}));
        else await cloud.store.create(document('Image', op.name, {}) as any);
        break;
      }
      case 'img.register':
        await call('ImageService', 'RegisterBlockStorage', { image_name: op.image, block_storage_name: op.bs, tags: [op.tag] });
        break;
      case 'img.generate':
        await call('ImageService', 'GenerateBlockStorage', { image_name: op.image, tag: op.tag, block_storage_name: op.bs, annotations: diskAnnotations, request_bytes: MiB, limit_bytes: 64 * MiB });
        break;
      case 'vm.create': {
        if (op.e === 'rpc') await call('VirtualMachineService', 'CreateVirtualMachine', { name: op.name, ...vmSpec(op) });
        else if (op.e === 'resource') await apply(document('VirtualMachine', op.name, vmSpec(op)));
        else await cloud.store.create(document('VirtualMachine', op.name, vmSpec(op)) as any);
        break;
      }
      case 'vm.update': {
        const memory = { request_memory_bytes: op.memMiB * MiB, limit_memory_bytes: op.memMiB * MiB };
        if (op.e === 'rpc') await call('VirtualMachineService', 'UpdateVirtualMachine', { name: op.name, request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, ...memory });
        else if (op.e === 'resource') await resourceEdit('VirtualMachine', op.name, (s) => Object.assign(s, memory));
        else await storeEdit('VirtualMachine', op.name, (s) => Object.assign(s, memory));
        break;
      }
      case 'vm.power': {
        const hard = op.action === 'Shutdown' || op.action === 'Reboot' ? { hard: op.hard } : {};
        await call('VirtualMachineService', `${op.action}VirtualMachine`, { name: op.name, ...hard });
        break;
      }
      case 'net.delete': case 'bs.delete': case 'img.delete': case 'vm.delete': {
        const [kind, service, rpc] = ({
          'net.delete': ['Network', 'NetworkService', 'DeleteNetwork'],
          'bs.delete': ['BlockStorage', 'BlockStorageService', 'DeleteBlockStorage'],
          'img.delete': ['Image', 'ImageService', 'DeleteImage'],
          'vm.delete': ['VirtualMachine', 'VirtualMachineService', 'DeleteVirtualMachine'],
        } as const)[op.t];
        if (op.e === 'rpc') await call(service, rpc, { name: op.name });
        else if (op.e === 'resource') await resourceDelete(kind, op.name);
        else await cloud.store.delete(kind, op.name);
        break;
      }
      case 'node.cordon': {
        if (op.e === 'store') await storeEdit('Node', op.node, (s) => { s.unschedulable = op.unschedulable; });
        else await resourceEdit('Node', op.node, (s) => { s.unschedulable = op.unschedulable; });
        break;
      }
      case 'node.delete':
        if (op.e === 'rpc') await call('NodeService', 'DeleteNode', { name: op.node });
        else if (op.e === 'resource') await resourceDelete('Node', op.node);
        else await cloud.store.delete('Node', op.node);
        break;
      case 'kill':
        break;
    }
    bump(stats.ok, op.t);
  } catch (err) {
    const e = err as { codeName?: string; code?: unknown; message?: string };
    const code = e.codeName ?? (isN0Error(err) ? `store:${(err as { code: string }).code}` : 'store:untyped');
    bump(stats.refusals, code);
    stats.samples[`${op.t} ${code}`] ??= (e.message ?? '').slice(0, 160);
    if (code === 'INTERNAL' || code === 'UNKNOWN' || code === 'store:untyped' || code === 'store:Internal') {
      stats.violations.push({ invariant: 'no-internal-errors', detail: `${describeOp(op)}: ${code}: ${e.message}` });
    }
  }
}

async function allDocs(cloud: TestCloud): Promise<Doc[]> {
  const lists = await Promise.all(KINDS.map(async (kind) => (await cloud.store.list(kind)).items.map((d: any) => ({ ...d, kind }) as Doc)));
  return lists.flat();
}

/** What must settle: generations observed, fields the controllers write, deletions. */
function fingerprint(docs: Doc[]): string {
  return JSON.stringify(docs.filter((d) => d.kind !== 'Node').map((d) => [
    d.kind, d.metadata.name, d.metadata.generation, d.metadata.deletionTimestamp, d.metadata.finalizers, d.status?.observedGeneration,
    d.status?.state, d.status?.node_name, d.status?.in_use_by, d.status?.last_action_id, d.status?.nics, d.status?.reserved_network_interfaces,
    (d.status?.conditions ?? []).map((c: any) => [c.type, c.status, c.reason]),
  ]).concat(docs.filter((d) => d.kind === 'Node').map((d) => [d.metadata.name, d.status?.placement?.generation, d.status?.state])));
}

/**
 * Waits until every object's observedGeneration caught up and the controllers' fields have not
 * changed for three polls; returns what did not get there within CONVERGE_MS.
 */
async function converge(cloud: TestCloud): Promise<string[]> {
  const deadline = Date.now() + CONVERGE_MS;
  let last = '';
  let stable = 0;
  let behind: string[] = [];
  while (Date.now() < deadline) {
    const docs = await allDocs(cloud);
    // Reservations and NetworkAddresses are records with no reconciler of their spec (nothing observes a generation).
    behind = docs.filter((d) => !['Node', 'Reservation', 'NetworkAddress'].includes(d.kind) && (d.status?.observedGeneration ?? 0) < (d.metadata.generation ?? 1))
      .map((d) => `${d.kind}/${d.metadata.name} generation ${d.metadata.generation} observed ${d.status?.observedGeneration ?? '-'}`);
    const fp = fingerprint(docs);
    stable = fp === last && behind.length === 0 ? stable + 1 : 0;
    last = fp;
    if (stable >= 3) return [];
    await sleep(1000);
  }
  return behind.length ? behind : [`the controllers' fields kept changing for ${CONVERGE_MS} ms`];
}

async function uncordon(cloud: TestCloud): Promise<void> {
  await cloud.store.get('Node', NODE).then((n: any) => (n.spec.unschedulable ? cloud.store.update({ ...n, spec: { ...n.spec, unschedulable: false } }) : undefined)).catch(() => undefined);
}

/** Deletes every object through the store (the finalizers order it); what is still there after the bound. */
async function teardown(cloud: TestCloud): Promise<string[]> {
  await uncordon(cloud);
  const deadline = Date.now() + CONVERGE_MS;
  let left: Doc[] = [];
  while (Date.now() < deadline) {
    // Nodes stay (the agent registers its own), but none may be stuck in deletion.
    left = (await allDocs(cloud)).filter((d) => d.kind !== 'Node' || d.metadata.deletionTimestamp);
    if (left.length === 0) return [];
    for (const d of left) if (!d.metadata.deletionTimestamp && d.kind !== 'Node') await cloud.store.delete(d.kind as any, d.metadata.name).catch(() => undefined);
    await sleep(1000);
  }
  return left.map((d) => `${d.kind}/${d.metadata.name} still there ${CONVERGE_MS} ms after its delete (finalizers ${JSON.stringify(d.metadata.finalizers ?? [])}, ${JSON.stringify((d.status?.conditions ?? []).find((c: any) => c.type === 'Ready') ?? {})})`);
}

/** The host as it really is: disk files (qemu-img info), QEMU processes, links in its namespace. */
async function hostView(cloud: TestCloud): Promise<HostView> {
  const { dataDir, netns } = cloud.host(NODE);
  const disksDir = path.join(dataDir, 'disks');
  const disks: HostView['disks'] = [];
  for (const f of fs.existsSync(disksDir) ? fs.readdirSync(disksDir) : []) {
    if (!f.endsWith('.qcow2')) { disks.push({ name: `stray file ${f}` }); continue; }
    const file = path.join(disksDir, f);
    const { stdout } = await run('qemu-img', ['info', '-U', '--output=json', file]).catch((err) => ({ stdout: JSON.stringify({ 'backing-filename': `<qemu-img info failed: ${err.message}>` }) }));
    const info = JSON.parse(stdout);
    const backing: string | undefined = info['full-backing-filename'] ?? info['backing-filename'];
    disks.push({ name: f.slice(0, -'.qcow2'.length), backingFile: backing, backingExists: backing ? fs.existsSync(path.resolve(disksDir, backing)) : undefined });
  }
  const qemu: string[] = [];
  const vmsDir = `${path.join(dataDir, 'vms')}/`;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline = '';
    let stat = '';
    try { cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8'); stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8'); } catch { continue; }
    if (/\) [ZX] /.test(stat)) continue;
    const args = cmdline.split('\0');
    if (!/qemu-system/.test(args[0] ?? '')) continue;
    const qmp = args.find((a) => a.includes(vmsDir) && a.includes('qmp.sock'));
    if (qmp) qemu.push(qmp.slice(qmp.indexOf(vmsDir) + vmsDir.length).split('/')[0]);
  }
  const { stdout } = await run('ip', ['-n', netns, '-o', 'link', 'show']);
  const links = stdout.split('\n').filter(Boolean).map((l) => l.split(':')[1].trim().split('@')[0]);
  return { node: NODE, disks, qemu, links };
}

async function snapshot(cloud: TestCloud): Promise<Snapshot> {
  const host = await hostView(cloud);
  const dup = host.qemu.filter((n, i) => host.qemu.indexOf(n) !== i);
  const docs = await allDocs(cloud);
  const s: Snapshot = { docs, hosts: [host] };
  // "Done twice" as this test can see it: two QEMU processes for one VM, or an action id twice in
  // the agent's journals (vms/<vm>/actions.json, written before each action with an id is begun).
  // The agent counts no executions of its own, so a reboot done twice by the driver under one
  // journal entry could not be told from one here.
  const executions: Record<string, number> = {};
  for (const n of dup) executions[`start of ${n} (QEMU processes)`] = 2;
  const vmsDir = path.join(cloud.host(NODE).dataDir, 'vms');
  for (const vm of fs.existsSync(vmsDir) ? fs.readdirSync(vmsDir) : []) {
    let journal: { id: string }[] = [];
    try { journal = JSON.parse(fs.readFileSync(path.join(vmsDir, vm, 'actions.json'), 'utf8')); } catch { continue; }
    for (const r of journal) bump(executions, `${vm}/${r.id}`);
  }
  s.actionExecutions = executions;
  return s;
}

function report(label: string, stats: Stats, ms: number): string {
  const sorted = (m: Record<string, number>) => Object.entries(m).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ') || '-';
  return [
    `[e2e fault-random] ${label}: seed ${SEED}, ${stats.ops} operations, ${Object.values(stats.kills).reduce((s, n) => s + n, 0)} kills (${sorted(stats.kills)}), ${Math.round(ms / 1000)} s`,
    `  succeeded: ${sorted(stats.ok)}`,
    `  refused by code: ${sorted(stats.refusals)}`,
    `  checked after convergence: ${stats.checked ?? '-'}`,
    ...(process.env.N0STACK_FAULT_VERBOSE ? Object.entries(stats.samples).sort().map(([k, m]) => `    ${k}: ${m}`) : []),
    `  violations: ${stats.violations.length}`,
    ...stats.violations.slice(0, 40).map((v) => `    ${v.invariant}: ${v.detail}`),
  ].join('\n');
}

test(`${OPS} random operations through every entrance with ${KILLS} kill -9's keep every invariant`, async () => {
  const log = (line: string) => process.stderr.write(`[e2e fault-random] ${line}\n`);
  const p = pools('rf', undefined, [NODE]);
  const replay = process.env.N0STACK_FAULT_REPLAY;
  const ops: Op[] = replay ? JSON.parse(fs.readFileSync(replay, 'utf8')) : generate(SEED, p, { ops: OPS, kills: KILLS, nodeDeleteWeight: NODE_DELETE_WEIGHT });
  const kills = ops.filter((op) => op.t === 'kill').length;
  log(replay ? `replaying ${replay}: ${ops.length - kills} operations, ${kills} kills` : `seed ${SEED}: ${OPS} operations, ${KILLS} kills (N0STACK_FAULT_SEED=${SEED} replays it)`);
  const started = Date.now();
  const stats = await runOnce(ops, log);
  process.stderr.write(`${report('run', stats, Date.now() - started)}\n`);
  if (stats.violations.length > 0 && SHRINK_RUNS > 0) {
    const invariants = new Set(stats.violations.map((v) => v.invariant));
    const { ops: shortest, runs } = await shrink(ops, async (xs) => {
      const again = await runOnce(xs, () => undefined);
      const still = again.violations.some((v) => invariants.has(v.invariant));
      log(`shrink: ${xs.length} ops ${still ? 'still fail' : 'pass'}`);
      return still;
    }, SHRINK_RUNS);
    const file = path.join(os.tmpdir(), `n0stack-fault-random-${SEED}-shortest.json`);
    fs.writeFileSync(file, JSON.stringify(shortest, null, 1));
    log(`shortest failing sequence found in ${runs} runs (seed ${SEED}, ${shortest.length} ops; N0STACK_FAULT_REPLAY=${file} runs it):\n${shortest.map((op) => `    ${describeOp(op)}`).join('\n')}`);
  }
  expect(Object.values(stats.kills).reduce((s, n) => s + n, 0)).toBe(kills);
  expect(stats.ops).toBe(ops.length - kills);
  expect(stats.violations).toEqual([]);
});
