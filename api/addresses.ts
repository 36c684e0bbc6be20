// A Network's addresses as objects of their own (after KEP-1880's IPAddress): each MAC, IPv4 and
// IPv6 a NIC holds is one small NetworkAddress named by its value within the network, created with
// the store's create-if-absent. The store's uniqueness of names is what makes two holders of one
// address impossible, on every backend, and no document grows with the number of NICs (the
// Network used to list every NIC in its status, rewritten with a CAS on each placement).
//
// The names are one pure function (addressName) with its inverse (parseAddressName), so the
// encoding is injective by construction; the allocation over them (reserveAddresses) reads what
// its view says is taken, creates, and treats AlreadyExists by another holder as "taken, try the
// next" (a view may lag) and by the same holder as already done (a crash between two creates).
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, isN0Error } from './errors';
import { allocateIPv6, formatIPv4, freeIPv4s, generateMac, parseIPv4, parseIPv4Cidr, parseIPv6, usableIPv4, validateMac, allocateIPv4 } from './logic/ipam';
import { MAX_NAME_LENGTH, nameProblem } from './names';
import type { Store } from './store/store';
import { VM_RESERVED_BY } from './placement';
import { API_VERSION, type Network, type NetworkAddress, type VirtualMachine } from './types';

export type AddressFamily = 'mac' | 'ipv4' | 'ipv6';
export const FAMILIES: readonly AddressFamily[] = ['mac', 'ipv4', 'ipv6'];

/** The label every NetworkAddress carries (when the network's name fits a label value), for listing one network's. */
export const NETWORK_LABEL = 'n0stack.io/network';
const MAX_LABEL_VALUE = 63;


/** The seed's reservation fields (one NIC's addresses), as status.reserved_network_interfaces lists them. */
export interface InterfaceReservation { hardware_address?: string; ipv4_address?: string; ipv6_address?: string; annotations?: Record<string, string> }

/**
 * The value part of an address's name: IPv4 dotted decimal, IPv6 as 32 hex digits (fully
 * expanded: "::" and leading zeros would give one address several texts), MAC as 12 hex digits.
 * Undefined when `text` is not an address of that family.
 */
export function encodeAddress(family: AddressFamily, text: string): string | undefined {
  if (family === 'ipv4') { const n = parseIPv4(text); return n === undefined ? undefined : formatIPv4(n); }
  if (family === 'ipv6') { const n = parseIPv6(text); return n === undefined ? undefined : n.toString(16).padStart(32, '0'); }
  try { return validateMac(text).replace(/:/g, ''); } catch { return undefined; }
}

/** The longest network name whose addresses can be named (IPv6: `.ipv6.` and 32 hex digits). */
export const MAX_NETWORK_NAME = MAX_NAME_LENGTH - '.ipv6.'.length - 32;

/** The address's name in the store: `<network>.<family>.<value>` (a DNS-1123 subdomain when the network's name is one). */
export function addressName(network: string, family: AddressFamily, address: string, field = 'network_name'): string {
  const problem = nameProblem(network);
  if (problem) throw new InvalidArgumentError(`${field} ${JSON.stringify(network)} is invalid: ${problem}`, field);
  const value = encodeAddress(family, address);
  if (value === undefined) throw new InvalidArgumentError(`${JSON.stringify(address)} is not a ${family} address`, field);
  // One limit for every family (the longest, IPv6's), so a network lends either all kinds or none.
  if (network.length > MAX_NETWORK_NAME) {
    throw new InvalidArgumentError(`${field} ${JSON.stringify(network)} is too long to name its addresses: a NetworkAddress is named <network>.<family>.<value>, at most ${MAX_NAME_LENGTH} characters, so a network with NICs may have at most ${MAX_NETWORK_NAME} characters`, field);
  }
  return `${network}.${family}.${value}`;
}

