// Network reconciler: validates the network and derives its overlay segment; bridges are made
// on a node when a VM there needs them (virtualmachine.ts) and removed everywhere on delete —
// once no interface is reserved on it and no VM names it (its finalizer is its protection,
// whichever entrance deleted it).
import type { Network, VirtualMachine } from '../api/types';
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
  ] as Reconciler['indexes'];
  // A VM going away may be what a deleting Network waits for.
  readonly watches = [
    { kind: 'VirtualMachine' as const, map: (obj: any, cache: any) => [...new Set(((obj as VirtualMachine).spec.nics ?? []).map((n) => n.network_name))].filter((n) => !!cache.get('Network', n)?.metadata.deletionTimestamp) },
  ];
  private readonly log = logger('network-controller');
  constructor(private readonly agents: AgentResolver) {}

  async reconcile(name: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    const net = await getWithFinalizer(ctx, 'Network', name, FINALIZERS.network);
    if (!net) return {};
    if (net.metadata.deletionTimestamp) return this.finalize(net, ctx);
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

  private async finalize(net: Network, ctx: ReconcileContext): Promise<ReconcileResult> {
    // Reservations are read fresh (net came from the store). VMs the cache names are confirmed
    // there, so a VM just gone does not make the delete look held; when the cache names none the
    // store is asked, so a VM created a moment ago is not missed.
    const cachedVms = ctx.cache.byIndex('VirtualMachine', BY_NETWORK, net.metadata.name);
    const vms = cachedVms.length
      ? (await Promise.all(cachedVms.map((vm) => ctx.store.get('VirtualMachine', vm.metadata.name).catch((err) => {
        if (isN0Error(err, 'NotFound')) return undefined;
        throw err;
      })))).filter((vm): vm is VirtualMachine => vm !== undefined)
      : (await ctx.store.list('VirtualMachine')).items;
    const dependants = strategyFor('Network').dependants(net, { blockStorages: [], virtualMachines: vms });
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
