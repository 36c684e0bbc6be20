// The calls every writer makes. The async functions here only gather what the pure strategies need from a store (the
// objects a create names, the objects that could depend on one being deleted); the rules are in
// the strategies and the table (rules.ts).
import { isN0Error } from '../errors';
import { renderedNode } from '../placement';
import type { Store } from '../store/store';
import type { AnyResource, Kind, KindMap } from '../types';
import { blockStorageStrategy } from './blockstorage';
import { imageStrategy } from './image';
import { networkStrategy } from './network';
import { networkAddressStrategy } from './networkaddress';
import { listAddresses } from '../addresses';
import { nodeStrategy } from './node';
import { nodeLeaseStrategy, reservationStrategy } from './internal';
import type { Dependant, Lookup, Strategy, World } from './types';
import { virtualMachineStrategy } from './virtualmachine';

export const STRATEGIES: { [K in Kind]: Strategy<K> } = {
  Node: nodeStrategy,
  Network: networkStrategy,
  BlockStorage: blockStorageStrategy,
  Image: imageStrategy,
  VirtualMachine: virtualMachineStrategy,
  NodeLease: nodeLeaseStrategy,
  Reservation: reservationStrategy,
  NetworkAddress: networkAddressStrategy,
};

export function strategyFor<K extends Kind>(kind: K): Strategy<K> {
  return STRATEGIES[kind] as Strategy<K>;
}

/**
 * Defaults and validates a document about to be created, with the objects it names read from
 * `store`; `references: false` judges the document alone (a dry run, where what it names may be
 * created by the same manifest).
 */
export async function admitCreate<T extends AnyResource>(store: Store, doc: T, options: { references?: boolean } = {}): Promise<void> {
  const strategy = strategyFor(doc.kind) as unknown as Strategy<T['kind']>;
  strategy.prepareForCreate(doc as never);
  if (options.references === false) return strategy.validateCreate(doc as never);
  const found = new Map<string, AnyResource>();
  for (const ref of strategy.references(doc as never)) {
    const key = `${ref.kind}/${ref.name}`;
    if (found.has(key)) continue;
    try { found.set(key, await store.get(ref.kind, ref.name)); } catch (err) { if (!isN0Error(err, 'NotFound')) throw err; }
  }
  const lookup: Lookup = (kind, name) => found.get(`${kind}/${name}`) as never;
  strategy.validateCreate(doc as never, lookup);
}

/**
 * Transition rules for a spec/metadata update of `old` (as stored) to `next`, with the objects
 * the kind's updateReferences names read from `store` (a Node rendered with what is placed on it),
 * and the objects that could depend on it when updateNeedsWorld says so (a Network's cidr change:
 * the addresses it lends).
 */
export async function admitUpdate<T extends AnyResource>(store: Store, old: T, next: T): Promise<void> {
  const strategy = strategyFor(next.kind) as unknown as Strategy<T['kind']>;
  const found = new Map<string, AnyResource>();
  for (const ref of strategy.updateReferences?.(old as never, next as never) ?? []) {
    try {
      found.set(`${ref.kind}/${ref.name}`, ref.kind === 'Node' ? await renderedNode(store, ref.name) : await store.get(ref.kind, ref.name));
    } catch (err) { if (!isN0Error(err, 'NotFound')) throw err; }
  }
  const world = strategy.updateNeedsWorld?.(old as never, next as never) ? await worldOf(store, old) : undefined;
  strategy.validateUpdate(old as never, next as never, (kind, name) => found.get(`${kind}/${name}`) as never, world);
}

/** The objects that can depend on `obj`, read from the store (only the kinds that can). */
async function worldOf(store: Store, obj: AnyResource): Promise<World> {
  return {
    blockStorages: obj.kind === 'BlockStorage' || obj.kind === 'Node' ? (await store.list('BlockStorage')).items : [],
    virtualMachines: obj.kind === 'BlockStorage' || obj.kind === 'Network' || obj.kind === 'Node' ? (await store.list('VirtualMachine')).items : [],
    reservations: obj.kind === 'Node' ? (await store.list('Reservation')).items : [],
    networkAddresses: obj.kind === 'Network' ? await listAddresses(store, obj.metadata.name) : [],
  };
}

/** What keeps `obj` from being deleted, from the kinds that can depend on it. */
export async function dependantsIn<K extends Kind>(store: Store, obj: KindMap[K]): Promise<Dependant[]> {
  return strategyFor(obj.kind as K).dependants(obj, await worldOf(store, obj));
}

/** The delete precondition the seed RPCs report up front (FailedPrecondition naming the dependants). */
export async function admitDelete<K extends Kind>(store: Store, obj: KindMap[K]): Promise<void> {
  strategyFor(obj.kind as K).validateDelete(obj, await dependantsIn(store, obj));
}