const V4_TAIL = /^(.+)\.ipv4\.(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/;
const HEX_TAIL = /^(.+)\.(ipv6|mac)\.([0-9a-f]+)$/;

/**
 * The inverse of addressName (undefined for a name it cannot make). The value never contains its
 * family's word, so the name splits from the right in one way only: that is the injectivity.
 */
export function parseAddressName(name: string): { network: string; family: AddressFamily; value: string } | undefined {
  const v4 = V4_TAIL.exec(name);
  const hex = v4 ? undefined : HEX_TAIL.exec(name);
  const [network, family, value] = v4 ? [v4[1], 'ipv4' as const, v4[2]] : hex ? [hex[1], hex[2] as AddressFamily, hex[3]] : [];
  if (!network || !family || value === undefined || nameProblem(network)) return undefined;
  if (family === 'ipv6' && value.length !== 32) return undefined;
  if (family === 'mac' && value.length !== 12) return undefined;
  const text = family === 'ipv4' ? value : family === 'mac' ? value.match(/../g)!.join(':') : value.match(/..../g)!.join(':');
  return encodeAddress(family, text) === value ? { network, family, value } : undefined;
}

// ---------- holders ----------

/** Who holds an address: a VM's NIC (by the VM's uid, so a namesake does not inherit it) or a seed reservation. */
export interface Holder {
  /** The key in the seed's view: <vm>.<nic index>, or the ReserveNetworkInterface name. */
  key: string;
  vm?: { name: string; uid: string; index: number };
}

/** Reservation key of a VM's nic (names cannot contain '/', and a trailing .N is unique). */
export const nicKey = (vm: string, index: number) => `${vm}.${index}`;

export function vmHolder(vm: Pick<VirtualMachine, 'metadata'>, index: number): Holder {
  return { key: nicKey(vm.metadata.name, index), vm: { name: vm.metadata.name, uid: vm.metadata.uid ?? '', index } };
}

export const seedHolder = (key: string): Holder => ({ key });

export function heldBy(address: NetworkAddress, holder: Holder): boolean {
  const s = address.spec;
  return s.holder_key === holder.key && (s.virtual_machine_uid ?? '') === (holder.vm?.uid ?? '') && (s.virtual_machine_name ?? '') === (holder.vm?.name ?? '');
}

const describeHolder = (a: NetworkAddress) => a.spec.holder_key;

/** The object for `address` of `family` held by `holder` in `network`. */
export function addressObject(network: string, family: AddressFamily, address: string, holder: Holder, annotations?: Record<string, string>): NetworkAddress {
  return {
    apiVersion: API_VERSION, kind: 'NetworkAddress',
    metadata: {
      name: addressName(network, family, address),
      ...(network.length <= MAX_LABEL_VALUE ? { labels: { [NETWORK_LABEL]: network } } : {}),
      ...(annotations && Object.keys(annotations).length ? { annotations } : {}),
    },
    spec: {
      network_name: network, family, address, holder_key: holder.key,
      ...(holder.vm ? { virtual_machine_name: holder.vm.name, virtual_machine_uid: holder.vm.uid, nic_index: holder.vm.index } : {}),
    },
  };
}

// ---------- the seed's view ----------

/**
 * status.reserved_network_interfaces as the seed shows it, rendered from the network's addresses
 * (and what a Network stored by the previous version still lists, until its controller migrates it).
 */
export function renderReservedInterfaces(net: Network, addresses: readonly NetworkAddress[]): Record<string, InterfaceReservation> {
  const out: Record<string, InterfaceReservation> = { ...(net.status?.reserved_network_interfaces ?? {}) };
  const field = { mac: 'hardware_address', ipv4: 'ipv4_address', ipv6: 'ipv6_address' } as const;
  for (const a of [...addresses].sort((x, y) => x.metadata.name.localeCompare(y.metadata.name))) {
    if (a.spec.network_name !== net.metadata.name) continue;
    const entry = out[a.spec.holder_key] = { ...out[a.spec.holder_key] };
    entry[field[a.spec.family]] ??= a.spec.address;
    const annotations = a.spec.virtual_machine_name ? { [VM_RESERVED_BY]: a.spec.virtual_machine_name } : a.metadata.annotations;
    if (annotations) entry.annotations = { ...entry.annotations, ...annotations };
  }
  return out;
}

/** The Network with its reserved_network_interfaces rendered (GetNetwork, ListNetworks). */
export function renderNetwork(net: Network, addresses: readonly NetworkAddress[]): Network {
  return { ...net, status: { ...net.status, reserved_network_interfaces: renderReservedInterfaces(net, addresses) } };
}

/** A network's addresses, read from the store (by its label when its name fits one). */
export async function listAddresses(store: Pick<Store, 'list'>, network: string): Promise<NetworkAddress[]> {
  const labelled = network.length <= MAX_LABEL_VALUE;
  const { items } = await store.list('NetworkAddress', labelled ? { labelSelector: `${NETWORK_LABEL}=${network}` } : {});
  return items.filter((a) => a.spec.network_name === network);
}

/** Groups addresses by network (one list for ListNetworks). */
export function byNetwork(addresses: readonly NetworkAddress[]): (network: string) => NetworkAddress[] {
  const by = new Map<string, NetworkAddress[]>();
  for (const a of addresses) { let l = by.get(a.spec.network_name); if (!l) by.set(a.spec.network_name, l = []); l.push(a); }
  return (network) => by.get(network) ?? [];
}

// ---------- allocation ----------

/** What an allocator believes is taken in a network: a cache (may lag) or a fresh list. */
export interface AddressView {
  held(network: string): readonly NetworkAddress[] | Promise<readonly NetworkAddress[]>;
  /** Told of every address this allocator created, so a lagging cache does not offer it again. */
  claimed?(address: NetworkAddress): void;
}

export const storeAddressView = (store: Pick<Store, 'list'>): AddressView => ({ held: (network) => listAddresses(store, network) });

type Claim = { mine: true } | { mine: false; holder: string };

/** Creates `doc` unless it exists: mine when it exists and is held by `holder` (a pass that died after creating it). */
async function claim(store: Store, view: AddressView, doc: NetworkAddress, holder: Holder): Promise<Claim> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      // Not `view.claimed?.(await ...)`: an optional call skips evaluating its argument.
      const created = await store.create(doc);
      view.claimed?.(created);
      return { mine: true };
    } catch (err) {
      if (!isN0Error(err, 'AlreadyExists')) throw err;
    }
    try {
      const existing = await store.get('NetworkAddress', doc.metadata.name);
      return heldBy(existing, holder) ? { mine: true } : { mine: false, holder: describeHolder(existing) };
    } catch (err) {
      // Released between the two calls: create again.
      if (!isN0Error(err, 'NotFound')) throw err;
    }
  }
  throw new AlreadyExistsError('NetworkAddress', doc.metadata.name);
}

