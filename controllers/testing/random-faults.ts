// The pure half of the randomized fault test (e2e/fault-random.test.ts): a seeded operation
// generator, the invariants checked over a snapshot of the store and the host, and a shrinker
// that looks for the shortest failing sequence. Nothing here touches a process, a file or the
// network, so each piece has unit tests (random-faults.test.ts); the e2e test runs the operations
// against a real control plane and builds the snapshot.
import { bridgeName, tapName, vxlanName } from '../../agent/paths';
import { addressName } from '../../api/addresses';
import { blockStorageNode } from '../../api/placement';
import type { BlockStorage } from '../../api/types';

/** A small deterministic PRNG (mulberry32), so a run is replayed from its printed seed. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** How an operation reaches the store: a seed RPC, ResourceService (n0ctl apply), or a direct write (kubectl). */
export type Entrance = 'rpc' | 'resource' | 'store';

export type Op =
  | { t: 'net.apply'; e: Entrance; name: string; cidr: string }
  | { t: 'net.delete'; e: Entrance; name: string }
  | { t: 'bs.create'; e: Entrance; name: string; limitMiB: number }
  | { t: 'bs.grow'; e: Entrance; name: string; limitMiB: number }
  | { t: 'bs.delete'; e: Entrance; name: string }
  | { t: 'img.apply'; e: Entrance; name: string }
  | { t: 'img.register'; image: string; bs: string; tag: string }
  | { t: 'img.generate'; image: string; tag: string; bs: string }
  | { t: 'img.delete'; e: Entrance; name: string }
  | { t: 'vm.create'; e: Entrance; name: string; disk: string; net?: string; memMiB: number }
  | { t: 'vm.update'; e: Entrance; name: string; memMiB: number }
  | { t: 'vm.delete'; e: Entrance; name: string }
  | { t: 'vm.power'; name: string; action: 'Boot' | 'Shutdown' | 'Reboot' | 'Save'; hard: boolean }
  | { t: 'node.cordon'; e: Entrance; node: string; unschedulable: boolean }
  | { t: 'node.delete'; e: Entrance; node: string }
  | { t: 'kill'; what: 'controllers' | 'agent'; delayMs: number };

export interface Pools {
  networks: string[];
  disks: string[];
  images: string[];
  vms: string[];
  nodes: string[];
}

