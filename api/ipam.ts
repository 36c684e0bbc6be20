// A Network's interface reservations, over the address arithmetic of api/logic/ipam.ts: MACs
// locally administered and derived from the reservation key, IPv4 from the cidr (never network,
// broadcast or gateway), IPv6 requested or EUI-64 in a /64 — all unique within the Network.
// Pure functions over the Network document; callers write the result with CAS.
import { FailedPreconditionError, InvalidArgumentError } from './errors';
import type { Network, NetworkSpec } from './types';
import { allocateIPv4, allocateIPv6, allocateMac, parseIPv4, parseIPv4Cidr, parseIPv6Cidr, ipv4InCidr } from './logic/ipam';
import { parseVlanAnnotation, segmentOf } from './logic/network';
import { ANNOTATIONS } from './types';

type Reservation = { hardware_address?: string; ipv4_address?: string; ipv6_address?: string; annotations?: Record<string, string> };

export const segmentId = (network: Pick<Network, 'metadata' | 'spec'>): number => segmentOf(network).id;

export function prefixLength(cidr: string): number {
  return Number(cidr.split('/')[1]);
}

export function checkNetworkSpec(spec: NetworkSpec, annotations: Record<string, string> | undefined): void {
  if (!spec.ipv4_cidr && !spec.ipv6_cidr) throw new InvalidArgumentError('ipv4_cidr (or ipv6_cidr) is required', 'ipv4_cidr');
  if (spec.ipv4_cidr) {
    const cidr = parseIPv4Cidr(spec.ipv4_cidr);
    if (spec.gateway_ipv4) {
      const gw = parseIPv4(spec.gateway_ipv4);
      if (gw === undefined || !ipv4InCidr(gw, cidr)) throw new InvalidArgumentError(`gateway_ipv4 ${spec.gateway_ipv4} must be an address inside ${spec.ipv4_cidr}`, 'gateway_ipv4');
    }
  }
  if (spec.ipv6_cidr) parseIPv6Cidr(spec.ipv6_cidr);
  const vlan = annotations?.[ANNOTATIONS.vlanId];
  if (vlan !== undefined) parseVlanAnnotation(vlan);
}

/**
 * The reservation for `key` in `network`: the existing one when the request agrees with it
 * (idempotent), else a new one with the requested or the lowest free addresses.
 */
export function reserveInterface(network: Network, key: string, request: Reservation, field: string): Reservation {
  const reserved = network.status?.reserved_network_interfaces ?? {};
  const existing = reserved[key];
  if (existing) {
    const agrees = (!request.hardware_address || request.hardware_address.toLowerCase() === existing.hardware_address)
      && (!request.ipv4_address || request.ipv4_address === existing.ipv4_address)
      && (!request.ipv6_address || request.ipv6_address === existing.ipv6_address);
    if (agrees) return existing;
    throw new FailedPreconditionError(`${key} already holds ${existing.ipv4_address ?? existing.hardware_address} in Network "${network.metadata.name}"`, field);
  }
  const holders = (pick: (r: Reservation) => string | undefined) =>
    new Map(Object.entries(reserved).filter(([k, r]) => k !== key && pick(r)).map(([k, r]) => [pick(r)!, k]));
  const name = network.metadata.name;
  const result: Reservation = {};
  result.hardware_address = allocateMac(`${name}/${key}`, new Set(holders((r) => r.hardware_address).keys()), request.hardware_address, `${field}.hardware_address`);
  if (network.spec.ipv4_cidr) {
    result.ipv4_address = allocateIPv4(network.spec.ipv4_cidr, holders((r) => r.ipv4_address), request.ipv4_address, { network: name, gateway: network.spec.gateway_ipv4, field: `${field}.ipv4_address` });
  } else if (request.ipv4_address) {
    throw new InvalidArgumentError(`${field}.ipv4_address given, but Network "${name}" has no ipv4_cidr`, `${field}.ipv4_address`);
  }
  if (network.spec.ipv6_cidr) {
    result.ipv6_address = allocateIPv6(network.spec.ipv6_cidr, holders((r) => r.ipv6_address), request.ipv6_address, { network: name, field: `${field}.ipv6_address`, mac: result.hardware_address });
  } else if (request.ipv6_address) {
    throw new InvalidArgumentError(`${field}.ipv6_address given, but Network "${name}" has no ipv6_cidr`, `${field}.ipv6_address`);
  }
  return result;
}
