// NodeService: hosts and their CPU/memory/storage reservations (the seed's pool API).
import { API_VERSION, type Node, type NodeSpec } from '../types';
import { InvalidArgumentError, isN0Error, NotFoundError } from '../errors';
import { validateName } from '../names';
import { deleteChecked, mutate } from '../store/mutate';
import { admitDelete } from '../admission';
import { KVM_CONDITION, setCondition } from '../conditions';
import { given, mapOrUndefined, nodeMessage, num, seedAnnotations } from './convert';
import { compact, type FacadeContext, type ServiceHandlers } from './context';
import type { ComputeRequest, StorageRequest } from '../scheduling';
import { releaseOn, renderFromStore, reserveOn, scheduleReservation } from '../placement';
import { renewLease, withLease } from '../lease';
import { NODE_RESTRICTION_PREFIX } from './auth';

/** The labels a node identity's re-registration keeps, whatever it sends (auth.ts refuses it setting them). */
const restrictedLabels = (labels: Record<string, string> | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(labels ?? {}).filter(([k]) => k.startsWith(NODE_RESTRICTION_PREFIX)));

/** At most `max` characters, never cutting one in half (a lone surrogate is not valid text). */
const clip = (value: unknown, max: number): string => Array.from(String(value)).slice(0, max).join('');

