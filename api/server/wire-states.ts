// Our states on the seed's enums (pure). The original n0proto has fewer states than we keep: no
// FAILED for disks and VMs, no PENDING for networks, no cordon or deletion anywhere. Each of ours
// maps onto the original value that promises no more than is true; the exact state travels beside
// it in `exact_state` (a field the original does not have), which n0ctl shows.
import type { BlockStorage, Network, Node, VirtualMachine } from '../types';
import { getCondition } from '../conditions';

export interface WireState<E extends string> {
  /** The seed's enum value name. */
  state: E;
  /** Ours, as precise as we know it. */
  exact_state: string;
}

export type NodeStateName = 'NotReady' | 'Ready';
export type NetworkStateName = 'FAILED' | 'UNKNOWN' | 'AVAILABLE';
export type BlockStorageStateName = 'UNKNOWN' | 'PENDING' | 'AVAILABLE' | 'IN_USE' | 'PROTECTED';
export type VirtualMachineStateName = 'UNKNOWN' | 'PENDING' | 'RUNNING' | 'SHUTDOWN' | 'PAUSED';

/** The mapping, one row per state of ours (the README shows this table). */
export const STATE_MAPPINGS = {
  Node: {
    Ready: 'Ready', NotReady: 'NotReady', Unknown: 'NotReady',
    'Ready,SchedulingDisabled': 'NotReady', Deleting: 'NotReady',
  },
  Network: {
    AVAILABLE: 'AVAILABLE', FAILED: 'FAILED', PENDING: 'UNKNOWN', UNKNOWN: 'UNKNOWN', DELETING: 'UNKNOWN',
  },
  BlockStorage: {
    PENDING: 'PENDING', AVAILABLE: 'AVAILABLE', IN_USE: 'IN_USE', PROTECTED: 'PROTECTED',
    FAILED: 'UNKNOWN', UNKNOWN: 'UNKNOWN', DELETING: 'UNKNOWN',
  },
  VirtualMachine: {
    PENDING: 'PENDING', RUNNING: 'RUNNING', SHUTDOWN: 'SHUTDOWN', PAUSED: 'PAUSED',
    FAILED: 'UNKNOWN', CrashLoopBackOff: 'UNKNOWN', UNKNOWN: 'UNKNOWN', DELETING: 'UNKNOWN',
  },
} as const satisfies {
  Node: Record<string, NodeStateName>; Network: Record<string, NetworkStateName>;
  BlockStorage: Record<string, BlockStorageStateName>; VirtualMachine: Record<string, VirtualMachineStateName>;
};

function lookup<E extends string>(table: Record<string, E>, exact: string, fallback: E): WireState<E> {
  return { state: table[exact] ?? fallback, exact_state: exact };
}

/**
 * Exact states no stored document has: derived from metadata.deletionTimestamp (Deleting,
 * DELETING), spec.unschedulable (a cordoned Ready node, kubectl's words) and the VM's Ready reason.
 */
export const DERIVED_STATES = new Set(['Ready,SchedulingDisabled', 'Deleting', 'DELETING', 'CrashLoopBackOff']);

export function nodeWireState(node: Node): WireState<NodeStateName> {
  const stored = node.status?.state ?? 'Unknown';
  const exact = node.metadata.deletionTimestamp ? 'Deleting' : stored === 'Ready' && node.spec.unschedulable ? 'Ready,SchedulingDisabled' : stored;
  return lookup<NodeStateName>(STATE_MAPPINGS.Node, exact, 'NotReady');
}

export function networkWireState(network: Network): WireState<NetworkStateName> {
  const exact = network.metadata.deletionTimestamp ? 'DELETING' : network.status?.state ?? 'PENDING';
  return lookup<NetworkStateName>(STATE_MAPPINGS.Network, exact, 'UNKNOWN');
}

export function blockStorageWireState(bs: BlockStorage): WireState<BlockStorageStateName> {
  const exact = bs.metadata.deletionTimestamp ? 'DELETING' : bs.status?.state ?? 'PENDING';
  return lookup<BlockStorageStateName>(STATE_MAPPINGS.BlockStorage, exact, 'UNKNOWN');
}

export function virtualMachineWireState(vm: VirtualMachine): WireState<VirtualMachineStateName> {
  const stored = vm.status?.state ?? 'PENDING';
  const looping = stored === 'FAILED' && getCondition(vm.status?.conditions, 'Ready')?.reason === 'CrashLoopBackOff';
  const exact = vm.metadata.deletionTimestamp ? 'DELETING' : looping ? 'CrashLoopBackOff' : stored;
  return lookup<VirtualMachineStateName>(STATE_MAPPINGS.VirtualMachine, exact, 'UNKNOWN');
}
