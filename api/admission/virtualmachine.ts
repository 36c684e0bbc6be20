// VirtualMachine admission: the seed's spec rules; nics and block_storage_names fixed at creation
// (the finalizer releases what the spec names, so a changed list would leak the old holds); a new
// VM names only disks it may claim and networks that exist and stay.
import { virtualMachineSpecProblem } from '../logic/vm';
import type { Node, VirtualMachine } from '../types';
import { isN0Error } from '../errors';
import { vmCompute } from '../placement';
import { scheduleOn, type ComputeRequest } from '../scheduling';
import { FINALIZERS } from './finalizers';
import { violation } from './rules';
import type { Strategy } from './types';

export function checkVirtualMachineSpec(spec: VirtualMachine['spec']): void {
  const limit = spec.limit_cpu_milli_core;
  if (!Number.isSafeInteger(limit) || limit <= 0 || limit % 1000 !== 0) {
    throw violation('virtualmachine.whole-cores', `limit_cpu_milli_core must be a positive multiple of 1000 (whole cores: limit_cpu_milli_core % 1000 == 0), got ${limit}`);
  }
  if (typeof spec.request_cpu_milli_core === 'number' && spec.request_cpu_milli_core > limit) {
    throw violation('virtualmachine.request-cpu-within-limit', `request_cpu_milli_core (${spec.request_cpu_milli_core}) must not exceed limit_cpu_milli_core (${limit})`);
  }
  if (spec.request_memory_bytes !== undefined && spec.request_memory_bytes !== spec.limit_memory_bytes) {
    throw violation('virtualmachine.memory-equal', `request_memory_bytes (${spec.request_memory_bytes}) must equal limit_memory_bytes (${spec.limit_memory_bytes}): memory ballooning is disabled`);
  }
  // The rest (value shapes, names, duplicates) are the seed's rules in api/logic/vm.ts, which the
  // VM reconciler also reports as a condition.
  const problem = virtualMachineSpecProblem(spec);
  if (problem) throw violation('virtualmachine.spec', problem.message, problem.field);
}

const sameList = (a: unknown, b: unknown) => JSON.stringify(a ?? []) === JSON.stringify(b ?? []);

const COMPUTE_FIELDS = ['limit_cpu_milli_core', 'request_cpu_milli_core', 'limit_memory_bytes', 'request_memory_bytes'] as const;

/** The compute fields `next` asks more of than `before` (a request defaults to its limit). */
export function raisedCompute(before: ComputeRequest | undefined, next: ComputeRequest): (typeof COMPUTE_FIELDS)[number][] {
  return before ? COMPUTE_FIELDS.filter((f) => next[f] > before[f]) : [];
}

/**
 * A raise of a placed VM's cpu or memory must fit its node (`node`: as the seed shows it, with
 * everything placed there, this VM at its old size). FailedPrecondition naming the first raised
 * field; without the node (not placed, or a dry run) there is nothing to judge.
 */
export function checkResizeFits(name: string, raised: string[], node: Node | undefined, next: ComputeRequest): void {
  if (!raised.length || !node) return;
  try {
    scheduleOn(node, 'compute', name, next);
  } catch (err) {
    if (!isN0Error(err, 'FailedPrecondition')) throw err;
    throw violation('virtualmachine.resize-fits', `${raised[0]}: node ${node.metadata.name} cannot hold the increase (${raised.join(', ')}): ${(err as Error).message}`, raised[0]);
  }
}

export const virtualMachineStrategy: Strategy<'VirtualMachine'> = {
  kind: 'VirtualMachine',
  prepareForCreate(vm) {
    if (!vm.metadata.finalizers?.includes(FINALIZERS.virtualMachine)) vm.metadata.finalizers = [...(vm.metadata.finalizers ?? []), FINALIZERS.virtualMachine];
  },
  validateCreate(vm, lookup) {
    checkVirtualMachineSpec(vm.spec);
    if (!lookup) return;
    const name = vm.metadata.name;
    for (const [i, bsName] of (vm.spec.block_storage_names ?? []).entries()) {
      const field = `block_storage_names[${i}]`;
      const bs = lookup('BlockStorage', bsName);
      if (!bs) throw violation('virtualmachine.block-storage-usable', `${field}: BlockStorage "${bsName}" does not exist`, field);
      if (bs.metadata.deletionTimestamp) throw violation('virtualmachine.block-storage-usable', `${field}: BlockStorage "${bsName}" is being deleted`, field);
      if (bs.spec.protected) throw violation('virtualmachine.block-storage-usable', `${field}: BlockStorage "${bsName}" is PROTECTED (registered in an image); use GenerateBlockStorage to make a disk from it`, field);
      const user = bs.status?.in_use_by || bs.spec.claimed_by;
      if (user && user !== name) throw violation('virtualmachine.block-storage-usable', `${field}: BlockStorage "${bsName}" is IN_USE by ${user}`, field);
    }
    for (const [i, nic] of (vm.spec.nics ?? []).entries()) {
      const field = `nics[${i}].network_name`;
      const net = lookup('Network', nic.network_name);
      if (!net) throw violation('virtualmachine.network-usable', `${field}: Network "${nic.network_name}" does not exist`, field);
      if (net.metadata.deletionTimestamp) throw violation('virtualmachine.network-usable', `${field}: Network "${nic.network_name}" is being deleted`, field);
    }
  },
  validateUpdate(old, next, lookup) {
    checkVirtualMachineSpec(next.spec);
    if (!sameList(old.spec.nics, next.spec.nics)) throw violation('virtualmachine.nics-immutable');
    if (!sameList(old.spec.block_storage_names, next.spec.block_storage_names)) throw violation('virtualmachine.block-storage-names-immutable');
    const node = old.status?.node_name;
    if (node && lookup) checkResizeFits(next.metadata.name, raisedCompute(vmCompute(old), vmCompute(next)), lookup('Node', node), vmCompute(next));
  },
  updateReferences: (old, next) => (old.status?.node_name && raisedCompute(vmCompute(old), vmCompute(next)).length ? [{ kind: 'Node' as const, name: old.status.node_name }] : []),
  references: (vm) => [
    ...(vm.spec.block_storage_names ?? []).map((name) => ({ kind: 'BlockStorage' as const, name })),
    ...(vm.spec.nics ?? []).map((n) => ({ kind: 'Network' as const, name: n.network_name })),
  ],
  dependants: () => [],
  validateDelete: () => undefined,
};
