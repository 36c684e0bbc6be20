// proto/agent.proto loaded at runtime, and the pure conversions between its snake_case messages
// and the camelCase types of agent/api.ts. Both the server and the client go through here, so
// the mapping is written once.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type {
  BlockStorageObservation,
  EnsureBlockStorageRequest,
  EnsureNetworkRequest,
  EnsureVmRequest,
  NodeObservation,
  VmNic,
  VmObservation,
} from './api';
import type { Accelerator, DiskInfo, NetworkState, Progress, VmRunState } from './drivers/types';

export function protoDirectory(): string {
  // Works from both the TypeScript sources (agent/) and the build (dist/agent/).
  for (const candidate of [path.resolve(__dirname, '..', 'proto'), path.resolve(__dirname, '..', '..', 'proto')]) {
    if (fs.existsSync(path.join(candidate, 'agent.proto'))) return candidate;
  }
  throw new Error(`proto/agent.proto not found near ${__dirname}`);
}

let serviceCache: grpc.ServiceClientConstructor | undefined;

/** The generic grpc service constructor of n0stack.agent.v1.Agent (its .service is the definition). */
export function agentService(): grpc.ServiceClientConstructor {
  if (serviceCache) return serviceCache;
  const definition = protoLoader.loadSync(path.join(protoDirectory(), 'agent.proto'), {
    keepCase: true,
    longs: Number,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { n0stack: { agent: { v1: { Agent: grpc.ServiceClientConstructor } } } };
  serviceCache = pkg.n0stack.agent.v1.Agent;
  return serviceCache;
}

// ---------------------------------------------------------------------------------------------
// Wire shapes (what proto-loader produces/accepts)

export interface WireProgress { phase: string; bytes_done: number; bytes_total: number }
export interface WireDiskInfo { path: string; format: string; virtual_size: number; actual_size: number; backing_file?: string }
export interface WireEnsureBlockStorageRequest {
  name: string; limit_bytes: number; source_url?: string; source_sha256?: string; copy_from?: string; backing_from?: string;
}
export interface WireBlockStorageObservation { name: string; present: boolean; in_progress?: WireProgress; error?: string; info?: WireDiskInfo }
export interface WireEnsureNetworkRequest { name: string; segment_id: number; peers: string[]; gateway_cidr?: string; vlan_id?: number }
export interface WireNetworkState { name: string; bridge_name: string; present: boolean; segment_id?: number; peers: string[]; taps: string[] }
export interface WireVmNic {
  network_name: string; hardware_address: string; ipv4_address?: string; ipv4_prefix_length?: number; ipv4_gateway?: string;
  ipv6_address?: string; ipv6_prefix_length?: number;
}
export interface WireEnsureVmRequest {
  name: string; uuid: string; vcpus: number; memory_bytes: number; block_storage_names: string[]; nics: WireVmNic[];
  login_username?: string; login_password?: string; login_password_hash?: string; ssh_authorized_keys: string[]; run_state: string;
  kernel?: string; initrd?: string; kernel_args?: string; acknowledged_failure?: string;
}
export interface WireVmObservation {
  name: string; present: boolean; run_state: string; pid?: number; accelerator?: string; uuid?: string;
  started_at?: string; failure_message?: string; failure_started_at?: string;
}
export interface WireNodeObservation {
  node_name: string; accelerator: string; agent_version: string;
  block_storages: WireBlockStorageObservation[]; networks: WireNetworkState[]; vms: WireVmObservation[];
}
export interface WireConsoleInput { open?: { vm_name: string; kind: string }; data?: Buffer; input?: 'open' | 'data' }
export interface WireConsoleOutput { data: Buffer; opened: boolean }

/** Drops undefined so the encoder never sees them, and maps '' of optional strings to unset. */
function opt<T>(value: T | undefined | null): T | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string' && value === '') return undefined;
  return value;
}

function compact<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

// ---------------------------------------------------------------------------------------------

export const progressToWire = (p: Progress): WireProgress => ({ phase: p.phase, bytes_done: p.bytesDone, bytes_total: p.bytesTotal });
export const progressFromWire = (p: WireProgress): Progress => ({ phase: p.phase, bytesDone: p.bytes_done, bytesTotal: p.bytes_total });

export const diskInfoToWire = (d: DiskInfo): WireDiskInfo =>
  compact({ path: d.path, format: d.format, virtual_size: d.virtualSize, actual_size: d.actualSize, backing_file: opt(d.backingFile) });
export const diskInfoFromWire = (d: WireDiskInfo): DiskInfo =>
  compact({ path: d.path, format: d.format, virtualSize: d.virtual_size, actualSize: d.actual_size, backingFile: opt(d.backing_file) });

export const ensureBlockStorageToWire = (r: EnsureBlockStorageRequest): WireEnsureBlockStorageRequest => compact({
  name: r.name, limit_bytes: r.limitBytes, source_url: opt(r.sourceUrl), source_sha256: opt(r.sourceSha256),
  copy_from: opt(r.copyFrom), backing_from: opt(r.backingFrom),
});
export const ensureBlockStorageFromWire = (r: WireEnsureBlockStorageRequest): EnsureBlockStorageRequest => compact({
  name: r.name, limitBytes: r.limit_bytes, sourceUrl: opt(r.source_url), sourceSha256: opt(r.source_sha256),
  copyFrom: opt(r.copy_from), backingFrom: opt(r.backing_from),
});

export const blockStorageToWire = (o: BlockStorageObservation): WireBlockStorageObservation => compact({
  name: o.name, present: o.present, in_progress: o.inProgress && progressToWire(o.inProgress), error: opt(o.error), info: o.info && diskInfoToWire(o.info),
});
export const blockStorageFromWire = (o: WireBlockStorageObservation): BlockStorageObservation => compact({
  name: o.name, present: o.present, inProgress: o.in_progress ? progressFromWire(o.in_progress) : undefined, error: opt(o.error),
  info: o.info ? diskInfoFromWire(o.info) : undefined,
});

export const ensureNetworkToWire = (r: EnsureNetworkRequest): WireEnsureNetworkRequest =>
  compact({ name: r.name, segment_id: r.segmentId, peers: r.peers, gateway_cidr: opt(r.gatewayCidr), vlan_id: opt(r.vlanId) });
export const ensureNetworkFromWire = (r: WireEnsureNetworkRequest): EnsureNetworkRequest =>
  compact({ name: r.name, segmentId: r.segment_id, peers: r.peers ?? [], gatewayCidr: opt(r.gateway_cidr), vlanId: opt(r.vlan_id) });

export const networkStateToWire = (n: NetworkState): WireNetworkState =>
  compact({ name: n.name, bridge_name: n.bridgeName, present: n.present, segment_id: opt(n.segmentId), peers: n.peers ?? [], taps: n.taps ?? [] });
export const networkStateFromWire = (n: WireNetworkState): NetworkState =>
  compact({ name: n.name, bridgeName: n.bridge_name, present: n.present, segmentId: opt(n.segment_id), peers: n.peers ?? [], taps: n.taps ?? [] });

export const vmNicToWire = (n: VmNic): WireVmNic => compact({
  network_name: n.networkName, hardware_address: n.hardwareAddress, ipv4_address: opt(n.ipv4Address), ipv4_prefix_length: opt(n.ipv4PrefixLength),
  ipv4_gateway: opt(n.ipv4Gateway), ipv6_address: opt(n.ipv6Address), ipv6_prefix_length: opt(n.ipv6PrefixLength),
});
export const vmNicFromWire = (n: WireVmNic): VmNic => compact({
  networkName: n.network_name, hardwareAddress: n.hardware_address, ipv4Address: opt(n.ipv4_address), ipv4PrefixLength: opt(n.ipv4_prefix_length),
  ipv4Gateway: opt(n.ipv4_gateway), ipv6Address: opt(n.ipv6_address), ipv6PrefixLength: opt(n.ipv6_prefix_length),
});

export const ensureVmToWire = (r: EnsureVmRequest): WireEnsureVmRequest => compact({
  name: r.name, uuid: r.uuid, vcpus: r.vcpus, memory_bytes: r.memoryBytes, block_storage_names: r.blockStorageNames, nics: r.nics.map(vmNicToWire),
  login_username: opt(r.loginUsername), login_password: opt(r.loginPassword), login_password_hash: opt(r.loginPasswordHash), ssh_authorized_keys: r.sshAuthorizedKeys, run_state: r.runState,
  kernel: opt(r.kernel), initrd: opt(r.initrd), kernel_args: opt(r.kernelArgs), acknowledged_failure: opt(r.acknowledgedFailure),
});
export const ensureVmFromWire = (r: WireEnsureVmRequest): EnsureVmRequest => compact({
  name: r.name, uuid: r.uuid, vcpus: r.vcpus, memoryBytes: r.memory_bytes, blockStorageNames: r.block_storage_names ?? [],
  nics: (r.nics ?? []).map(vmNicFromWire), loginUsername: opt(r.login_username), loginPassword: opt(r.login_password), loginPasswordHash: opt(r.login_password_hash),
  sshAuthorizedKeys: r.ssh_authorized_keys ?? [], runState: r.run_state as EnsureVmRequest['runState'],
  kernel: opt(r.kernel), initrd: opt(r.initrd), kernelArgs: opt(r.kernel_args), acknowledgedFailure: opt(r.acknowledged_failure),
});

export const vmObservationToWire = (v: VmObservation): WireVmObservation =>
  compact({
    name: v.name, present: v.present, run_state: v.runState, pid: opt(v.pid), accelerator: opt(v.accelerator), uuid: opt(v.uuid),
    started_at: opt(v.startedAt), failure_message: opt(v.failure?.message), failure_started_at: opt(v.failure?.startedAt),
  });
export const vmObservationFromWire = (v: WireVmObservation): VmObservation => compact({
  name: v.name, present: v.present, runState: v.run_state as VmRunState, pid: opt(v.pid), accelerator: opt(v.accelerator) as Accelerator | undefined, uuid: opt(v.uuid),
  startedAt: opt(v.started_at),
  failure: opt(v.failure_message) === undefined ? undefined : compact({ message: v.failure_message!, startedAt: opt(v.failure_started_at) }),
});

export const nodeObservationToWire = (o: NodeObservation): WireNodeObservation => ({
  node_name: o.nodeName, accelerator: o.accelerator, agent_version: o.agentVersion,
  block_storages: o.blockStorages.map(blockStorageToWire), networks: o.networks.map(networkStateToWire), vms: o.vms.map(vmObservationToWire),
});
export const nodeObservationFromWire = (o: WireNodeObservation): NodeObservation => ({
  nodeName: o.node_name, accelerator: o.accelerator as Accelerator, agentVersion: o.agent_version,
  blockStorages: (o.block_storages ?? []).map(blockStorageFromWire), networks: (o.networks ?? []).map(networkStateFromWire),
  vms: (o.vms ?? []).map(vmObservationFromWire),
});
