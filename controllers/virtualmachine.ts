// VirtualMachine reconciler. Each step is idempotent and its result is recorded before the next,
// so a controller killed at any line converges on restart without doubling anything:
//   place + reserve compute -> claim block storages -> reserve interfaces -> networks on the node
//   -> QEMU via the agent -> act on intents (run_state, action_request) -> report.
// Deletion undoes it in reverse order, then drops the finalizer.
import { randomUUID } from 'node:crypto';
import type { Network, VirtualMachine, VirtualMachineStatus } from '../api/types';
import { isN0Error } from '../api/errors';
import { setCondition, type ConditionInput } from '../api/conditions';
import { checkVirtualMachineSpec } from '../api/rules';
import { prefixLength, segmentId } from '../api/ipam';
import { nicKey, releaseAddresses, reserveAddresses, vmHolder } from '../api/addresses';
import { ADDRESS_INDEXES, ADDRESSES_OF_NETWORK, AddressBook } from './addresses';
import { mutate } from '../api/store/mutate';
import { FINALIZERS } from '../api/server/context';
import type { AgentResolver } from './agents';
import type { VmNic, VmObservation } from '../agent/api';
import { commitPlacement, placeAndRecord, type PlacementRecord, type Reservation } from '../api/placement';
import { cacheView, USAGE_INDEXES } from './usage';
import { setUser } from './blockstorage';
import { commitRaise } from './resize';
import { getWithFinalizer } from './runtime/finalizer';
import { sleep } from './runtime/sleep';
import type { AuditContext, Cache, IndexSpec, ReconcileContext, ReconcileResult, Reconciler } from './runtime/types';
import { logger } from '../api/log';
import { observeFirstRunning } from './metrics';
import { recordTransition, type TransitionEvents } from './runtime/events';

/**
 * How often the controller asks every node's agent which VMs run (one cheap call per node) and
 * reconciles only the VMs whose state differs. Reconciling every VM on a timer instead cost 333
 * reconciles/s at 10,000 VMs, idle.
 */
const AUDIT_MS = 10_000;
/** How often the set of agent event streams is matched to the Ready nodes. */
const WATCH_PASS_MS = 1_000;

/** Consecutive failed starts after which a VM is in a crash loop (and waiting RPCs give up). */
export const CRASH_LOOP_AFTER = 3;
const RESTART_BACKOFF_BASE_MS = 2_000;
const RESTART_BACKOFF_MAX_MS = 300_000;
/** A VM that has run this long since its last start is no longer crash looping. */
const RESTART_BACKOFF_RESET_MS = 60_000;

/** After `failures` consecutive failures, wait this long before starting again (2 s, 4 s, 8 s, ... 5 min). */
export function restartBackoffMs(failures: number): number {
  return Math.min(RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_BASE_MS * 2 ** Math.max(0, failures - 1));
}

/**
 * The status of a VM whose QEMU failed (pure): the failure is counted once per QEMU instance,
 * the next start waits out the back-off, and from CRASH_LOOP_AFTER on the reason says crash loop.
 */
export function crashStatus(status: VirtualMachineStatus | undefined, obs: Pick<VmObservation, 'pid' | 'failure' | 'startedAt'>, now: number): { fields: Partial<VirtualMachineStatus>; condition: ConditionInput; retryInMs: number } {
  const instance = obs.failure?.startedAt ?? obs.startedAt ?? 'unknown';
  const counted = status?.last_failed_start === instance;
  const failures = counted ? Math.max(1, status?.start_failures ?? 1) : (status?.start_failures ?? 0) + 1;
  const nextStart = counted && status?.next_start_time ? Date.parse(status.next_start_time) : now + restartBackoffMs(failures);
  const retryInMs = Math.max(0, nextStart - now);
  const what = obs.failure?.message ?? 'QEMU stopped';
  const looping = failures >= CRASH_LOOP_AFTER;
  return {
    fields: { state: 'FAILED', start_failures: failures, last_failed_start: instance, next_start_time: new Date(nextStart).toISOString() },
    condition: {
      type: 'Ready', status: 'False',
      reason: looping ? 'CrashLoopBackOff' : obs.pid !== undefined ? 'GuestCrashed' : 'StartFailed',
      message: `${looping ? `crash loop: ${failures} consecutive failures; ` : ''}starting again in ${Math.ceil(retryInMs / 1000)} s: ${what}`,
    },
    retryInMs,
  };
}

