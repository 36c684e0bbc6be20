// Network reconciler: validates the network and derives its overlay segment; bridges are made
// on a node when a VM there needs them (virtualmachine.ts) and removed everywhere on delete —
// once no address is lent from it and no VM names it (its finalizer is its protection,
// whichever entrance deleted it). A Network stored by the previous version, which listed every
// NIC in status.reserved_network_interfaces, has the list turned into NetworkAddress objects here.
import { isDeepStrictEqual } from 'node:util';
import type { Network, NetworkAddress, VirtualMachine } from '../api/types';
import { addressObject, FAMILIES, heldBy, listAddresses, seedHolder, vmHolder, type Holder, type InterfaceReservation } from '../api/addresses';
import { VM_RESERVED_BY } from '../api/placement';
import { ADDRESS_INDEXES, ADDRESSES_OF_NETWORK } from './addresses';
import { isN0Error } from '../api/errors';
import { setCondition } from '../api/conditions';
import { checkNetworkSpec, segmentId } from '../api/ipam';
import { mutate } from '../api/store/mutate';
import { DELETION_BLOCKED, describeDependants, FINALIZERS, strategyFor } from '../api/admission';
import type { AgentResolver } from './agents';
import { getWithFinalizer } from './runtime/finalizer';
import type { ReconcileContext, ReconcileResult, Reconciler } from './runtime/types';
import { logger } from '../api/log';

const BY_NETWORK = 'vm-by-network-protection';

export class NetworkReconciler implements Reconciler<'Network'> {
  readonly kind = 'Network' as const;
  readonly indexes = [
    { kind: 'VirtualMachine' as const, name: BY_NETWORK, keys: (vm: VirtualMachine) => [...new Set((vm.spec.nics ?? []).map((n) => n.network_name))] },
    ...ADDRESS_INDEXES,
  ] as Reconciler['indexes'];
  // A VM or an address going away may be what a deleting Network waits for.
  readonly watches = [
    { kind: 'VirtualMachine' as const, map: (obj: any, cache: any) => [...new Set(((obj as VirtualMachine).spec.nics ?? []).map((n) => n.network_name))].filter((n) => !!cache.get('Network', n)?.metadata.deletionTimestamp) },
    { kind: 'NetworkAddress' as const, map: (obj: any, cache: any) => [(obj as NetworkAddress).spec.network_name].filter((n) => !!cache.get('Network', n)?.metadata.deletionTimestamp) },
  ];
  private readonly log = logger('network-controller');
  constructor(private readonly agents: AgentResolver) {}

  async reconcile(name: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    const net = await getWithFinalizer(ctx, 'Network', name, FINALIZERS.network);
    if (!net) return {};
    if (net.metadata.deletionTimestamp) return this.finalize(net, ctx);
    if (net.status?.reserved_network_interfaces) await this.migrate(net, ctx);
    const generation = net.metadata.generation ?? 1;
    let problem: string | undefined;
    try { checkNetworkSpec(net.spec, net.metadata.annotations); } catch (err) { problem = (err as Error).message; }
    await mutate(ctx.store, 'Network', name, (n) => {
      n.status ??= {};
      const before = JSON.stringify(n.status);
      n.status.observedGeneration = generation;
      n.status.state = problem ? 'FAILED' : 'AVAILABLE';
      if (!problem) n.status.segment_id = segmentId(n);
      n.status.conditions = setCondition(n.status.conditions, problem
        ? { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: problem }
        : { type: 'Ready', status: 'True', reason: 'Available', message: `segment ${n.status.segment_id}` }, generation);
      return JSON.stringify(n.status) !== before;
    }, { subresource: 'status' });
    return {};
  }

  /**
   * Turns the previous version's list into NetworkAddress objects (create-if-absent: a pass that
   * died half-way creates the rest), then removes the list — only as it was read, so nothing
   * written meanwhile is lost. A VM's entry is held by that VM (by its uid now); one whose VM is
   * gone has nothing to hold it.
   */
  private async migrate(net: Network, ctx: ReconcileContext): Promise<void> {
    const name = net.metadata.name;
    const legacy = net.status!.reserved_network_interfaces!;
    const field = { mac: 'hardware_address', ipv4: 'ipv4_address', ipv6: 'ipv6_address' } as const;
    for (const [key, r] of Object.entries(legacy)) {
      const holder = await this.legacyHolder(key, r, ctx);
      if (!holder) continue;
      for (const family of FAMILIES) {
        const text = r[field[family]];
        if (!text) continue;
        const doc = addressObject(name, family, text, holder, holder.vm ? undefined : r.annotations);
        try {
          await ctx.store.create(doc);
        } catch (err) {
          if (!isN0Error(err, 'AlreadyExists')) throw err;
          const existing = await ctx.store.get('NetworkAddress', doc.metadata.name);
          if (!heldBy(existing, holder)) this.log.warn(`migrating network ${name}: ${key}'s ${text} is held by ${existing.spec.holder_key}; ${key} loses it`);
        }
      }
    }
    await mutate(ctx.store, 'Network', name, (n) => {
      if (!n.status?.reserved_network_interfaces || !isDeepStrictEqual(n.status.reserved_network_interfaces, legacy)) return false;
      delete n.status.reserved_network_interfaces;
    }, { subresource: 'status' });
    this.log.info(`network ${name}: ${Object.keys(legacy).length} reserved interfaces migrated to NetworkAddress objects`);
  }

