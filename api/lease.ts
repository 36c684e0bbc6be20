// Node liveness as its own small object (after KEP-589's kube-node-lease): an agent's heartbeat
// renews the NodeLease named like its Node, and the Node document is written only when something
// about the node changes. Rewriting the Node (with everything in it) on every heartbeat was the
// steady load of an idle cluster.
import { isN0Error } from './errors';
import type { Store } from './store/store';
import { API_VERSION, type Node, type NodeLease } from './types';


/** Renews (or creates) `node`'s lease at `now`: one write of a document whose size never grows. */
export async function renewLease(store: Store, node: string, now = new Date(), durationSeconds?: number): Promise<NodeLease> {
  // Milliseconds kept (Kubernetes' Lease has a MicroTime): a timeout of under a second stays exact.
  const spec = { holder_identity: node, renew_time: now.toISOString(), ...(durationSeconds ? { lease_duration_seconds: durationSeconds } : {}) };
  for (let attempt = 0; ; attempt++) {
    try {
      // A merge patch without a resourceVersion: the agent is the lease's only writer, so the
      // last renewal winning is right, and it costs one round trip.
      return await store.patch('NodeLease', node, { type: 'merge', value: { spec } });
    } catch (err) {
      if (!isN0Error(err, 'NotFound')) throw err;
    }
    try {
      return await store.create<NodeLease>({ apiVersion: API_VERSION, kind: 'NodeLease', metadata: { name: node }, spec });
    } catch (err) {
      // Two renewals racing to create it: the other one's lease exists now, patch it.
      if (!isN0Error(err, 'AlreadyExists') || attempt >= 2) throw err;
    }
  }
}

/**
 * The node's last heartbeat: its lease's renewal, or the Node's own last_heartbeat_time (written
 * at registration, and by writers that predate leases), whichever is later.
 */
export function lastHeartbeat(node: Pick<Node, 'status'>, lease: Pick<NodeLease, 'spec'> | undefined): string | undefined {
  const renewed = lease?.spec.renew_time;
  const own = node.status?.last_heartbeat_time;
  if (renewed === undefined) return own;
  if (own === undefined) return renewed;
  return Date.parse(renewed) >= Date.parse(own) || Number.isNaN(Date.parse(own)) ? renewed : own;
}

/** The Node as readers see it: last_heartbeat_time from its lease (the stored copy moves only on changes). */
export function withLease(node: Node, lease: NodeLease | undefined): Node {
  const at = lastHeartbeat(node, lease);
  return at === node.status?.last_heartbeat_time ? node : { ...node, status: { ...node.status, last_heartbeat_time: at } };
}

/** `name`'s lease, or undefined when its agent has not renewed one yet. */
export async function leaseOf(store: Store, name: string): Promise<NodeLease | undefined> {
  try {
    return await store.get('NodeLease', name);
  } catch (err) {
    if (isN0Error(err, 'NotFound')) return undefined;
    throw err;
  }
}