/**
 * Events for the VM's Ready reasons. Failures of QEMU (StartFailed, GuestCrashed,
 * CrashLoopBackOff) are recorded where they are counted, once per QEMU instance, with QEMU's words.
 */
const EVENTS: TransitionEvents = {
  Scheduled: { type: 'Normal' }, RUNNING: { type: 'Normal', reason: 'Started' }, SHUTDOWN: { type: 'Normal', reason: 'Stopped' }, PAUSED: { type: 'Normal', reason: 'Paused' },
  ...Object.fromEntries(['Unschedulable', 'BlockStorageNotFound', 'BlockStorageInUse', 'NetworkNotFound', 'NetworkFull', 'AddressConflict', 'InvalidSpec', 'NodeNotReady', 'AgentUnavailable', 'Crashed']
    .map((r) => [r, { type: 'Warning' as const }])),
};

export { nicKey };

const STATE_OF: Record<VmObservation['runState'], NonNullable<VirtualMachineStatus['state']>> = {
  running: 'RUNNING', paused: 'PAUSED', shutdown: 'SHUTDOWN', crashed: 'FAILED', unknown: 'UNKNOWN',
};

class StepFailure extends Error {
  constructor(readonly reason: string, message: string, readonly retryMs = 10_000) { super(message); }
}

/** Applies status fields and a condition to `vm`; true when that changed its status. */
function withStatus(vm: VirtualMachine, generation: number, fields: Partial<VirtualMachineStatus>, condition: ConditionInput): boolean {
  vm.status ??= {};
  const before = JSON.stringify(vm.status);
  for (const [k, val] of Object.entries(fields)) {
    if (val === undefined) delete (vm.status as Record<string, unknown>)[k]; else (vm.status as Record<string, unknown>)[k] = val;
  }
  vm.status.observedGeneration = generation;
  vm.status.conditions = setCondition(vm.status.conditions, condition, generation);
  return JSON.stringify(vm.status) !== before;
}

const INDEX = { byBlockStorage: 'vm-by-block-storage', byNode: 'vm-by-node', byNetwork: 'vm-by-network' } as const;

/** The resourceVersion as a number, or NaN (then nothing counts as seen). */
const revisionOf = (obj: { metadata: { resourceVersion?: string } }): number => (/^\d+$/.test(obj.metadata.resourceVersion ?? '') ? Number(obj.metadata.resourceVersion) : NaN);

/** Per object name, the newest resourceVersion seen; `has` is true for that version and older ones. */
class SeenVersions {
  private readonly newest = new Map<string, number>();
  saw(obj: { metadata: { name: string; resourceVersion?: string } } | undefined): void {
    if (!obj) return;
    const rv = revisionOf(obj);
    if (Number.isFinite(rv) && rv > (this.newest.get(obj.metadata.name) ?? -1)) this.newest.set(obj.metadata.name, rv);
  }
  has(obj: { metadata: { name: string; resourceVersion?: string } }): boolean {
    const seen = this.newest.get(obj.metadata.name);
    return seen !== undefined && revisionOf(obj) <= seen;
  }
  forget(name: string): void { this.newest.delete(name); }
}

