// Finds the agent of a node. Controllers reach agents only through AgentApi, so the real gRPC
// client (mTLS), an in-process agent, or the simulated one for benchmarks plug in alike.
import type { AgentApi } from '../agent/api';
import { FailedPreconditionError } from '../api/errors';
import type { Cache } from './runtime/types';

export type AgentResolver = (nodeName: string) => AgentApi;

/**
 * Resolves through Node.spec.agent_endpoint, one client per node and endpoint, made by `connect`
 * (which gets the node name so a real client can insist the agent's certificate names it).
 */
export function endpointResolver(cache: () => Cache, connect: (endpoint: string, nodeName: string) => AgentApi): AgentResolver {
  const clients = new Map<string, AgentApi>();
  return (nodeName) => {
    const node = cache().get('Node', nodeName);
    const endpoint = node?.spec.agent_endpoint;
    if (!endpoint) throw new FailedPreconditionError(`Node "${nodeName}" has no agent_endpoint`);
    const key = `${nodeName}\0${endpoint}`;
    let client = clients.get(key);
    if (!client) { client = connect(endpoint, nodeName); clients.set(key, client); }
    return client;
  };
}
