// The shape of a kind's admission, after kube-apiserver's registry strategies: pure functions of
// the object (and its old self, and the objects it names or that name it, looked up beforehand by
// the caller), throwing the rule table's errors. Nothing here reads or writes a store.
import type { Kind, KindMap } from '../types';

/** The objects a create refers to, read before admission (undefined: absent). */
export type Lookup = <K extends Kind>(kind: K, name: string) => KindMap[K] | undefined;

/** Something that keeps an object from being deleted, and why (for messages and conditions). */
export interface Dependant {
  /** NetworkInterface: a seed ReserveNetworkInterface reservation, named by its key. */
  kind: Kind | 'NetworkInterface';
  name: string;
  why: string;
}

/** The objects that can depend on another; each kind's dependants() picks from them. */
export interface World {
  blockStorages: readonly KindMap['BlockStorage'][];
  virtualMachines: readonly KindMap['VirtualMachine'][];
  /** The seed's explicit reservations (only a Node's dependants look at them). */
  reservations?: readonly KindMap['Reservation'][];
  /** The addresses lent by a Network (only a Network's rules look at them). */
  networkAddresses?: readonly KindMap['NetworkAddress'][];
}

export interface Strategy<K extends Kind> {
  readonly kind: K;
  /** Defaulting on create (edits obj). */
  prepareForCreate(obj: KindMap[K]): void;
  /** Without `lookup` (a dry run of a manifest whose objects do not exist yet) the reference rules are skipped. */
  validateCreate(obj: KindMap[K], lookup?: Lookup): void;
  /**
   * Transition rules; `old` is the stored object (with status), `next` the object to write. With
   * `lookup`, the objects updateReferences named (a Node as the seed shows it: with what is placed
   * on it); `world` is gathered when updateNeedsWorld says the rules need the objects that could
   * depend on it.
   */
  validateUpdate(old: KindMap[K], next: KindMap[K], lookup?: Lookup, world?: World): void;
  /** The objects an update needs looked up (none by default). */
  updateReferences?(old: KindMap[K], next: KindMap[K]): { kind: Kind; name: string }[];
  /** Whether this update's rules look at other objects (the caller then reads them: dependantsIn's world). */
  updateNeedsWorld?(old: KindMap[K], next: KindMap[K]): boolean;
  /** The references a create needs looked up (passed to validateCreate through Lookup). */
  references(obj: KindMap[K]): { kind: Kind; name: string }[];
  /** What keeps `obj` from being deleted now. */
  dependants(obj: KindMap[K], world: World): Dependant[];
  /** The delete precondition the seed RPCs check up front (the controllers' finalizers enforce dependants anyway). */
  validateDelete(obj: KindMap[K], dependants: Dependant[]): void;
}

export const describeDependants = (dependants: Dependant[]): string =>
  dependants.map((d) => `${d.kind} "${d.name}" (${d.why})`).join(', ');