export class VirtualMachineReconciler implements Reconciler<'VirtualMachine'> {
  readonly kind = 'VirtualMachine' as const;
  private readonly log = logger('vm-controller');
  /**
   * A pass that converged need not run again for news it made itself. Each VM's own status writes
   * (placement record, Running), its finalizer and its disk claim came back as events and queued
   * the whole pass again, agent calls included (ensureNetwork, ensureVm). So: VM versions a pass
   * started from or wrote; VMs whose last pass in this term converged; and VMs something else
   * asked about since (a watched kind, the audit). A queued VM whose cached version is one a
   * converged pass knew, and that nobody else asked about, is done. The check is made when the
   * pass would start, not when the event comes, because an own write's event may come before
   * the write's answer. A new term (ctx.signal) forgets every verdict.
   */
  private readonly seenVms = new SeenVersions();
  private readonly converged = new Set<string>();
  private readonly nudged = new Set<string>();
  private term: AbortSignal | undefined;
  /** Disk -> the VM whose pass claimed it: the claim, and the disk controller's answer to it, are no news to that VM. */
  private readonly claimedBy = new Map<string, string>();
  private nudge(names: string[]): string[] {
    for (const n of names) this.nudged.add(n);
    return names;
  }
  readonly watches = [
    // A VM waiting for its disks wakes up when they become available; a VM's own claim of a disk
    // is no news to that VM (other VMs naming the disk still hear of it).
    { kind: 'BlockStorage' as const, map: (bs: any, cache: Cache) => {
      const names = cache.byIndex('VirtualMachine', INDEX.byBlockStorage, bs.metadata.name).map((vm) => vm.metadata.name);
      // Held now as its claim left it (IN_USE by the claimer, not protected, not being deleted):
      // the claimer's pass has nothing to do about it. Judged on the cached disk, as this map is
      // also called with the state before the change (the unclaimed disk).
      const holder = this.claimedBy.get(bs.metadata.name);
      const now = cache.get('BlockStorage', bs.metadata.name) ?? bs;
      const asClaimed = holder !== undefined && now.status?.in_use_by === holder && now.status.state === 'IN_USE' && !now.metadata.deletionTimestamp && !now.spec?.protected;
      return this.nudge(asClaimed ? names.filter((n) => n !== holder) : names);
    } },
    // A node that stops being Ready makes its VMs' state unknown. Heartbeats of a Ready node
    // change its document every few seconds and must not requeue its VMs (at 100 nodes that was
    // ~150 useless reconciles/s); VMs waiting on a NotReady node poll until it is back. A node
    // joining or leaving the overlay (Ready or address changed) changes every VM's VXLAN peers.
    { kind: 'Node' as const, map: (node: any, cache: Cache, old?: any) => this.nudge([
      ...(node.status?.state === 'Ready' ? [] : cache.byIndex('VirtualMachine', INDEX.byNode, node.metadata.name)),
      ...(old && ((old.status?.state === 'Ready') !== (node.status?.state === 'Ready') || old.spec.address !== node.spec.address) ? cache.list('VirtualMachine') : []),
    ].map((vm) => vm.metadata.name)) },
    // A Network's spec change (a gateway address goes onto every node's bridge) reaches its VMs;
    // its status writes do not (addresses are NetworkAddress objects, not Network writes).
    { kind: 'Network' as const, map: (net: any, cache: Cache, old?: any) => this.nudge(old && (old.metadata.generation ?? 1) !== (net.metadata.generation ?? 1)
      ? cache.byIndex('VirtualMachine', INDEX.byNetwork, net.metadata.name).map((vm) => vm.metadata.name) : []) },
  ];
  readonly indexes: IndexSpec[] = [
    { kind: 'VirtualMachine', name: INDEX.byBlockStorage, keys: (vm) => (vm as VirtualMachine).spec.block_storage_names ?? [] },
    { kind: 'VirtualMachine', name: INDEX.byNode, keys: (vm) => { const node = (vm as VirtualMachine).status?.node_name; return node ? [node] : []; } },
    { kind: 'VirtualMachine', name: INDEX.byNetwork, keys: (vm) => [...new Set(((vm as VirtualMachine).spec.nics ?? []).map((n) => n.network_name))] },
    ...USAGE_INDEXES,
    ...ADDRESS_INDEXES,
  ];
  readonly audit = { everyMs: AUDIT_MS, run: (ctx: AuditContext) => this.auditNodes(ctx) };
  readonly sources = (ctx: AuditContext) => this.watchAgents(ctx);
  private readonly addresses = new AddressBook();
  constructor(private readonly agents: AgentResolver) {}