export interface ReserveOptions {
  /** The seed reservation's annotations (kept on its objects). */
  annotations?: Record<string, string>;
  /** Addresses the holder recorded earlier (a VM's status.nics[i]): preferred when it holds several of a family. */
  recorded?: InterfaceReservation;
}

/**
 * The addresses of `holder`'s interface in `net`: what it holds already (idempotent; a request
 * that disagrees is FailedPrecondition), else the requested or the lowest free ones, each created
 * as its NetworkAddress. IPv4 goes first: it is the scarce one, so a full network fails before
 * anything is created. `field` prefixes the fields errors name (nics[0], or the seed request's).
 */
export async function reserveAddresses(store: Store, view: AddressView, net: Network, holder: Holder, request: InterfaceReservation, field: string, options: ReserveOptions = {}): Promise<InterfaceReservation> {
  const network = net.metadata.name;
  const known = await view.held(network);
  const mine = known.filter((a) => heldBy(a, holder));
  // A Network stored by the previous version lists its interfaces until its controller migrates
  // them: those are taken too, and this holder's own entry is what it keeps (so a VM reconciled
  // before the migration does not move to another address, or take a neighbour's).
  const legacy = Object.entries(net.status?.reserved_network_interfaces ?? {});
  const own = legacy.find(([key]) => key === holder.key)?.[1];
  if (own) request = { hardware_address: request.hardware_address || own.hardware_address, ipv4_address: request.ipv4_address || own.ipv4_address, ipv6_address: request.ipv6_address || own.ipv6_address };
  const listed = { mac: 'hardware_address', ipv4: 'ipv4_address', ipv6: 'ipv6_address' } as const;
  const others = (family: AddressFamily) => new Map([
    ...legacy.filter(([key, r]) => key !== holder.key && r[listed[family]]).map(([key, r]) => [family === 'mac' ? r[listed[family]]!.toLowerCase() : r[listed[family]]!, key] as [string, string]),
    ...known.filter((a) => a.spec.family === family && !heldBy(a, holder)).map((a) => [a.spec.address, describeHolder(a)] as [string, string]),
  ]);
  const held = (family: AddressFamily, recorded?: string): string | undefined => {
    const of = mine.filter((a) => a.spec.family === family).map((a) => a.spec.address).sort();
    return of.find((a) => a === recorded) ?? of[0];
  };
  const agrees = (family: AddressFamily, have: string, want: string | undefined, f: string) => {
    if (!want || encodeAddress(family, want) === encodeAddress(family, have)) return;
    throw new FailedPreconditionError(`${holder.key} already holds ${have} in Network "${network}"; ${f} ${want} differs`, f);
  };
  const create = (family: AddressFamily, address: string) => claim(store, view, addressObject(network, family, address, holder, options.annotations), holder);
  const conflict = (f: string, address: string, who: string) => new FailedPreconditionError(`${f} ${address} is already in use in network ${network} by ${who}`, f);
  const result: InterfaceReservation = {};

  const v4Field = `${field}.ipv4_address`;
  if (net.spec.ipv4_cidr) {
    const have = held('ipv4', options.recorded?.ipv4_address);
    if (have) { agrees('ipv4', have, request.ipv4_address, v4Field); result.ipv4_address = have; } else {
      const taken = others('ipv4');
      const opts = { network, gateway: net.spec.gateway_ipv4, field: v4Field };
      if (request.ipv4_address) {
        const address = allocateIPv4(net.spec.ipv4_cidr, taken, request.ipv4_address, opts);
        const c = await create('ipv4', address);
        if (!c.mine) throw conflict(v4Field, address, c.holder);
        result.ipv4_address = address;
      } else {
        allocateIPv4(net.spec.ipv4_cidr, new Set(), undefined, opts); // validates the cidr and gateway
        for (const address of freeIPv4s(parseIPv4Cidr(net.spec.ipv4_cidr), net.spec.gateway_ipv4, taken)) {
          if ((await create('ipv4', address)).mine) { result.ipv4_address = address; break; }
        }
        if (!result.ipv4_address) throw new FailedPreconditionError(`network ${network} has no free IPv4 address (${net.spec.ipv4_cidr})`);
      }
    }
  } else if (request.ipv4_address) {
    throw new InvalidArgumentError(`${v4Field} given, but Network "${network}" has no ipv4_cidr`, v4Field);
  }

  const macField = `${field}.hardware_address`;
  const haveMac = held('mac', options.recorded?.hardware_address);
  if (haveMac) { agrees('mac', haveMac, request.hardware_address, macField); result.hardware_address = haveMac; } else if (request.hardware_address) {
    const mac = validateMac(request.hardware_address, macField);
    const who = others('mac').get(mac);
    if (who) throw conflict(macField, mac, who);
    const c = await create('mac', mac);
    if (!c.mine) throw conflict(macField, mac, c.holder);
    result.hardware_address = mac;
  } else {
    // Derived from the network and key, as before, so the same NIC gets the same MAC; a taken one derives again.
    const taken = new Set(others('mac').keys());
    for (let attempt = 0; !result.hardware_address; attempt++) {
      if (attempt >= 16) throw new FailedPreconditionError(`could not find a free MAC address for ${holder.key} in network ${network}`, macField);
      const mac = generateMac(`${network}/${holder.key}`, taken);
      if ((await create('mac', mac)).mine) result.hardware_address = mac; else taken.add(mac);
    }
  }

  const v6Field = `${field}.ipv6_address`;
  if (net.spec.ipv6_cidr) {
    const have = held('ipv6', options.recorded?.ipv6_address);
    if (have) { agrees('ipv6', have, request.ipv6_address, v6Field); result.ipv6_address = have; } else {
      const address = allocateIPv6(net.spec.ipv6_cidr, others('ipv6'), request.ipv6_address, { network, field: v6Field, mac: result.hardware_address });
      const c = await create('ipv6', address);
      if (!c.mine) throw conflict(v6Field, address, c.holder);
      result.ipv6_address = address;
    }
  } else if (request.ipv6_address) {
    throw new InvalidArgumentError(`${v6Field} given, but Network "${network}" has no ipv6_cidr`, v6Field);
  }
  return result;
}