export function pools(prefix = 'rf', sizes = { networks: 3, disks: 8, images: 2, vms: 3 }, nodes = ['host-a']): Pools {
  const names = (what: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${what}-${i}`);
  return { networks: names('net', sizes.networks), disks: names('disk', sizes.disks), images: names('img', sizes.images), vms: names('vm', sizes.vms), nodes };
}

export interface GenerateOptions {
  ops: number;
  /** Faults among the operations (kill -9 of the controllers or of the agent). */
  kills: number;
  /** Weight of node deletes (0 leaves them out). */
  nodeDeleteWeight?: number;
}

/**
 * `ops` operations over small name pools, with `kills` faults spread among them. Every operation
 * names objects only by pool name, so any subsequence is itself a valid sequence (the shrinker
 * relies on that); many are refused on purpose (a disk in use, a network with reservations).
 */
export function generate(seed: number, p: Pools, options: GenerateOptions): Op[] {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const entrance = (): Entrance => pick(['rpc', 'rpc', 'resource', 'store'] as const);
  const index = (xs: readonly string[], name: string) => xs.indexOf(name);
  // disks[0..vms) are the VMs' own, then two bases, then overlays.
  const spare = p.disks.slice(p.vms.length);
  const bases = spare.length >= 2 ? spare.slice(0, 2) : p.disks;
  const overlays = spare.length > 2 ? spare.slice(2) : p.disks;
  const makers: [number, () => Op][] = [
    [6, () => { const name = pick(p.networks); return { t: 'net.apply', e: entrance(), name, cidr: `10.${90 + index(p.networks, name)}.${rnd() < 0.8 ? 0 : 1}.0/24` }; }],
    [2, () => ({ t: 'net.delete', e: entrance(), name: pick(p.networks) })],
    [8, () => ({ t: 'bs.create', e: entrance(), name: pick(p.disks), limitMiB: pick([16, 16, 32]) })],
    [3, () => ({ t: 'bs.grow', e: entrance(), name: pick(p.disks), limitMiB: pick([16, 32, 48]) })],
    [4, () => ({ t: 'bs.delete', e: entrance(), name: pick(p.disks) })],
    [3, () => ({ t: 'img.apply', e: entrance(), name: pick(p.images) })],
    // Images mostly register the "base" disks and generate overlays into the rest, so that
    // backing chains exist (and their bases get deleted under them).
    [3, () => ({ t: 'img.register', image: pick(p.images), bs: rnd() < 0.8 ? pick(bases) : pick(p.disks), tag: pick(['latest', 'v1']) })],
    [4, () => ({ t: 'img.generate', image: pick(p.images), tag: pick(['latest', 'v1']), bs: rnd() < 0.8 ? pick(overlays) : pick(p.disks) })],
    [2, () => ({ t: 'img.delete', e: entrance(), name: pick(p.images) })],
    // A VM mostly takes "its" disk (vm-i, disk-i), so that some creates succeed and QEMU runs.
    [5, () => { const name = pick(p.vms); const i = index(p.vms, name); return { t: 'vm.create', e: entrance(), name, disk: rnd() < 0.8 ? p.disks[i % p.disks.length] : pick(p.disks), net: rnd() < 0.7 ? pick(p.networks) : undefined, memMiB: pick([64, 96, 128]) }; }],
    [2, () => ({ t: 'vm.update', e: entrance(), name: pick(p.vms), memMiB: pick([64, 96, 128]) })],
    [3, () => ({ t: 'vm.delete', e: entrance(), name: pick(p.vms) })],
    [5, () => ({ t: 'vm.power', name: pick(p.vms), action: pick(['Boot', 'Shutdown', 'Reboot', 'Save'] as const), hard: rnd() < 0.5 })],
    [2, () => ({ t: 'node.cordon', e: pick(['resource', 'store'] as const), node: pick(p.nodes), unschedulable: rnd() < 0.4 })],
    [options.nodeDeleteWeight ?? 0, () => ({ t: 'node.delete', e: entrance(), node: pick(p.nodes) })],
  ];
  const total = makers.reduce((s, [w]) => s + w, 0);
  const one = (): Op => {
    let x = rnd() * total;
    for (const [w, make] of makers) { if ((x -= w) < 0) return make(); }
    return makers[0][1]();
  };
  const out: Op[] = Array.from({ length: options.ops }, one);
  // Faults at random positions (spread: one per stretch of ops/kills), alternating at random.
  const stretch = options.ops / Math.max(1, options.kills);
  for (let k = options.kills - 1; k >= 0; k--) {
    const at = Math.floor(k * stretch + rnd() * stretch);
    out.splice(at, 0, { t: 'kill', what: rnd() < 0.5 ? 'controllers' : 'agent', delayMs: Math.floor(rnd() * 1500) });
  }
  return out;
}

/** One line per operation, for the report of a failing sequence. */
export function describeOp(op: Op): string {
  const { t, ...rest } = op;
  return `${t} ${Object.entries(rest).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`).join(' ')}`;
}

// ---------------------------------------------------------------------------------------------
// Invariants

/** What a document looks like to the checks (the parts they read). */
export interface Doc {
  kind: string;
  metadata: { name: string; uid?: string; generation?: number; deletionTimestamp?: string; finalizers?: string[] };
  spec: any;
  status?: any;
}

export interface HostView {
  node: string;
  /** Files disks/<name>.qcow2 and what qemu-img says of each. */
  disks: { name: string; backingFile?: string; backingExists?: boolean }[];
  /** Names of the VMs with a live QEMU process (from the vms/ run dirs). */
  qemu: string[];
  /** Interfaces in the host's namespace (ip -n <netns> link). */
  links: string[];
}

export interface Snapshot {
  docs: Doc[];
  hosts: HostView[];
  /** Agent-side execution counts per action id, when the agent exposes them. */
  actionExecutions?: Record<string, number>;
}

export interface Violation { invariant: string; detail: string }


/**
 * Every invariant of issue [I] that a converged snapshot can show. `final` is the snapshot after
 * everything was deleted: then nothing at all may be left.
 */
export function checkInvariants(s: Snapshot, options: { final?: boolean } = {}): Violation[] {
  const out: Violation[] = [];
  const v = (invariant: string, detail: string) => out.push({ invariant, detail });
  const of = (kind: string) => s.docs.filter((d) => d.kind === kind);
  const nodes = of('Node');
  const nets = of('Network');
  const disks = of('BlockStorage');
  const vms = of('VirtualMachine');
  const byName = (docs: Doc[]) => new Map(docs.map((d) => [d.metadata.name, d]));
  const diskByName = byName(disks);
  const vmByName = byName(vms);

  // Deleted objects are gone: nothing in deletion unless a protection finalizer names dependants.
  for (const d of s.docs) {
    if (!d.metadata.deletionTimestamp) continue;
    const ready = (d.status?.conditions ?? []).find((c: any) => c.type === 'Ready');
    // A Node says so in its Deleting condition (its Ready is the heartbeat's).
    const held = (d.status?.conditions ?? []).some((c: any) => (c.type === 'Ready' || c.type === 'Deleting') && c.reason === 'WaitingForDependants');
    if (options.final || !held) {
      v('deleted-is-gone', `${d.kind}/${d.metadata.name} is still there in deletion (finalizers ${JSON.stringify(d.metadata.finalizers ?? [])}, Ready ${ready?.reason ?? '-'}: ${ready?.message ?? ''})`);
    }
  }
  if (options.final) {
    for (const d of s.docs) if (d.kind !== 'Node' && !d.metadata.deletionTimestamp) v('deleted-is-gone', `${d.kind}/${d.metadata.name} still exists after the teardown`);
  }

  // What every Node gives away is derived from what is placed on it (api/placement.ts): each
  // placed object names an existing Node, a VM runs where its disks are, the seed's Reservations
  // name existing Nodes, and nothing placed on a Node adds up to more than it has (requests
  // within capacity, limits within capacity x the overcommit ratios). The Node document itself
  // carries no list of them any more.
  const nodeByName = byName(nodes);
  const reservations = of('Reservation');
  for (const d of [...vms, ...disks]) {
    // A disk pinned at creation is placed by its creation (api/placement.ts blockStorageNode).
    const on = d.kind === 'BlockStorage' ? blockStorageNode(d as BlockStorage) : d.status?.node_name;
    if (on && !nodeByName.has(on)) v('node-reservations', `${d.kind}/${d.metadata.name} is placed on ${on}, which does not exist`);
  }
  for (const vm of vms) {
    const on = vm.status?.node_name;
    for (const bsName of on ? vm.spec.block_storage_names ?? [] : []) {
      const bs = diskByName.get(bsName);
      if (bs?.status?.node_name && bs.status.node_name !== on) v('node-reservations', `VirtualMachine/${vm.metadata.name} is placed on ${on}, its disk ${bsName} on ${bs.status.node_name}`);
    }
  }
  for (const r of reservations) {
    if (!nodeByName.has(r.spec?.node_name)) v('node-reservations', `Reservation/${r.metadata.name} names node ${r.spec?.node_name}, which does not exist`);
  }
  for (const node of nodes) {
    const name = node.metadata.name;
    for (const field of ['reserved_computes', 'reserved_storages']) {
      if (Object.keys(node.status?.[field] ?? {}).length) v('node-reservations', `Node/${name} stores ${field} in its document (usage is derived, not stored)`);
    }
    const used = { cpu: 0, mem: 0, storage: 0, cpuLimit: 0, memLimit: 0 };
    for (const vm of vms.filter((x) => x.status?.node_name === name)) {
      used.cpu += vm.spec.request_cpu_milli_core ?? vm.spec.limit_cpu_milli_core ?? 0;
      used.mem += vm.spec.request_memory_bytes ?? vm.spec.limit_memory_bytes ?? 0;
      used.cpuLimit += vm.spec.limit_cpu_milli_core ?? 0;
      used.memLimit += vm.spec.limit_memory_bytes ?? 0;
    }
    for (const bs of disks.filter((x) => blockStorageNode(x as BlockStorage) === name)) used.storage += bs.spec.request_bytes ?? bs.spec.limit_bytes ?? 0;
    for (const r of reservations.filter((x) => x.spec?.node_name === name)) {
      used.cpu += r.spec.request_cpu_milli_core ?? 0;
      used.mem += r.spec.request_memory_bytes ?? 0;
      used.cpuLimit += r.spec.limit_cpu_milli_core ?? 0;
      used.memLimit += r.spec.limit_memory_bytes ?? 0;
      used.storage += r.spec.request_bytes ?? 0;
    }
    const cap = { cpu: node.spec?.cpu_milli_cores ?? 0, mem: node.spec?.memory_bytes ?? 0, storage: node.spec?.storage_bytes ?? 0 };
    const over = [
      used.cpu > cap.cpu && `CPU requests ${used.cpu} > ${cap.cpu}`,
      used.mem > cap.mem && `memory requests ${used.mem} > ${cap.mem}`,
      used.storage > cap.storage && `storage requests ${used.storage} > ${cap.storage}`,
      used.cpuLimit > cap.cpu * 4 && `CPU limits ${used.cpuLimit} > 4 x ${cap.cpu}`,
      used.memLimit > cap.mem && `memory limits ${used.memLimit} > ${cap.mem}`,
    ].filter(Boolean);
    if (over.length) v('node-reservations', `Node/${name} is overcommitted: ${over.join(', ')}`);
  }

  // Addresses (api/addresses.ts): every NetworkAddress is named by its value, held by a VM whose
  // nics[i] is on that network (same uid) or by a seed reservation; no two NICs share an address in
  // a network (nor a MAC anywhere); a running VM's NICs have exactly their address objects; the
  // Network document lists none of them (a stored list is migrated away).
  const addresses = of('NetworkAddress');
  const field = { mac: 'hardware_address', ipv4: 'ipv4_address', ipv6: 'ipv6_address' } as const;
  for (const net of nets) {
    if (Object.keys(net.status?.reserved_network_interfaces ?? {}).length) v('network-reservations', `Network/${net.metadata.name} still lists reserved_network_interfaces in its document`);
  }
  const held = new Map<string, any[]>();
  for (const a of addresses) {
    const sp = a.spec ?? {};
    let expected: string | undefined;
    try { expected = addressName(sp.network_name, sp.family, sp.address); } catch { expected = undefined; }
    if (expected !== a.metadata.name) v('unique-addresses', `NetworkAddress/${a.metadata.name} is not named by its value (${sp.network_name} ${sp.family} ${sp.address})`);
    if (!nets.some((n) => n.metadata.name === sp.network_name)) v('no-orphans', `NetworkAddress/${a.metadata.name} is lent by Network ${sp.network_name}, which does not exist`);
    if (!sp.virtual_machine_name) continue;
    const vm = vmByName.get(sp.virtual_machine_name);
    if (!vm || vm.metadata.uid !== sp.virtual_machine_uid) v('no-orphans', `NetworkAddress/${a.metadata.name} is held by ${sp.holder_key} (uid ${sp.virtual_machine_uid}), which no VirtualMachine accounts for`);
    else if (vm.spec.nics?.[sp.nic_index]?.network_name !== sp.network_name) v('network-reservations', `NetworkAddress/${a.metadata.name} is held by ${sp.holder_key}, but ${vm.metadata.name}'s nics[${sp.nic_index}] is on ${vm.spec.nics?.[sp.nic_index]?.network_name ?? 'nothing'}`);
    const key = `${sp.virtual_machine_name}/${sp.virtual_machine_uid}/${sp.nic_index}`;
    held.set(key, [...(held.get(key) ?? []), a]);
  }
  // No two NICs share an address: as the VMs report them (the objects cannot, their names are their values).
  const seen = new Map<string, string>();
  for (const vm of vms) {
    if (!['RUNNING', 'SHUTDOWN', 'PAUSED'].includes(vm.status?.state)) continue;
    for (const [i, nic] of (vm.status?.nics ?? []).entries()) {
      const who = `${vm.metadata.name}.${i}`;
      for (const [family, f] of Object.entries(field)) {
        const value = nic[f];
        if (!value) continue;
        const k = family === 'mac' ? `mac ${String(value).toLowerCase()}` : `${nic.network_name} ${family} ${value}`;
        if (seen.has(k)) v('unique-addresses', `${who} and ${seen.get(k)} both hold ${k}`);
        seen.set(k, who);
      }
      const mine = held.get(`${vm.metadata.name}/${vm.metadata.uid}/${i}`) ?? [];
      const want = Object.entries(field).filter(([, f]) => nic[f]).map(([family, f]) => `${family} ${family === 'mac' ? String(nic[f]).toLowerCase() : nic[f]}`).sort();
      const have = mine.map((a) => `${a.spec.family} ${a.spec.address}`).sort();
      if (JSON.stringify(want) !== JSON.stringify(have)) v('network-reservations', `VirtualMachine/${vm.metadata.name} is ${vm.status.state} with nics[${i}] ${want.join(', ')}, but holds ${have.join(', ') || 'no addresses'}`);
    }
  }

  // Disks: claims name existing users; every placed disk's file and backing chain exist.
  for (const bs of disks) {
    const user = bs.status?.in_use_by;
    if (user) {
      const vm = vmByName.get(user);
      if (!vm || !(vm.spec.block_storage_names ?? []).includes(bs.metadata.name)) v('disk-claims', `BlockStorage/${bs.metadata.name} is IN_USE by ${user}, which does not name it`);
    }
  }
  for (const host of s.hosts) {
    const onHost = new Map(host.disks.map((d) => [d.name, d]));
    for (const bs of disks.filter((b) => b.status?.node_name === host.node && ['AVAILABLE', 'IN_USE', 'PROTECTED'].includes(b.status?.state))) {
      const file = onHost.get(bs.metadata.name);
      if (!file) { v('backing-chain', `BlockStorage/${bs.metadata.name} is ${bs.status.state} on ${host.node} but has no file`); continue; }
      const base = bs.spec.backing_block_storage;
      if (base && !file.backingFile) v('backing-chain', `BlockStorage/${bs.metadata.name} should be an overlay on ${base}, but its file has no backing file`);
      if (base && file.backingFile && file.backingFile.split('/').pop() !== `${base}.qcow2`) v('backing-chain', `BlockStorage/${bs.metadata.name} is an overlay on ${base}, but its file's backing file is ${file.backingFile}`);
      if (base && !diskByName.has(base)) v('backing-chain', `BlockStorage/${bs.metadata.name} is an overlay on ${base}, whose BlockStorage is gone`);
    }
    for (const file of host.disks) {
      if (file.backingFile && !file.backingExists) v('backing-chain', `disk file ${file.name} on ${host.node}: its backing file ${file.backingFile} does not exist`);
      const bs = diskByName.get(file.name);
      // A file without an object (or on another node) is a leak; one of an object still PENDING
      // (its create is under way) is not.
      if (!bs || (bs.status?.node_name && bs.status.node_name !== host.node)) v('no-orphans', `disk file ${file.name} on ${host.node} has no BlockStorage placed there`);
    }

    // No QEMU, tap or bridge without an object.
    for (const vmName of host.qemu) {
      const vm = vmByName.get(vmName);
      if (!vm || vm.status?.node_name !== host.node) v('no-orphans', `QEMU of ${vmName} runs on ${host.node} without a VirtualMachine placed there`);
    }
    const taps = new Set<string>();
    const bridges = new Set<string>();
    for (const vm of vms.filter((x) => x.status?.node_name === host.node)) (vm.spec.nics ?? []).forEach((_: unknown, i: number) => taps.add(tapName(vm.metadata.name, i)));
    for (const net of nets) bridges.add(bridgeName(net.metadata.name));
    for (const link of host.links) {
      if (/^n0tp/.test(link) && !taps.has(link)) v('no-orphans', `tap ${link} on ${host.node} belongs to no VirtualMachine placed there`);
      if (/^n0br/.test(link) && !bridges.has(link)) v('no-orphans', `bridge ${link} on ${host.node} belongs to no Network`);
      if (/^n0vx/.test(link) && !nets.some((n) => vxlanName(n.metadata.name) === link)) v('no-orphans', `vxlan ${link} on ${host.node} belongs to no Network`);
    }
  }

  // No action done twice.
  for (const [id, count] of Object.entries(s.actionExecutions ?? {})) if (count > 1) v('actions-once', `action ${id} was executed ${count} times`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Shrinking

/**
 * The shortest failing sequence it can find within `budget` runs: first the shortest failing
 * prefix (binary search: a violation, once there, stays), then delta debugging (ddmin) over that
 * prefix, removing chunks while the run still fails. `fails` runs a sequence on a fresh cloud.
 */
export async function shrink<T>(ops: T[], fails: (ops: T[]) => Promise<boolean>, budget: number): Promise<{ ops: T[]; runs: number }> {
  let runs = 0;
  const tryRun = async (xs: T[]) => { runs++; return fails(xs); };
  // Shortest failing prefix.
  let lo = 0;
  let hi = ops.length;
  while (lo < hi && runs < budget) {
    const mid = Math.floor((lo + hi) / 2);
    if (mid > 0 && await tryRun(ops.slice(0, mid))) hi = mid; else lo = mid + 1;
  }
  let current = ops.slice(0, hi);
  // ddmin: remove chunks of decreasing size.
  let n = 2;
  while (current.length >= 2 && runs < budget) {
    const size = Math.ceil(current.length / n);
    let reduced = false;
    for (let start = 0; start < current.length && runs < budget; start += size) {
      const candidate = [...current.slice(0, start), ...current.slice(start + size)];
      if (candidate.length > 0 && await tryRun(candidate)) {
        current = candidate;
        n = Math.max(n - 1, 2);
        reduced = true;
        break;
      }
    }
    if (!reduced) {
      if (size <= 1) break;
      n = Math.min(n * 2, current.length);
    }
  }
  return { ops: current, runs };
}
