// Documents (the store's desired/observed state) rendered as the seed's proto messages
// (proto/n0stack/): the original fields, our states mapped onto the original enums
// (./wire-states.ts), and our additions in the fields numbered from 100 up.
import type { BlockStorage, Condition, Image, Kind, Network, Node, VirtualMachine } from '../types';
import { annotationsFromSeed, annotationsToSeed } from '../seed-annotations';
import { blockStorageWireState, networkWireState, nodeWireState, virtualMachineWireState } from './wire-states';

type Msg = Record<string, unknown>;

const conditions = (list: Condition[] | undefined): Msg[] =>
  (list ?? []).map((c) => ({ type: c.type, status: c.status, reason: c.reason ?? '', message: c.message ?? '', last_transition_time: c.lastTransitionTime }));

// The messages are written out field by field, without object spreads: a spread after other
// properties (`{ ...meta, a, ...state }`) goes through V8's slow generic copy, and made
// networkMessage 15x slower than this (20 µs against 1.2 µs a call, the largest share of a
// GetNetwork in the profile; ListVirtualMachines pays it per VM).

// The seed's messages show the seed's annotation keys (stored under the canonical ones).
const seedView = (doc: { kind: Kind; metadata: { annotations?: Record<string, string> } }) => annotationsToSeed(doc.kind, doc.metadata.annotations);

export function nodeMessage(node: Node): Msg {
  const s = node.spec;
  const st = node.status ?? {};
  const wire = nodeWireState(node);
  return {
    name: node.metadata.name,
    annotations: seedView(node),
    labels: node.metadata.labels ?? {},
    address: s.address ?? '',
    ipmi_address: s.ipmi_address ?? '',
    serial: s.serial ?? '',
    cpu_milli_cores: s.cpu_milli_cores ?? 0,
    memory_bytes: s.memory_bytes ?? 0,
    storage_bytes: s.storage_bytes ?? 0,
    datacenter: s.datacenter ?? '',
    availability_zone: s.availability_zone ?? '',
    cell: s.cell ?? '',
    rack: s.rack ?? '',
    unit: s.unit ?? 1,
    state: wire.state,
    exact_state: wire.exact_state,
    reserved_computes: st.reserved_computes ?? {},
    reserved_storages: st.reserved_storages ?? {},
    agent_endpoint: s.agent_endpoint ?? '',
    accelerator: st.accelerator ?? '',
    last_heartbeat_time: st.last_heartbeat_time ?? '',
    unschedulable: s.unschedulable ?? false,
    conditions: conditions(st.conditions),
  };
}

export function networkMessage(network: Network): Msg {
  const st = network.status ?? {};
  const wire = networkWireState(network);
  return {
    name: network.metadata.name,
    annotations: seedView(network),
    labels: network.metadata.labels ?? {},
    ipv4_cidr: network.spec.ipv4_cidr ?? '',
    ipv6_cidr: network.spec.ipv6_cidr ?? '',
    domain: network.spec.domain ?? '',
    state: wire.state,
    exact_state: wire.exact_state,
    reserved_network_interfaces: st.reserved_network_interfaces ?? {},
    segment_id: st.segment_id ?? 0,
    gateway_ipv4: network.spec.gateway_ipv4 ?? '',
    conditions: conditions(st.conditions),
  };
}

export function blockStorageMessage(bs: BlockStorage): Msg {
  const st = bs.status ?? {};
  const wire = blockStorageWireState(bs);
  return {
    name: bs.metadata.name,
    annotations: seedView(bs),
    labels: bs.metadata.labels ?? {},
    request_bytes: bs.spec.request_bytes,
    limit_bytes: bs.spec.limit_bytes,
    state: wire.state,
    exact_state: wire.exact_state,
    storage_name: bs.metadata.name,
    node_name: st.node_name ?? bs.spec.node_name ?? '',
    source_url: bs.spec.source_url ?? '',
    source_block_storage: bs.spec.source_block_storage ?? '',
    backing_block_storage: bs.spec.backing_block_storage ?? '',
    in_use_by: st.in_use_by ?? '',
    progress_bytes_done: st.progress?.bytes_done ?? 0,
    progress_bytes_total: st.progress?.bytes_total ?? 0,
    conditions: conditions(st.conditions),
  };
}

export function imageMessage(image: Image): Msg {
  return {
    name: image.metadata.name,
    annotations: seedView(image),
    labels: image.metadata.labels ?? {},
    registered_block_storages: (image.spec.registered_block_storages ?? []).map((r) => {
      const ms = r.registered_at ? Date.parse(r.registered_at) : 0;
      return { block_storage_name: r.block_storage_name, registered_at: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 } };
    }),
    tags: image.spec.tags ?? {},
    conditions: conditions(image.status?.conditions),
  };
}

export function virtualMachineMessage(vm: VirtualMachine): Msg {
  const s = vm.spec;
  const st = vm.status ?? {};
  const nics = (st.nics && st.nics.length ? st.nics : s.nics ?? []).map((n) => ({
    network_name: n.network_name ?? '', hardware_address: n.hardware_address ?? '', ipv4_address: n.ipv4_address ?? '', ipv6_address: n.ipv6_address ?? '',
  }));
  const wire = virtualMachineWireState(vm);
  return {
    name: vm.metadata.name,
    annotations: seedView(vm),
    labels: vm.metadata.labels ?? {},
    request_cpu_milli_core: s.request_cpu_milli_core ?? s.limit_cpu_milli_core,
    limit_cpu_milli_core: s.limit_cpu_milli_core,
    request_memory_bytes: s.request_memory_bytes ?? s.limit_memory_bytes,
    limit_memory_bytes: s.limit_memory_bytes,
    block_storage_names: s.block_storage_names ?? [],
    nics,
    uuid: st.uuid ?? s.uuid ?? '',
    state: wire.state,
    exact_state: wire.exact_state,
    compute_node_name: st.node_name ?? '',
    // The reservations' keys: the Node's reserved_computes and the Networks' interfaces.
    compute_name: st.node_name ? vm.metadata.name : '',
    network_interface_names: (st.nics ?? []).map((_, i) => `${vm.metadata.name}.${i}`),
    login_username: s.login_username ?? '',
    ssh_authorized_keys: s.ssh_authorized_keys ?? [],
    accelerator: st.accelerator ?? '',
    conditions: conditions(st.conditions),
  };
}

/** proto3 leaves absent strings empty and absent numbers 0: treat those as "not given". */
export function given<T>(value: T): T | undefined {
  if (value === '' || value === 0 || value === '0' || value === null || value === undefined) return undefined;
  if (Array.isArray(value) && value.length === 0) return undefined;
  return value;
}

/** uint64 fields arrive as numbers or decimal strings depending on the client's loader options. */
export function num(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && /^\d+$/.test(value)) return Number(value);
  if (value && typeof value === 'object' && 'toNumber' in value) return (value as { toNumber(): number }).toNumber();
  return 0;
}

export function mapOrUndefined(map: unknown): Record<string, string> | undefined {
  if (!map || typeof map !== 'object') return undefined;
  const entries = Object.entries(map as Record<string, string>);
  return entries.length ? Object.fromEntries(entries) : undefined;
}

/** A seed request's annotations, with the seed's keys translated to the canonical ones (api/seed-annotations.ts). */
export function seedAnnotations(map: unknown): Record<string, string> | undefined {
  return annotationsFromSeed(mapOrUndefined(map));
}
