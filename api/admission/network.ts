// Network admission: its spec parses (cidrs, gateway, vlan annotation); a cidr cannot change under
// reserved interfaces; it is not deleted while interfaces are reserved on it or VMs name it. The
// reserved interfaces are its NetworkAddress objects (world.networkAddresses), plus what a Network
// stored by the previous version still lists in its status until its controller migrates it.
import { checkNetworkSpec } from '../ipam';
import type { Network } from '../types';
import { FINALIZERS } from './finalizers';
import { asRule, violation } from './rules';
import { describeDependants, type Dependant, type Strategy, type World } from './types';

function validateSpec(net: Network): void {
  if (!net.spec?.ipv4_cidr && !net.spec?.ipv6_cidr) throw violation('network.cidr-required');
  asRule('network.spec', () => checkNetworkSpec(net.spec, net.metadata.annotations));
}

/** The keys of the interfaces reserved on `net` (a VM's <vm>.<index>, or a seed reservation's name), sorted. */
export function reservedKeys(net: Network, world: World | undefined): string[] {
  const keys = new Set(Object.keys(net.status?.reserved_network_interfaces ?? {}));
  for (const a of world?.networkAddresses ?? []) if (a.spec.network_name === net.metadata.name) keys.add(a.spec.holder_key);
  return [...keys].sort();
}

export const networkStrategy: Strategy<'Network'> = {
  kind: 'Network',
  prepareForCreate(net) {
    if (!net.metadata.finalizers?.includes(FINALIZERS.network)) net.metadata.finalizers = [...(net.metadata.finalizers ?? []), FINALIZERS.network];
  },
  validateCreate: validateSpec,
  updateNeedsWorld: (old, next) => old.spec.ipv4_cidr !== next.spec.ipv4_cidr || old.spec.ipv6_cidr !== next.spec.ipv6_cidr,
  validateUpdate(old, next, _lookup, world) {
    validateSpec(next);
    const reserved = reservedKeys(old, world);
    if (!reserved.length) return;
    const held = `Network "${old.metadata.name}" has reserved interfaces (${reserved.join(', ')})`;
    if (old.spec.ipv4_cidr !== next.spec.ipv4_cidr) {
      throw violation('network.ipv4-cidr-immutable-while-reserved', `${held}; its ipv4_cidr cannot change (${old.spec.ipv4_cidr ?? 'none'} -> ${next.spec.ipv4_cidr ?? 'none'})`);
    }
    if (old.spec.ipv6_cidr !== next.spec.ipv6_cidr) {
      throw violation('network.ipv6-cidr-immutable-while-reserved', `${held}; its ipv6_cidr cannot change (${old.spec.ipv6_cidr ?? 'none'} -> ${next.spec.ipv6_cidr ?? 'none'})`);
    }
  },
  references: () => [],
  dependants(net, world: World): Dependant[] {
    const name = net.metadata.name;
    const found: Dependant[] = [];
    for (const vm of world.virtualMachines) {
      const i = (vm.spec.nics ?? []).findIndex((n) => n.network_name === name);
      if (i < 0) continue;
      found.push({ kind: 'VirtualMachine', name: vm.metadata.name, why: `nics[${i}] is on it` });
    }
    // Keyed <vm>.<index> for VMs, any other key is a seed ReserveNetworkInterface. A VM's addresses
    // can outlive it (until its finalizer or the collector deletes them), so they count on their own.
    for (const key of reservedKeys(net, world)) {
      found.push({ kind: 'NetworkInterface', name: key, why: 'reserved on it' });
    }
    return found;
  },
  validateDelete(net, dependants) {
    const reserved = dependants.filter((d) => d.kind === 'NetworkInterface').map((d) => d.name);
    if (reserved.length) {
      throw violation('network.delete-in-use', `Network "${net.metadata.name}" has reserved interfaces: ${reserved.join(', ')}; delete the virtual machines first`);
    }
    if (dependants.length) {
      throw violation('network.delete-in-use', `Network "${net.metadata.name}" is used by ${describeDependants(dependants)}; delete the virtual machines first`);
    }
  },
};