export function nodeService(ctx: FacadeContext): ServiceHandlers {
  const { store } = ctx;

  const compute = (req: any): ComputeRequest => {
    const c = {
      request_cpu_milli_core: num(req.request_cpu_milli_core),
      limit_cpu_milli_core: num(req.limit_cpu_milli_core),
      request_memory_bytes: num(req.request_memory_bytes),
      limit_memory_bytes: num(req.limit_memory_bytes),
    };
    if (c.request_cpu_milli_core > c.limit_cpu_milli_core) throw new InvalidArgumentError('request_cpu_milli_core must not exceed limit_cpu_milli_core', 'request_cpu_milli_core');
    if (c.request_memory_bytes > c.limit_memory_bytes) throw new InvalidArgumentError('request_memory_bytes must not exceed limit_memory_bytes', 'request_memory_bytes');
    return c;
  };
  const storage = (req: any): StorageRequest => {
    const s = { request_bytes: num(req.request_bytes), limit_bytes: num(req.limit_bytes) };
    if (s.request_bytes > s.limit_bytes) throw new InvalidArgumentError('request_bytes must not exceed limit_bytes', 'request_bytes');
    return s;
  };

  const reservation = (what: 'compute' | 'storage', value: ComputeRequest | StorageRequest) =>
    (what === 'compute' ? { what, value: value as ComputeRequest } : { what, value: value as StorageRequest });

  const reserve = (nodeName: string, key: string, what: 'compute' | 'storage', value: ComputeRequest | StorageRequest, annotations?: Record<string, string>) =>
    reserveOn(store, nodeName, key, reservation(what, value), annotations);

  async function release(nodeName: string, key: string, what: 'compute' | 'storage') {
    await store.get('Node', nodeName);
    try {
      await releaseOn(store, nodeName, key, what);
    } catch (err) {
      // A VM's or disk's own use is released by deleting it, not here.
      if (isN0Error(err, 'NotFound')) throw new NotFoundError(what, `${key}" on Node "${nodeName}`);
      throw err;
    }
    return {};
  }

  const schedule = (what: 'compute' | 'storage', key: string, value: ComputeRequest | StorageRequest, annotations?: Record<string, string>) =>
    scheduleReservation(store, key, reservation(what, value), annotations);


  /** Nodes as the seed shows them: reservations and allocatable rendered from what is placed (api/placement.ts), heartbeat from the lease. */
  async function rendered(nodes: Node[]): Promise<Node[]> {
    const [withUsage, leases] = await Promise.all([renderFromStore(store, nodes), store.list('NodeLease')]);
    const leaseByNode = new Map(leases.items.map((l) => [l.metadata.name, l]));
    return withUsage.map((n) => withLease(n, leaseByNode.get(n.metadata.name)));
  }

  // The seed's answer to Reserve and Schedule: the Node holding the reservation, rendered with it.
  const holder = async (nodeName: string) => nodeMessage((await rendered([await store.get('Node', nodeName)]))[0]);

  return {
    async ListNodes(req) {
      const { items } = await store.list('Node', { labelSelector: given(req.label_selector) });
      return { nodes: (await rendered(items)).map(nodeMessage) };
    },
    async GetNode(req) {
      return nodeMessage((await rendered([await store.get('Node', validateName(req.name, 'name'))]))[0]);
    },
    async ApplyNode(req, call) {
      const name = validateName(req.name, 'name');
      const spec = compact({
        address: given(req.address), agent_endpoint: given(req.agent_endpoint), serial: given(req.serial), ipmi_address: given(req.ipmi_address),
        datacenter: given(req.datacenter), availability_zone: given(req.availability_zone), cell: given(req.cell), rack: given(req.rack),
        cpu_milli_cores: given(num(req.cpu_milli_cores)), memory_bytes: given(num(req.memory_bytes)), storage_bytes: given(num(req.storage_bytes)),
        unit: given(num(req.unit)), unschedulable: req.unschedulable || undefined,
      }) as NodeSpec;
      const metadata = compact({ name, annotations: seedAnnotations(req.annotations), labels: mapOrUndefined(req.labels) });
      try {
        return nodeMessage(await store.create({ apiVersion: API_VERSION, kind: 'Node', metadata, spec } as Node));
      } catch (err) {
        if (!isN0Error(err, 'AlreadyExists')) throw err;
        return nodeMessage(await mutate(store, 'Node', name, (n) => {
          // A re-registering agent sends only what it measures: spec fields it leaves empty
          // (unschedulable, unit, serial, set by an admin) keep their values. Uncordoning is a
          // spec edit (n0ctl apply), since proto3 cannot tell "false" from "not sent".
          n.spec = { ...n.spec, ...spec };
          if (metadata.annotations) n.metadata.annotations = metadata.annotations;
          if (metadata.labels) n.metadata.labels = call.principal?.role === 'node' ? { ...metadata.labels, ...restrictedLabels(n.metadata.labels) } : metadata.labels;
        }));
      }
    },
    async HeartbeatNode(req) {
      const name = validateName(req.name, 'name');
      if (req.accelerator && !['kvm', 'tcg'].includes(req.accelerator)) throw new InvalidArgumentError(`accelerator must be kvm or tcg, got ${JSON.stringify(req.accelerator)}`, 'accelerator');
      if (req.accelerator_condition_reason && !/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(req.accelerator_condition_reason)) {
        throw new InvalidArgumentError(`accelerator_condition_reason must be a CamelCase word, got ${JSON.stringify(req.accelerator_condition_reason)}`, 'accelerator_condition_reason');
      }
      const now = new Date();
      // Liveness is the lease's (api/lease.ts); the Node is written only when the report changes it.
      const node = await mutate(store, 'Node', name, (n) => {
        const before = JSON.stringify(n.status ?? {});
        const ready = n.status?.state === 'Ready' && n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
        n.status = {
          ...n.status,
          ...(ready ? {} : { state: 'Ready', last_heartbeat_time: now.toISOString().replace(/\.\d{3}Z$/, 'Z') }),
          ...(req.accelerator ? { accelerator: req.accelerator } : {}),
          ...(req.agent_version ? { agent_version: req.agent_version } : {}),
          ...(req.accelerator_reason ? { accelerator_reason: clip(req.accelerator_reason, 4096) } : {}),
          ...(req.cpu_model ? { cpu_model: clip(req.cpu_model, 64) } : {}),
        };
        if (!ready) n.status.conditions = setCondition(n.status?.conditions, { type: 'Ready', status: 'True', reason: 'AgentHeartbeat', message: 'the node agent is posting heartbeats' }, undefined, now);
        if (req.accelerator_condition_reason) {
          n.status.conditions = setCondition(n.status.conditions, {
            type: KVM_CONDITION, status: req.kvm_usable ? 'True' : 'False',
            reason: String(req.accelerator_condition_reason), message: clip(req.accelerator_reason ?? '', 4096),
          }, undefined, now);
        }
        if (JSON.stringify(n.status) === before) return false;
      }, { subresource: 'status' });
      // After the Node's read, so an unknown node answers NOT_FOUND and gets no lease.
      // Not rendered with its reservations (that reads every VM and disk): the agent that sends
      // a heartbeat every few seconds reads nothing of the answer (HeartbeatNode is not the seed's).
      return nodeMessage(withLease(node, await renewLease(store, name, now)));
    },
    async DeleteNode(req) {
      const name = validateName(req.name, 'name');
      await deleteChecked(store, 'Node', name, (node) => admitDelete(store, node));
      return {};
    },
    // The seed's Reserve*/Schedule* answer with the Node that holds the reservation.
    async ReserveCompute(req) {
      const nodeName = validateName(req.node_name, 'node_name');
      const key = validateName(req.compute_name, 'compute_name');
      const r = await reserve(nodeName, key, 'compute', compute(req), mapOrUndefined(req.annotations));
      return holder(r.spec.node_name);
    },
    ReleaseCompute: async (req) => release(validateName(req.node_name, 'node_name'), validateName(req.compute_name, 'compute_name'), 'compute'),
    async ReserveStorage(req) {
      const nodeName = validateName(req.node_name, 'node_name');
      const key = validateName(req.storage_name, 'storage_name');
      const r = await reserve(nodeName, key, 'storage', storage(req), mapOrUndefined(req.annotations));
      return holder(r.spec.node_name);
    },
    ReleaseStorage: async (req) => release(validateName(req.node_name, 'node_name'), validateName(req.storage_name, 'storage_name'), 'storage'),
    async ScheduleCompute(req) {
      const key = validateName(req.compute_name, 'compute_name');
      const r = await schedule('compute', key, compute(req), mapOrUndefined(req.annotations));
      return holder(r.spec.node_name);
    },
    async ScheduleStorage(req) {
      const key = validateName(req.storage_name, 'storage_name');
      const r = await schedule('storage', key, storage(req), mapOrUndefined(req.annotations));
      return holder(r.spec.node_name);
    },
  };
}