  /**
   * Keeps one VM event stream open to every Ready node's agent while leading, and reconciles a VM
   * the moment its agent says it changed by itself (a guest stopped on a KVM internal error or a
   * panic, QEMU exited): seconds matter to whoever waits on it. A stream that breaks is opened
   * again on the next pass; the audit covers what happened in between.
   */
  private async watchAgents(ctx: AuditContext): Promise<void> {
    const streams = new Map<string, { endpoint: string; stop: AbortController }>();
    while (!ctx.signal.aborted) {
      const ready = new Map(ctx.cache.list('Node').filter((n) => n.status?.state === 'Ready' && n.spec.agent_endpoint).map((n) => [n.metadata.name, n.spec.agent_endpoint!]));
      for (const [node, s] of streams) {
        if (ready.get(node) !== s.endpoint) { s.stop.abort(); streams.delete(node); }
      }
      for (const [node, endpoint] of ready) {
        if (streams.has(node)) continue;
        const stop = new AbortController();
        const entry = { endpoint, stop };
        streams.set(node, entry);
        // Stopped below when leading ends (the loop wakes on the signal).
        Promise.resolve().then(() => this.agents(node).watchVms(stop.signal, (vm) => { this.nudged.add(vm); ctx.enqueue('VirtualMachine', vm); }))
          .catch((err: Error) => this.log.debug(`cannot watch the VMs of node ${node}`, { error: err.message }))
          .finally(() => { if (streams.get(node) === entry) streams.delete(node); });
      }
      await sleep(WATCH_PASS_MS, ctx.signal);
    }
    for (const s of streams.values()) s.stop.abort();
  }

  /**
   * Finds the VMs whose QEMU no longer matches their status although no document changed: one
   * that crashed, stopped or vanished. One ListVms per Ready node.
   */
  private async auditNodes(ctx: AuditContext): Promise<void> {
    const requeue = (vms: VirtualMachine[]) => { for (const vm of vms) { this.nudged.add(vm.metadata.name); ctx.enqueue('VirtualMachine', vm.metadata.name); } };
    for (const node of ctx.cache.list('Node').filter((n) => n.status?.state === 'Ready')) {
      if (ctx.signal.aborted) return;
      const vms = ctx.cache.byIndex('VirtualMachine', INDEX.byNode, node.metadata.name).filter((vm) => !vm.metadata.deletionTimestamp);
      if (vms.length === 0) continue;
      let observed: Map<string, VmObservation>;
      try {
        observed = new Map((await this.agents(node.metadata.name).listVms()).map((o) => [o.name, o]));
      } catch (err) {
        // Their reconciles will say what is wrong with the agent (AgentUnavailable).
        this.log.warn(`audit: cannot list the VMs on node ${node.metadata.name}`, { error: (err as Error).message });
        requeue(vms);
        continue;
      }
      requeue(vms.filter((vm) => {
        const o = observed.get(vm.metadata.name);
        return !o?.present || STATE_OF[o.runState] !== vm.status?.state;
      }));
    }
  }

  async reconcile(name: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    if (ctx.signal !== this.term) { this.term = ctx.signal; this.converged.clear(); }
    const nudged = this.nudged.delete(name);
    const cached = ctx.cache.get('VirtualMachine', name);
    if (!nudged && cached && this.converged.has(name) && this.seenVms.has(cached)) return {};
    this.converged.delete(name);
    const vm = await getWithFinalizer(ctx, 'VirtualMachine', name, FINALIZERS.virtualMachine);
    if (!vm) { this.seenVms.forget(name); return {}; }
    this.seenVms.saw(vm);
    if (vm.metadata.deletionTimestamp) return this.finalize(vm, ctx);
    const generation = vm.metadata.generation ?? 1;
    try {
      const result = await this.converge(vm, ctx, generation);
      if (!result.requeueAfterMs) this.converged.add(name);
      return result;
    } catch (err) {
      if (err instanceof StepFailure) {
        await this.setStatus(ctx, name, generation, {}, { type: 'Ready', status: 'False', reason: err.reason, message: err.message });
        return { requeueAfterMs: err.retryMs };
      }
      if (isN0Error(err, 'Unavailable') || (err as { code?: number }).code === 14) {
        await this.setStatus(ctx, name, generation, { state: 'UNKNOWN' }, { type: 'Ready', status: 'Unknown', reason: 'AgentUnavailable', message: (err as Error).message });
      }
      throw err;
    }
  }

