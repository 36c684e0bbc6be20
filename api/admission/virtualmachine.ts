// VirtualMachine admission: the seed's spec rules; nics and block_storage_names fixed at creation
// (the finalizer releases what the spec names, so a changed list would leak the old holds); a new
// VM names only disks it may claim and networks that exist and stay.
import { virtualMachineSpecProblem } from '../logic/vm';
import type { VirtualMachine } from '../types';
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
  validateUpdate(old, next) {
    checkVirtualMachineSpec(next.spec);
    if (!sameList(old.spec.nics, next.spec.nics)) throw violation('virtualmachine.nics-immutable');
    if (!sameList(old.spec.block_storage_names, next.spec.block_storage_names)) throw violation('virtualmachine.block-storage-names-immutable');
  },
  references: (vm) => [
    ...(vm.spec.block_storage_names ?? []).map((name) => ({ kind: 'BlockStorage' as const, name })),
    ...(vm.spec.nics ?? []).map((n) => ({ kind: 'Network' as const, name: n.network_name })),
  ],
  dependants: () => [],
  validateDelete: () => undefined,
};
