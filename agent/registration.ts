// A node announces itself (its Node document: address, agent endpoint, capacity) and then proves
// it is alive with a heartbeat every few seconds. Marking a silent node NotReady is the Node
// controller's job; the agent only ever says Ready. The registrar is an interface so a remote
// agent can register through the facade instead of holding store credentials.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { InvalidArgumentError, isN0Error } from '../api/errors';
import { KVM_CONDITION, setCondition } from '../api/conditions';
import { logger } from '../api/log';
import type { Store } from '../api/store/store';
import { renewLease } from '../api/lease';
import { ANNOTATIONS, API_VERSION, type Condition, type Node, type NodeStatus } from '../api/types';
import type { Accelerator } from './drivers/types';
import type { AcceleratorProbe } from './drivers/accel-probe';

const log = logger('registration');

export interface NodeRegistrar {
  /** Create-or-update the Node: spec and annotations from `node`, then its status. */
  register(node: Node): Promise<void>;
  /** Merge `status` into the Node's status (conditions by type); other status fields are kept. */
  heartbeat(name: string, status: Partial<NodeStatus>): Promise<void>;
}

export interface HostCapacity {
  cpuMilliCores: number;
  memoryBytes: number;
  storageBytes: number;
}

/** What this host lends: all CPUs, all memory, the size of the file system holding dataDir. */
export function hostCapacity(dataDir: string): HostCapacity {
  const st = fs.statfsSync(dataDir);
  return {
    cpuMilliCores: os.cpus().length * 1000,
    memoryBytes: os.totalmem(),
    storageBytes: Number(st.blocks) * Number(st.bsize),
  };
}

export interface NodeFacts {
  nodeName: string;
  /** Underlay address other nodes reach this one at. */
  address: string;
  /** host:port of this agent's gRPC service. */
  agentEndpoint: string;
  accelerator: Accelerator;
  /** The boot probe's outcome behind `accelerator`. */
  probe?: Pick<AcceleratorProbe, 'reason' | 'conditionReason' | 'kvm' | 'cpuModel'>;
  agentVersion: string;
  capacity: HostCapacity;
}

const timestamp = (now: Date) => now.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The status an alive agent reports. */
export function readyStatus(facts: Pick<NodeFacts, 'accelerator' | 'agentVersion' | 'probe'>, now = new Date()): Partial<NodeStatus> {
  const conditions: Condition[] = [{ type: 'Ready', status: 'True', reason: 'AgentHeartbeat', message: 'the node agent is posting heartbeats', lastTransitionTime: timestamp(now) }];
  if (facts.probe) {
    conditions.push({ type: KVM_CONDITION, status: facts.probe.kvm === 'works' ? 'True' : 'False', reason: facts.probe.conditionReason, message: facts.probe.reason, lastTransitionTime: timestamp(now) });
  }
  return {
    state: 'Ready',
    last_heartbeat_time: timestamp(now),
    accelerator: facts.accelerator,
    ...(facts.probe ? { accelerator_reason: facts.probe.reason, cpu_model: facts.probe.cpuModel } : {}),
    agent_version: facts.agentVersion,
    conditions,
  };
}

/** The Node document this agent registers (pure). */
export function nodeDocument(facts: NodeFacts, now = new Date()): Node {
  return {
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata: { name: facts.nodeName, annotations: { [ANNOTATIONS.agentVersion]: facts.agentVersion } },
    spec: {
      address: facts.address,
      agent_endpoint: facts.agentEndpoint,
      cpu_milli_cores: facts.capacity.cpuMilliCores,
      memory_bytes: facts.capacity.memoryBytes,
      storage_bytes: facts.capacity.storageBytes,
    },
    status: readyStatus(facts, now),
  };
}

