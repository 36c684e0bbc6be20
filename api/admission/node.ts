// Node admission: the schema covers a Node's spec. Deleting a Node that VMs or disks are placed on
// (status.node_name), or that the seed's Reservations name, would leave them without a host and their
// finalizers retrying forever: the delete is refused up front (the seed's DeleteNode) and held by
// the Node controller's protection finalizer (any other entrance) until they are gone.
import type { Node } from '../types';
import { blockStorageNode } from '../placement';
import { FINALIZERS } from './finalizers';
import { violation } from './rules';
import { describeDependants, type Dependant, type Strategy, type World } from './types';

export const nodeStrategy: Strategy<'Node'> = {
  kind: 'Node',
  prepareForCreate(node) {
    if (!node.metadata.finalizers?.includes(FINALIZERS.node)) node.metadata.finalizers = [...(node.metadata.finalizers ?? []), FINALIZERS.node];
  },
  validateCreate: () => undefined,
  validateUpdate: () => undefined,
  references: () => [],
  dependants(node: Node, world: World): Dependant[] {
    const name = node.metadata.name;
    const found: Dependant[] = [];
    for (const vm of world.virtualMachines) {
      if (vm.status?.node_name === name) found.push({ kind: 'VirtualMachine', name: vm.metadata.name, why: 'placed on it' });
    }
    for (const bs of world.blockStorages) {
      if (blockStorageNode(bs) === name) found.push({ kind: 'BlockStorage', name: bs.metadata.name, why: 'placed on it' });
    }
    // The seed's ReserveCompute/ReserveStorage reservations (named as before: node/key).
    for (const r of world.reservations ?? []) {
      if (r.spec.node_name === name) found.push({ kind: 'Node', name: `${name}/${r.spec.key}`, why: `${r.spec.what} reserved on it` });
    }
    return found;
  },
  validateDelete(node, dependants) {
    if (dependants.length) throw violation('node.delete-in-use', `Node "${node.metadata.name}" is in use by ${describeDependants(dependants)}; delete or move them first`);
  },
};