  private async converge(vm: VirtualMachine, ctx: ReconcileContext, generation: number): Promise<ReconcileResult> {
    const name = vm.metadata.name;
    try { checkVirtualMachineSpec(vm.spec); } catch (err) { throw new StepFailure('InvalidSpec', (err as Error).message, 60_000); }

    // 1. Disks must exist and be ready; they decide the node.
    const disks = [];
    for (const bsName of vm.spec.block_storage_names ?? []) {
      // The cache is enough to judge (a stale copy only delays: the disk's next event requeues
      // this VM, and the claim below is a CAS on the stored object); a disk created a moment ago
      // may not be cached yet.
      const bs = ctx.cache.get('BlockStorage', bsName) ?? await ctx.store.get('BlockStorage', bsName).catch((err) => {
        if (isN0Error(err, 'NotFound')) throw new StepFailure('BlockStorageNotFound', `BlockStorage "${bsName}" does not exist`);
        throw err;
      });
      const user = bs.status?.in_use_by || bs.spec.claimed_by;
      if (user && user !== name) throw new StepFailure('BlockStorageInUse', `BlockStorage "${bsName}" is IN_USE by ${user}`);
      // Admission refuses a new VM naming a disk in deletion, but a store write (kubectl) or a
      // delete after the VM was created gets here: a disk on its way out is not claimed anew.
      if (bs.metadata.deletionTimestamp && bs.status?.in_use_by !== name) throw new StepFailure('BlockStorageBeingDeleted', `block_storage_names: BlockStorage "${bsName}" is being deleted`, 30_000);
      if (bs.spec.protected) throw new StepFailure('BlockStorageInUse', `BlockStorage "${bsName}" is PROTECTED`);
      if (!bs.status?.node_name || !['AVAILABLE', 'IN_USE'].includes(bs.status.state ?? '')) {
        throw new StepFailure('WaitingForBlockStorage', `BlockStorage "${bsName}" is ${bs.status?.state ?? 'PENDING'}`, 2000);
      }
      disks.push(bs);
    }

    // 2. Place (where the disks are; pinned by the seed's annotation), once: record the node in
    // status, then commit it against the node's placement counter (api/placement.ts).
    let nodeName = vm.status?.node_name;
    /** The VM as this pass's placement record wrote it (so step 6 need not read it again). */
    let recorded: VirtualMachine | undefined;
    const reservation: Reservation & { what: 'compute' } = { what: 'compute', value: {
      request_cpu_milli_core: vm.spec.request_cpu_milli_core ?? vm.spec.limit_cpu_milli_core, limit_cpu_milli_core: vm.spec.limit_cpu_milli_core,
      request_memory_bytes: vm.spec.request_memory_bytes ?? vm.spec.limit_memory_bytes, limit_memory_bytes: vm.spec.limit_memory_bytes,
    } };
    const unplace = () => this.setStatus(ctx, name, generation, { node_name: undefined, state: 'PENDING' }, { type: 'Ready', status: 'False', reason: 'Unschedulable', message: 'the placement was refused; placing again' });
    try {
      if (!nodeName) {
        nodeName = await placeAndRecord(ctx.store, cacheView(ctx), name, reservation, {
          record: async (n): Promise<PlacementRecord> => {
            // Written onto the copy read at the top of this reconcile; a newer stored one is a
            // conflict, and mutate reads it then.
            const written = await this.setStatus(ctx, name, generation, { node_name: n, uuid: vm.spec.uuid ?? randomUUID(), state: 'PENDING', allocated_compute: reservation.value }, { type: 'Ready', status: 'False', reason: 'Scheduled', message: `placed on node ${n}` }, undefined, recorded ?? vm);
            if (!written) throw new StepFailure('Deleted', `virtual machine ${name} is gone`);
            recorded = written;
            return { kind: 'VirtualMachine', key: name, resourceVersion: written.metadata.resourceVersion!, reservation };
          },
          undo: async () => { await unplace(); },
        }, {
          pinnedNode: vm.spec.node_name, pinnedField: vm.spec.node_name ? 'node_name' : undefined,
          blockStorages: disks.map((d) => ({ name: d.metadata.name, nodeName: d.status!.node_name })),
        });
      } else if (vm.status?.conditions?.find((c) => c.type === 'Ready')?.reason === 'Scheduled') {
        // Recorded by a pass that may have stopped before its commit: commit (a no-op when done).
        try {
          await commitPlacement(ctx.store, cacheView(ctx), nodeName, { kind: 'VirtualMachine', key: name, resourceVersion: vm.metadata.resourceVersion!, reservation });
        } catch (err) {
          if (isN0Error(err, 'FailedPrecondition')) await unplace();
          throw err;
        }
      } else {
        await commitRaise(ctx, vm, nodeName, reservation);
      }
    } catch (err) {
      if (isN0Error(err, 'FailedPrecondition')) throw new StepFailure('Unschedulable', (err as Error).message, 15_000);
      throw err;
    }
    const node = ctx.cache.get('Node', nodeName) ?? await ctx.store.get('Node', nodeName);
    if (node.status?.state !== 'Ready') {
      await this.setStatus(ctx, name, generation, { state: 'UNKNOWN' }, { type: 'Ready', status: 'Unknown', reason: 'NodeNotReady', message: `node ${nodeName} is ${node.status?.state ?? 'Unknown'}; the VM's state there is unknown` });
      return { requeueAfterMs: 5000 };
    }

    // 3. Claim the disks.
    for (const bs of disks) {
      if (bs.status?.in_use_by === name) continue;
      // Onto the copy judged above (usually the informer's, current): a stale one is a conflict.
      this.claimedBy.set(bs.metadata.name, name);
      await mutate(ctx.store, 'BlockStorage', bs.metadata.name, (b) => {
        if (b.status?.in_use_by === name) return false;
        if (b.status?.in_use_by) throw new StepFailure('BlockStorageInUse', `BlockStorage "${b.metadata.name}" is IN_USE by ${b.status.in_use_by}`);
        // Checked on the stored object too: the cached copy may predate the delete.
        if (b.metadata.deletionTimestamp) throw new StepFailure('BlockStorageBeingDeleted', `block_storage_names: BlockStorage "${b.metadata.name}" is being deleted`, 30_000);
        return setUser(b, name);
      }, { subresource: 'status', base: bs });
    }

    // 4. Reserve interfaces: each address is a NetworkAddress named by its value, created if absent
    // (api/addresses.ts), so the store refuses a duplicate; every pass after the first finds this
    // VM's (by uid) in the cache and writes nothing. A pass killed between two creates leaves
    // objects the next pass finds as its own.
    const nics: (VmNic & { tap?: string })[] = [];
    const networks: Network[] = [];
    const view = this.addresses.view(ctx.cache);
    for (const [i, nic] of (vm.spec.nics ?? []).entries()) {
      const request = { hardware_address: nic.hardware_address, ipv4_address: nic.ipv4_address, ipv6_address: nic.ipv6_address };
      let r;
      let net: Network;
      try {
        net = ctx.cache.get('Network', nic.network_name) ?? await ctx.store.get('Network', nic.network_name);
        // Checked on every pass: a VM placed before the Network's delete keeps its addresses, a new one gets none.
        r = await reserveAddresses(ctx.store, view, net, vmHolder(vm, i), request, `nics[${i}]`, { recorded: vm.status?.nics?.[i] });
      } catch (err) {
        if (isN0Error(err, 'NotFound')) throw new StepFailure('NetworkNotFound', `nics[${i}]: Network "${nic.network_name}" does not exist`);
        if (isN0Error(err, 'FailedPrecondition')) throw new StepFailure((err as Error).message.includes('no free') ? 'NetworkFull' : 'AddressConflict', (err as Error).message, 30_000);
        if (isN0Error(err, 'InvalidArgument')) throw new StepFailure('InvalidSpec', (err as Error).message, 60_000);
        throw err;
      }
      networks.push(net);
      nics.push({
        networkName: nic.network_name, hardwareAddress: r.hardware_address!, ipv4Address: r.ipv4_address,
        ipv4PrefixLength: net.spec.ipv4_cidr ? prefixLength(net.spec.ipv4_cidr) : undefined, ipv4Gateway: net.spec.gateway_ipv4, ipv6Address: r.ipv6_address,
      });
    }

    // 5. Networks on the node, with every other Ready node as an overlay peer.
    // Calls cancelled when the reconcile is aborted (leadership lost): a deposed leader stops at once.
    const resolved = this.agents(nodeName);
    const agent = resolved.withSignal?.(ctx.signal) ?? resolved;
    const peers = ctx.cache.list('Node').filter((n) => n.metadata.name !== nodeName && n.status?.state === 'Ready' && n.spec.address).map((n) => n.spec.address!);
    for (const net of networks) {
      await agent.ensureNetwork({ name: net.metadata.name, segmentId: segmentId(net), peers, gatewayCidr: net.spec.gateway_ipv4 && net.spec.ipv4_cidr ? `${net.spec.gateway_ipv4}/${prefixLength(net.spec.ipv4_cidr)}` : undefined });
    }

    // 6. The VM itself, then one-shot actions.
    // Re-read only after this pass placed the VM (it wrote status.uuid); any other change since
    // the read at the top requeues this VM anyway.
    const fresh = vm.status?.node_name ? vm : recorded ?? await ctx.store.get('VirtualMachine', name);
    this.seenVms.saw(fresh);
    const pending = fresh.spec.action_request && fresh.spec.action_request.id !== fresh.status?.last_action_id ? fresh.spec.action_request : undefined;
    const runState = fresh.spec.run_state ?? 'RUNNING';
    // A crashed VM waits out its back-off before the agent may boot it again (ensureVm would).
    const backoffLeft = fresh.status?.state === 'FAILED' && fresh.status.next_start_time ? Date.parse(fresh.status.next_start_time) - Date.now() : 0;
    if (runState !== 'SHUTDOWN' && backoffLeft > 0 && !pending) return { requeueAfterMs: backoffLeft };
    if (pending?.action === 'HARD_SHUTDOWN') await agent.vmAction(name, 'HARD_SHUTDOWN', { id: pending.id }).catch((err) => { if (!isN0Error(err, 'NotFound')) throw err; });
    let obs = await agent.ensureVm({
      name, uuid: fresh.status?.uuid ?? fresh.spec.uuid!, vcpus: fresh.spec.limit_cpu_milli_core / 1000, memoryBytes: fresh.spec.limit_memory_bytes,
      blockStorageNames: fresh.spec.block_storage_names ?? [], nics, loginUsername: fresh.spec.login_username, loginPasswordHash: fresh.spec.login_password_hash,
      sshAuthorizedKeys: fresh.spec.ssh_authorized_keys ?? [], runState, acknowledgedFailure: fresh.status?.last_failed_start,
    }).catch((err) => {
      // The agent refusing the spec (e.g. no disk to boot from) will not change on a retry: say so
      // once, as a terminal condition, instead of backing off while a client waits.
      if (isN0Error(err, 'InvalidArgument')) throw new StepFailure('InvalidSpec', `node ${nodeName} refused the virtual machine: ${(err as Error).message}`, 60_000);
      throw err;
    });
    if (obs.runState === 'crashed' && runState !== 'SHUTDOWN') {
      const crash = crashStatus(fresh.status, obs, Date.now());
      this.log.warn(`virtual machine ${name} failed on node ${nodeName}`, { reason: crash.condition.reason, message: crash.condition.message });
      if (fresh.status?.last_failed_start !== crash.fields.last_failed_start) {
        const what = obs.failure?.message ?? 'QEMU stopped';
        ctx.events?.warning(fresh, crash.condition.reason!, crash.condition.reason === 'CrashLoopBackOff' ? `back-off restarting the failed virtual machine: ${what}` : what);
      }
      await this.setStatus(ctx, name, fresh.metadata.generation ?? generation, { ...crash.fields, accelerator: obs.accelerator }, crash.condition, fresh);
      return { requeueAfterMs: Math.max(crash.retryInMs, 100) };
    }
    if (pending && (pending.action === 'REBOOT' || pending.action === 'HARD_REBOOT')) {
      // The id makes the agent do it once even if this process dies before recording last_action_id.
      obs = await agent.vmAction(name, pending.action, { id: pending.id });
    }
    const state = STATE_OF[obs.runState];
    // Forget past failures once the VM has run a while (Kubernetes resets its back-off likewise).
    const runningFor = obs.startedAt ? Date.now() - Date.parse(obs.startedAt) : 0;
    const failuresBehind = state === 'RUNNING' && (fresh.status?.start_failures ?? 0) > 0;
    const resetFailures = failuresBehind && runningFor >= RESTART_BACKOFF_RESET_MS
      ? { start_failures: undefined, next_start_time: undefined } : {};
    observeFirstRunning(fresh, state);
    await this.setStatus(ctx, name, fresh.metadata.generation ?? generation, {
      state, accelerator: obs.accelerator, ...(pending ? { last_action_id: pending.id } : {}), ...resetFailures, allocated_compute: reservation.value,
      nics: (fresh.spec.nics ?? []).map((n, i) => ({ network_name: n.network_name, hardware_address: nics[i].hardwareAddress, ipv4_address: nics[i].ipv4Address, ipv6_address: nics[i].ipv6Address })),
    }, state === runState
      ? { type: 'Ready', status: 'True', reason: state, message: `${state} on node ${nodeName}${obs.accelerator ? ` (${obs.accelerator})` : ''}` }
      : { type: 'Ready', status: 'False', reason: state === 'FAILED' ? 'Crashed' : 'Converging', message: `${state}, want ${runState}` }, fresh);
    // Converged: the agent's VM events and the audit (auditNodes) notice when it stops being so.
    if (failuresBehind && runningFor < RESTART_BACKOFF_RESET_MS) return { requeueAfterMs: RESTART_BACKOFF_RESET_MS - runningFor };
    return state === runState ? {} : { requeueAfterMs: 2000 };
  }