/** Merges a reported status into the stored one; conditions keep lastTransitionTime unless they flip. */
export function mergeStatus(current: NodeStatus | undefined, update: Partial<NodeStatus>, now = new Date()): NodeStatus {
  const merged: NodeStatus = { ...(current ?? {}), ...update };
  let conditions: Condition[] | undefined = current?.conditions;
  for (const c of update.conditions ?? []) conditions = setCondition(conditions, c, undefined, now);
  if (conditions) merged.conditions = conditions;
  return merged;
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Registers and heartbeats by writing the Node document in the store directly. */
export class StoreNodeRegistrar implements NodeRegistrar {
  constructor(private readonly store: Store, private readonly options: { maxAttempts?: number } = {}) {}

  /** Runs fn again when another writer (the Node controller, an admin) won the race. */
  private async retryOnConflict<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const attempts = this.options.maxAttempts ?? 10;
    for (let i = 1; ; i++) {
      try {
        return await fn();
      } catch (err) {
        if (!isN0Error(err, 'Conflict') || i >= attempts) throw err;
        log.debug(`${what}: conflict, retrying`, { attempt: i });
        await new Promise((r) => setTimeout(r, Math.min(200, 5 * 2 ** i) * Math.random()));
      }
    }
  }

  async register(node: Node): Promise<void> {
    const name = node.metadata.name;
    await this.retryOnConflict(`register ${name}`, async () => {
      let current: Node;
      try {
        current = await this.store.get('Node', name);
      } catch (err) {
        if (!isN0Error(err, 'NotFound')) throw err;
        current = await this.store.create({ ...node, status: undefined });
        log.info('registered new node', { node: name });
      }
      // The agent owns the facts it measures; spec fields an admin sets (unschedulable, unit,
      // serial) and annotations others added are kept.
      const spec = { ...current.spec, ...node.spec };
      const annotations = { ...(current.metadata.annotations ?? {}), ...(node.metadata.annotations ?? {}) };
      const labels = { ...(current.metadata.labels ?? {}), ...(node.metadata.labels ?? {}) };
      if (!sameJson(spec, current.spec) || !sameJson(annotations, current.metadata.annotations ?? {}) || !sameJson(labels, current.metadata.labels ?? {})) {
        current = await this.store.update({ ...current, spec, metadata: { ...current.metadata, annotations, labels } });
      }
      if (node.status) await this.store.update({ ...current, status: mergeStatus(current.status, node.status) }, { subresource: 'status' });
    });
  }

  async heartbeat(name: string, status: Partial<NodeStatus>): Promise<void> {
    // Liveness is the lease's: one small write. The Node is written only when what the agent
    // reports about it changed (its accelerator, version, probe), or when it is not Ready yet.
    await renewLease(this.store, name);
    // The Node is still read on every beat (a read, not a write): a deleted Node answers NotFound
    // and the Heartbeater registers it again.
    const facts = agentFacts(status);
    await this.retryOnConflict(`heartbeat ${name}`, async () => {
      const current = await this.store.get('Node', name);
      const merged = mergeStatus(current.status, nodeNeedsReady(current) ? status : facts);
      if (!sameJson(merged, current.status)) await this.store.update({ ...current, status: merged }, { subresource: 'status' });
    });
  }
}

/** What a heartbeat says about the node other than that it is alive (the lease says that). */
export function agentFacts(status: Partial<NodeStatus>): Partial<NodeStatus> {
  const { state: _state, last_heartbeat_time: _at, conditions, ...facts } = status;
  const others = conditions?.filter((c) => c.type !== 'Ready');
  return others?.length ? { ...facts, conditions: others } : facts;
}

/**
 * A Node the heartbeat should also mark Ready: one that never was, or that the Node controller
 * marked NotReady (the controller judges readiness from the lease; this only saves a node whose
 * controller is not running from looking absent).
 */
export function nodeNeedsReady(node: Node): boolean {
  return node.status?.state !== 'Ready' || node.status?.conditions?.find((c) => c.type === 'Ready')?.status !== 'True';
}

export interface HeartbeaterOptions {
  registrar: NodeRegistrar;
  nodeName: string;
  /** Default 5 s. */
  intervalMs?: number;
  /** The status to post on each beat (called every time: fresh timestamps). */
  status: () => Partial<NodeStatus>;
  /** The Node to register again when it was deleted while the agent ran. */
  node?: () => Node;
  /** Deadline of one beat (default: twice the interval, at least 2 s). */
  timeoutMs?: number;
}

/** Posts a heartbeat every interval until the signal aborts; failures are logged, never fatal. */
export class Heartbeater {
  beats = 0;
  failures = 0;
  lastError?: Error;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;

  constructor(private readonly options: HeartbeaterOptions) {
    this.intervalMs = options.intervalMs ?? 5_000;
    this.timeoutMs = options.timeoutMs ?? Math.max(2 * this.intervalMs, 2_000);
    if (!Number.isFinite(this.intervalMs) || this.intervalMs <= 0) throw new InvalidArgumentError(`heartbeat interval ${this.intervalMs} ms must be positive`, 'intervalMs');
  }

  /** One beat, bounded so a hung store cannot stop the loop (beats never overlap: run() awaits each). */
  async beat(): Promise<void> {
    const { registrar, nodeName } = this.options;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`heartbeat did not finish within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      const attempt = registrar.heartbeat(nodeName, this.options.status()).catch(async (err) => {
        if (isN0Error(err, 'NotFound') && this.options.node) {
          log.warn('node document vanished; registering again', { node: nodeName });
          return registrar.register(this.options.node());
        }
        throw err;
      });
      await Promise.race([attempt, deadline]);
      this.beats++;
    } catch (err) {
      this.failures++;
      this.lastError = err as Error;
      log.warn('heartbeat failed', { node: nodeName, error: (err as Error).message });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves when the signal aborts (after the beat in flight, if any). */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.beat();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, this.intervalMs);
        function done() {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        }
        signal.addEventListener('abort', done);
      });
    }
  }
}
