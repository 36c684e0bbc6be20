// The controllers' view of the addresses each Network lends (api/addresses.ts): the informer cache
// of NetworkAddress objects through an index by network, plus what this process created a moment
// ago and its cache has not shown yet, so workers allocating side by side do not all try the
// address the last one just took (their creates would be refused and move on, but each refusal is a
// store round trip). The store's create-if-absent decides; this only makes the first guess good.
import type { AddressView } from '../api/addresses';
import type { NetworkAddress } from '../api/types';
import type { Cache, IndexSpec } from './runtime/types';

export const ADDRESSES_OF_NETWORK = 'address.byNetwork';
export const ADDRESSES_OF_VM = 'address.byVirtualMachine';

/** Declared by every reconciler that reads addresses (the manager registers an index once). */
export const ADDRESS_INDEXES: IndexSpec[] = [
  { kind: 'NetworkAddress', name: ADDRESSES_OF_NETWORK, keys: (a) => [(a as NetworkAddress).spec.network_name] },
  { kind: 'NetworkAddress', name: ADDRESSES_OF_VM, keys: (a) => { const vm = (a as NetworkAddress).spec.virtual_machine_name; return vm ? [vm] : []; } },
];

/** How long a created address is remembered without the cache showing it (the cache normally shows it within milliseconds). */
const REMEMBER_MS = 30_000;

export class AddressBook {
  private readonly recent = new Map<string, Map<string, { address: NetworkAddress; at: number }>>();

  view(cache: Cache): AddressView {
    return {
      held: (network) => {
        const cached = cache.byIndex('NetworkAddress', ADDRESSES_OF_NETWORK, network);
        const mine = this.recent.get(network);
        if (!mine?.size) return cached;
        const now = Date.now();
        const names = new Set(cached.map((a) => a.metadata.name));
        const extra: NetworkAddress[] = [];
        for (const [name, r] of mine) {
          if (names.has(name) || now - r.at > REMEMBER_MS) mine.delete(name); else extra.push(r.address);
        }
        return extra.length ? [...cached, ...extra] : cached;
      },
      claimed: (address) => {
        let mine = this.recent.get(address.spec.network_name);
        if (!mine) this.recent.set(address.spec.network_name, mine = new Map());
        mine.set(address.metadata.name, { address, at: Date.now() });
      },
    };
  }

  /** Forgets addresses released by this process (so a holder that comes again is not shown its old ones). */
  forget(names: Iterable<string>): void {
    for (const name of names) for (const m of this.recent.values()) m.delete(name);
  }
}
