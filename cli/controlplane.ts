// The composition root of the server side: wires a store, the controllers, the facade and the
// console proxy together. `n0stack up|api|controllers` and the integration tests all use it.
import type { Store } from '../api/store/store';
import { FailedPreconditionError } from '../api/errors';
import { startFacade, type Facade, type FacadeTls, type LegacyListener } from '../api/server/server';
import type { TokenAuthority } from '../api/server/auth';
import { ConsoleProxy } from '../api/server/console';
import { Gateway } from '../api/gateway';
import { AgentClient, type ClientTls } from '../agent/client';
import type { AgentApi } from '../agent/api';
import { endpointResolver, type AgentResolver } from '../controllers/agents';
import { Manager, type LeaderElector } from '../controllers/runtime/manager';
import { NodeReconciler } from '../controllers/node';
import { NetworkReconciler } from '../controllers/network';
import { BlockStorageReconciler } from '../controllers/blockstorage';
import { ImageReconciler } from '../controllers/image';
import { NetworkAddressReconciler } from '../controllers/networkaddress';
import { VirtualMachineReconciler } from '../controllers/virtualmachine';
import type { Cache } from '../controllers/runtime/types';

/**
 * Reconciles in flight per kind. Reconciles mostly wait (on agents, on the store), so more than
 * the cores: with 2, VMs queued behind each other's QEMU start (bench/vm-latency) and 1,000
 * simulated VMs ran at 26/s instead of 115/s with 16 (bench/density).
 */
export const DEFAULT_WORKERS = 8;

export interface ControllersOptions {
  store: Store;
  /** mTLS material the controllers present to agents. */
  agentTls?: ClientTls;
  /** Overrides how agents are reached (tests, the simulated agent of the benchmarks). */
  agentFor?: (endpoint: string, nodeName: string) => AgentApi;
  nodeHeartbeatTimeoutMs?: number;
  workers?: number;
  /** With several replicas: reconcile only while leading. */
  elector?: LeaderElector;
  signal: AbortSignal;
}

export interface RunningControllers {
  manager: Manager;
  agents: AgentResolver;
}

export async function startControllers(options: ControllersOptions): Promise<RunningControllers> {
  let cache: Cache | undefined;
  const connect = options.agentFor ?? ((endpoint: string, nodeName: string) => {
    if (!options.agentTls) throw new Error('controllers need agent TLS material (--pki-dir)');
    return new AgentClient({ endpoint, tls: options.agentTls, nodeName });
  });
  const agents = endpointResolver(() => {
    if (!cache) throw new Error('controllers not started');
    return cache;
  }, connect);
  const manager = new Manager({ store: options.store, workersPerKind: options.workers ?? DEFAULT_WORKERS });
  manager.register(new NodeReconciler({ heartbeatTimeoutMs: options.nodeHeartbeatTimeoutMs }));
  manager.register(new NetworkReconciler(agents));
  manager.register(new BlockStorageReconciler(agents));
  manager.register(new ImageReconciler());
  manager.register(new VirtualMachineReconciler(agents));
  manager.register(new NetworkAddressReconciler());
  await manager.start(options.signal, options.elector);
  cache = manager.cache;
  return { manager, agents };
}

export interface ApiOptions {
  store: Store;
  listen: string;
  /** The admin token. */
  token?: string;
  /** More admin/viewer tokens (`n0stack token create`). */
  tokens?: TokenAuthority;
  /** Serving certificate (and client CA for node certificates); omitted: plaintext. */
  tls?: FacadeTls;
  consoleListen?: string;
  /** ws(s)://host:port the console URLs start with, when clients reach the consoles elsewhere. */
  consolePublicUrl?: string;
  /** How consoles reach agents: a resolver (same process as the controllers) or TLS material. */
  agents?: AgentResolver;
  agentTls?: ClientTls;
  defaultWaitMs?: number;
  /** Kubernetes users whose writes the admission webhook lets through (the facade's and controllers' service accounts). */
  admissionTrustedUsers?: readonly string[];
  /** The plaintext listener for seed-era clients (`--legacy-listen`). */
  legacy?: LegacyListener;
}

/** Reaches a node's agent by reading its Node document (the facade keeps no cache). */
function storeResolver(store: Store, tls: ClientTls): (nodeName: string) => Promise<AgentApi> {
  const clients = new Map<string, AgentApi>();
  return async (nodeName) => {
    const endpoint = (await store.get('Node', nodeName)).spec.agent_endpoint;
    if (!endpoint) throw new Error(`Node "${nodeName}" has no agent_endpoint`);
    const key = `${nodeName}\0${endpoint}`;
    if (!clients.has(key)) clients.set(key, new AgentClient({ endpoint, tls, nodeName }));
    return clients.get(key)!;
  };
}

export interface RunningApi { facade: Facade; consoles?: ConsoleProxy; gateway?: Gateway; stop(): Promise<void> }

export async function startApi(options: ApiOptions): Promise<RunningApi> {
  let consoles: ConsoleProxy | undefined;
  const agents = options.agents ?? (options.agentTls ? storeResolver(options.store, options.agentTls) : undefined);
  // The REST gateway and web UI (api/gateway) are served by the console server: one HTTP side.
  let gateway: Gateway | undefined;
  if (options.consoleListen && agents) {
    consoles = new ConsoleProxy(async (node, vm, kind) => (await agents(node)).openConsole(vm, kind), {
      listen: options.consoleListen, publicUrl: options.consolePublicUrl, secrets: options.store.secrets,
      tls: options.tls ? { cert: options.tls.cert, key: options.tls.key } : undefined,
      onRequest: (req, res) => (gateway ? gateway.handle(req, res) : res.writeHead(503).end()),
      identify: (req) => gateway?.identify(req),
    });
    gateway = new Gateway({
      store: options.store, defaultWaitMs: options.defaultWaitMs ?? 10 * 60_000, consoles,
      token: options.token, tokens: options.tokens, secure: !!options.tls, admissionTrustedUsers: options.admissionTrustedUsers,
      readBlockStorage: async (node, name, signal) => {
        const agent = await agents(node);
        if (!agent.readBlockStorage) throw new FailedPreconditionError(`the agent of node ${node} reads no disk files`);
        return agent.readBlockStorage(name, signal);
      },
    });
    await consoles.start();
  }
  const facade = await startFacade({
    store: options.store, listen: options.listen, token: options.token, tokens: options.tokens, tls: options.tls,
    consoles, defaultWaitMs: options.defaultWaitMs ?? 10 * 60_000, legacy: options.legacy,
  });
  return {
    facade, consoles, gateway,
    async stop() { await facade.stop(); await gateway?.close(); await consoles?.stop(); },
  };
}