  /**
   * Writes `fields` and `condition` into the VM's status unless it already says so. `known` (the
   * copy this reconcile read) settles the usual drift pass, where nothing changed, without a read,
   * and fences the write: it lands only on that resourceVersion, else Conflict and a requeue.
   */
  private async setStatus(ctx: ReconcileContext, name: string, generation: number, fields: Partial<VirtualMachineStatus>, condition: ConditionInput, known?: VirtualMachine, base?: VirtualMachine): Promise<VirtualMachine | undefined> {
    if (known && !withStatus(structuredClone(known), generation, fields, condition)) return known;
    let previous: string | undefined;
    // Fenced at known's resourceVersion, a read would only confirm what the CAS checks anyway.
    const written = await mutate(ctx.store, 'VirtualMachine', name, (v) => {
      previous = v.status?.conditions?.find((c) => c.type === 'Ready')?.reason;
      return withStatus(v, generation, fields, condition);
    }, { subresource: 'status', resourceVersion: known?.metadata.resourceVersion, base: known ?? base })
      .catch((err) => { if (!isN0Error(err, 'NotFound')) throw err; });
    this.seenVms.saw(written ?? undefined);
    if (written) recordTransition(ctx.events, written, previous, condition, EVENTS);
    return written ?? undefined;
  }

