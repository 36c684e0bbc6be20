// NetworkAddress admission: an address is named by its value (so the store's uniqueness of names is
// uniqueness of addresses, api/addresses.ts), lent by a Network that exists and is not on its way
// out, and never edited: a holder releases it by deleting it, and another holder creates it anew.
import { isDeepStrictEqual } from 'node:util';
import { addressName } from '../addresses';
import type { NetworkAddress } from '../types';
import { violation } from './rules';
import type { Strategy } from './types';

export const networkAddressStrategy: Strategy<'NetworkAddress'> = {
  kind: 'NetworkAddress',
  prepareForCreate: () => undefined,
  validateCreate(addr: NetworkAddress, lookup) {
    let expected: string | undefined;
    try { expected = addressName(addr.spec.network_name, addr.spec.family, addr.spec.address); } catch { expected = undefined; }
    if (expected !== addr.metadata.name) {
      throw violation('networkaddress.name', `NetworkAddress "${addr.metadata.name}" must be named ${expected ?? '<network_name>.<family>.<value>'} (its value within its network)`);
    }
    if (!lookup) return;
    const net = lookup('Network', addr.spec.network_name);
    if (!net || net.metadata.deletionTimestamp) {
      throw violation('networkaddress.network', `network_name: Network "${addr.spec.network_name}" ${net ? 'is being deleted' : 'does not exist'}`);
    }
  },
  validateUpdate(old, next) {
    if (!isDeepStrictEqual(old.spec, next.spec)) throw violation('networkaddress.immutable', `NetworkAddress "${old.metadata.name}" is immutable: delete it and create another`);
  },
  references: (addr) => [{ kind: 'Network', name: addr.spec.network_name }],
  dependants: () => [],
  validateDelete: () => undefined,
};
