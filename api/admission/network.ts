// Network admission: its spec parses (cidrs, gateway, vlan annotation); a cidr cannot change under
// reserved interfaces; it is not deleted while interfaces are reserved on it or VMs name it.
import { checkNetworkSpec } from '../ipam';
import type { Network } from '../types';
import { FINALIZERS } from './finalizers';
import { asRule, violation } from './rules';
import { describeDependants, type Dependant, type Strategy, type World } from './types';

function validateSpec(net: Network): void {
  if (!net.spec?.ipv4_cidr && !net.spec?.ipv6_cidr) throw violation('network.cidr-required');
  asRule('network.spec', () => checkNetworkSpec(net.spec, net.metadata.annotations));
}

export const networkStrategy: Strategy<'Network'> = {
  kind: 'Network',
  prepareForCreate(net) {
    if (!net.metadata.finalizers?.includes(FINALIZERS.network)) net.metadata.finalizers = [...(net.metadata.finalizers ?? []), FINALIZERS.network];
  },
  validateCreate: validateSpec,
  validateUpdate(old, next) {
    validateSpec(next);
    const reserved = Object.keys(old.status?.reserved_network_interfaces ?? {});
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
    const vms = new Set<string>();
    for (const vm of world.virtualMachines) {
      const i = (vm.spec.nics ?? []).findIndex((n) => n.network_name === name);
      if (i < 0) continue;
      vms.add(vm.metadata.name);
      found.push({ kind: 'VirtualMachine', name: vm.metadata.name, why: `nics[${i}] is on it` });
    }
    // Reservations are keyed <vm>.<index> for VMs; any other key is a seed ReserveNetworkInterface.
    for (const key of Object.keys(net.status?.reserved_network_interfaces ?? {})) {
      if (vms.has(key.replace(/\.\d+$/, ''))) continue;
      found.push({ kind: 'NetworkInterface', name: key, why: 'reserved on it' });
    }
    return found;
  },
  validateDelete(net, dependants) {
    const reserved = Object.keys(net.status?.reserved_network_interfaces ?? {});
    if (reserved.length) {
      throw violation('network.delete-in-use', `Network "${net.metadata.name}" has reserved interfaces: ${reserved.join(', ')}; delete the virtual machines first`);
    }
    if (dependants.length) {
      throw violation('network.delete-in-use', `Network "${net.metadata.name}" is used by ${describeDependants(dependants)}; delete the virtual machines first`);
    }
  },
};