  private async legacyHolder(key: string, r: InterfaceReservation, ctx: ReconcileContext): Promise<Holder | undefined> {
    const vmName = r.annotations?.[VM_RESERVED_BY];
    const index = vmName !== undefined && key.startsWith(`${vmName}.`) ? Number(key.slice(vmName.length + 1)) : NaN;
    if (!Number.isInteger(index)) return seedHolder(key);
    const vm = ctx.cache.get('VirtualMachine', vmName!) ?? await ctx.store.get('VirtualMachine', vmName!).catch((err) => {
      if (isN0Error(err, 'NotFound')) return undefined;
      throw err;
    });
    return vm ? vmHolder(vm, index) : undefined;
  }

  private async finalize(net: Network, ctx: ReconcileContext): Promise<ReconcileResult> {
    // Addresses: the cache's, or the store's when the cache shows none (one created a moment ago
    // is not missed). VMs the cache names are confirmed
    // there, so a VM just gone does not make the delete look held; when the cache names none the
    // store is asked, so a VM created a moment ago is not missed.
    const cachedVms = ctx.cache.byIndex('VirtualMachine', BY_NETWORK, net.metadata.name);
    const vms = cachedVms.length
      ? (await Promise.all(cachedVms.map((vm) => ctx.store.get('VirtualMachine', vm.metadata.name).catch((err) => {
        if (isN0Error(err, 'NotFound')) return undefined;
        throw err;
      })))).filter((vm): vm is VirtualMachine => vm !== undefined)
      : (await ctx.store.list('VirtualMachine')).items;
    const cachedAddresses = ctx.cache.byIndex('NetworkAddress', ADDRESSES_OF_NETWORK, net.metadata.name);
    const networkAddresses = cachedAddresses.length ? cachedAddresses : await listAddresses(ctx.store, net.metadata.name);
    const dependants = strategyFor('Network').dependants(net, { blockStorages: [], virtualMachines: vms, networkAddresses });
    const waiting = net.status?.conditions?.find((c) => c.type === 'Ready')?.reason === DELETION_BLOCKED;
    // Once per deletion: a pass after the first finds the network waiting (or it is gone).
    if (!waiting) ctx.events?.normal(net, 'Deleting', `deleting network ${net.metadata.name}`);
    if (dependants.length) {
      const message = `deletion waits for ${describeDependants(dependants)}`;
      // The spec may have changed since the delete; deletion wins, and saying so is observing it.
      const generation = net.metadata.generation ?? 1;
      await mutate(ctx.store, 'Network', net.metadata.name, (n) => {
        n.status ??= {};
        const before = JSON.stringify([n.status.conditions, n.status.observedGeneration]);
        n.status.observedGeneration = generation;
        n.status.conditions = setCondition(n.status.conditions, { type: 'Ready', status: 'False', reason: DELETION_BLOCKED, message }, generation);
        return JSON.stringify([n.status.conditions, n.status.observedGeneration]) !== before;
      }, { subresource: 'status' });
      if (!waiting) ctx.events?.normal(net, DELETION_BLOCKED, message);
      return { requeueAfterMs: 5000 };
    }
    for (const node of ctx.cache.list('Node')) {
      if (node.status?.state !== 'Ready') continue;
      await this.agents(node.metadata.name).deleteNetwork(net.metadata.name);
    }
    await mutate(ctx.store, 'Network', net.metadata.name, (n) => {
      n.metadata.finalizers = (n.metadata.finalizers ?? []).filter((f) => f !== FINALIZERS.network);
    }).catch((err) => { if (!isN0Error(err, 'NotFound')) throw err; });
    this.log.info(`network ${net.metadata.name} deleted`);
    return {};
  }
}