  private async finalize(vm: VirtualMachine, ctx: ReconcileContext): Promise<ReconcileResult> {
    const name = vm.metadata.name;
    const nodeName = vm.status?.node_name;
    ctx.events?.normal(vm, 'Deleting', `deleting virtual machine ${name}${nodeName ? ` from node ${nodeName}` : ''}`);
    if (nodeName) await this.agents(nodeName).deleteVm(name);
    // Its addresses: those the cache shows it holding and those its status recorded (found even
    // when the cache lags); any left by a pass that died is collected once the VM is gone.
    for (const [i, nic] of (vm.spec.nics ?? []).entries()) {
      const known = ctx.cache.byIndex('NetworkAddress', ADDRESSES_OF_NETWORK, nic.network_name);
      this.addresses.forget(await releaseAddresses(ctx.store, nic.network_name, vmHolder(vm, i), known, vm.status?.nics?.[i]));
    }
    for (const bsName of vm.spec.block_storage_names ?? []) {
      await mutate(ctx.store, 'BlockStorage', bsName, (b) => {
        if (b.status?.in_use_by !== name) return false;
        return setUser(b, undefined);
      }, { subresource: 'status' }).catch((err) => { if (!isN0Error(err, 'NotFound')) throw err; });
    }
    // Its compute is released by its going: what a node gives away is derived from what is placed.
    await mutate(ctx.store, 'VirtualMachine', name, (v) => {
      v.metadata.finalizers = (v.metadata.finalizers ?? []).filter((f) => f !== FINALIZERS.virtualMachine);
    }).catch((err) => { if (!isN0Error(err, 'NotFound')) throw err; });
    this.log.info(`virtual machine ${name} deleted`);
    this.seenVms.forget(name);
    this.converged.delete(name);
    for (const bsName of vm.spec.block_storage_names ?? []) if (this.claimedBy.get(bsName) === name) this.claimedBy.delete(bsName);
    return {};
  }
}

