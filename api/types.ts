// Documents stored for every kind. Spec and status types are generated from crds/*.yaml
// (api/generated/types.ts); this file only adds the Kubernetes envelope around them.
import type * as gen from './generated/types';

export const GROUP = 'n0stack.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}` as const;

export const KINDS = ['Node', 'Network', 'BlockStorage', 'Image', 'VirtualMachine', 'NodeLease', 'Reservation', 'NetworkAddress'] as const;
export type Kind = (typeof KINDS)[number];

export interface ObjectMeta {
  name: string;
  uid?: string;
  generation?: number;
  /** Opaque to clients; compare only for equality and pass back in updates. */
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
}

export type Condition = NonNullable<gen.NodeStatus['conditions']>[number];

export interface Resource<K extends Kind = Kind, S = unknown, T = unknown> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: ObjectMeta;
  spec: S;
  status?: T;
}

export type NodeSpec = gen.NodeSpec;
export type NodeStatus = gen.NodeStatus;
export type NetworkSpec = gen.NetworkSpec;
export type NetworkStatus = gen.NetworkStatus;
export type BlockStorageSpec = gen.BlockStorageSpec;
export type BlockStorageStatus = gen.BlockStorageStatus;
export type ImageSpec = gen.ImageSpec;
export type ImageStatus = gen.ImageStatus;
export type VirtualMachineSpec = gen.VirtualMachineSpec;
export type VirtualMachineStatus = gen.VirtualMachineStatus;
export type NodeLeaseSpec = gen.NodeLeaseSpec;
export type NodeLeaseStatus = gen.NodeLeaseStatus;
export type ReservationSpec = gen.ReservationSpec;
export type ReservationStatus = gen.ReservationStatus;
export type NetworkAddressSpec = gen.NetworkAddressSpec;
export type NetworkAddressStatus = gen.NetworkAddressStatus;

export type Node = Resource<'Node', NodeSpec, NodeStatus>;
export type Network = Resource<'Network', NetworkSpec, NetworkStatus>;
export type BlockStorage = Resource<'BlockStorage', BlockStorageSpec, BlockStorageStatus>;
export type Image = Resource<'Image', ImageSpec, ImageStatus>;
export type VirtualMachine = Resource<'VirtualMachine', VirtualMachineSpec, VirtualMachineStatus>;
export type NodeLease = Resource<'NodeLease', NodeLeaseSpec, NodeLeaseStatus>;
export type Reservation = Resource<'Reservation', ReservationSpec, ReservationStatus>;
export type NetworkAddress = Resource<'NetworkAddress', NetworkAddressSpec, NetworkAddressStatus>;

export interface KindMap {
  Node: Node;
  Network: Network;
  BlockStorage: BlockStorage;
  Image: Image;
  VirtualMachine: VirtualMachine;
  NodeLease: NodeLease;
  Reservation: Reservation;
  NetworkAddress: NetworkAddress;
}
export type AnyResource = KindMap[Kind];

/** Plural resource names, as in the CRDs and the Kubernetes REST paths. */
export const PLURALS: Record<Kind, string> = {
  Node: 'nodes',
  Network: 'networks',
  BlockStorage: 'blockstorages',
  Image: 'images',
  VirtualMachine: 'virtualmachines',
  NodeLease: 'nodeleases',
  Reservation: 'reservations',
  NetworkAddress: 'networkaddresses',
};

export function isKind(value: unknown): value is Kind {
  return typeof value === 'string' && (KINDS as readonly string[]).includes(value);
}

/**
 * The annotation keys n0stack stores: valid Kubernetes qualified names, so a real API server
 * accepts every document. They keep the meaning of the seed's keys (n0core/provisioning/...),
 * which are translated at the edges (api/seed-annotations.ts).
 */
export const ANNOTATIONS = {
  /** The seed's n0core/provisioning/virtual_machine/request_node_name. */
  vmRequestNodeName: 'provisioning.n0stack.io/request-node-name',
  /** The seed's n0core/provisioning/block_storage/request_node_name. */
  blockStorageRequestNodeName: 'provisioning.n0stack.io/request-node-name',
  /** The seed's n0core/provisioning/virtual_machine/vlan_id. */
  vlanId: 'provisioning.n0stack.io/vlan-id',
  /** The seed's github.com/n0stack/n0stack/n0core/agent_version. */
  agentVersion: 'n0stack.io/agent-version',
} as const;
