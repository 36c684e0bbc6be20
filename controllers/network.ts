// Network reconciler: validates the network and derives its overlay segment; bridges are made
// on a node when a VM there needs them (virtualmachine.ts) and removed everywhere on delete.
import type { Network } from '../api/types';
import { isN0Error } from '../api/errors';
import { setCondition } from '../api/conditions';
import { checkNetworkSpec, segmentId } from '../api/ipam';
import { mutate } from '../api/store/mutate';
import { FINALIZERS } from '../api/server/context';
import type { AgentResolver } from './agents';
import { getWithFinalizer } from './runtime/finalizer';
import type { ReconcileContext, ReconcileResult, Reconciler } from './runtime/types';
import { logger } from '../api/log';

export class NetworkReconciler implements Reconciler<'Network'> {
  readonly kind = 'Network' as const;
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
    const reserved = Object.keys(net.status?.reserved_network_interfaces ?? {});
    if (reserved.length) {
      await mutate(ctx.store, 'Network', net.metadata.name, (n) => {
        n.status ??= {};
        n.status.conditions = setCondition(n.status.conditions, { type: 'Ready', status: 'False', reason: 'InUse', message: `waiting for interfaces to be released: ${reserved.join(', ')}` });
      }, { subresource: 'status' });
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