/**
 * Deletes what `holder` holds in `network`: the objects `known` lists (a cache) and those named by
 * the addresses it recorded (found even when the cache lags), each only if still its own (a
 * resourceVersion precondition, so a new holder's object of the same name is never deleted).
 * Returns the names it deleted.
 */
export async function releaseAddresses(store: Store, network: string, holder: Holder, known: readonly NetworkAddress[], recorded?: InterfaceReservation): Promise<string[]> {
  const names = new Set(known.filter((a) => a.spec.network_name === network && heldBy(a, holder)).map((a) => a.metadata.name));
  const fields = { mac: recorded?.hardware_address, ipv4: recorded?.ipv4_address, ipv6: recorded?.ipv6_address };
  for (const family of FAMILIES) {
    const text = fields[family];
    if (!text || encodeAddress(family, text) === undefined) continue;
    try { names.add(addressName(network, family, text)); } catch { /* a name no object can have */ }
  }
  const deleted: string[] = [];
  for (const name of names) {
    try {
      const current = await store.get('NetworkAddress', name);
      if (!heldBy(current, holder)) continue;
      await store.delete('NetworkAddress', name, { resourceVersion: current.metadata.resourceVersion });
      deleted.push(name);
    } catch (err) {
      if (!isN0Error(err, 'NotFound') && !isN0Error(err, 'Conflict')) throw err;
    }
  }
  return deleted;
}

/** Every usable IPv4 of a cidr, for tests and messages (how many a network can lend). */
export const usableCount = (cidr: string, gateway?: string): number => [...usableIPv4(parseIPv4Cidr(cidr), gateway)].length;
