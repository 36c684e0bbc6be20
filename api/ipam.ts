// Address management for Networks: IPv4 from the cidr (never the network, broadcast or gateway
// address), MACs locally administered and derived from the reservation key, both unique within
// the Network. Pure functions over the Network document; callers write the result with CAS.
import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { FailedPreconditionError, InvalidArgumentError } from './errors';
import { ANNOTATIONS, type Network, type NetworkSpec } from './types';

type Reservation = { hardware_address?: string; ipv4_address?: string; ipv6_address?: string; annotations?: Record<string, string> };

export interface Ipv4Cidr { network: number; prefix: number; size: number }

const toInt = (ip: string) => ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
const toIp = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

export function parseIPv4Cidr(cidr: string, field = 'ipv4_cidr'): Ipv4Cidr {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(cidr);
  if (!m || !isIPv4(m[1]) || Number(m[2]) > 30 || Number(m[2]) < 8) {
    throw new InvalidArgumentError(`${field} ${JSON.stringify(cidr)} must be an IPv4 network like 192.168.0.0/24 (prefix 8-30)`, field);
  }
  const prefix = Number(m[2]);
  const size = 2 ** (32 - prefix);
  const network = Math.floor(toInt(m[1]) / size) * size;
  if (network !== toInt(m[1])) throw new InvalidArgumentError(`${field} ${cidr} has host bits set; did you mean ${toIp(network)}/${prefix}?`, field);
  return { network, prefix, size };
}

export function inCidr(ip: string, cidr: Ipv4Cidr): boolean {
  const n = toInt(ip);
  return n >= cidr.network && n < cidr.network + cidr.size;
}

/** The seed's vlan_id annotation, else vxlan_id, else a stable hash of the name. */
export function segmentId(network: Pick<Network, 'metadata' | 'spec'>): number {
  if (network.spec.vxlan_id) return network.spec.vxlan_id;
  const annotated = network.metadata.annotations?.[ANNOTATIONS.vlanId];
  if (annotated !== undefined) return Number(annotated);
  return (createHash('sha256').update(network.metadata.name).digest().readUInt32BE(0) % 16777214) + 1;
}

export function checkNetworkSpec(spec: NetworkSpec, annotations: Record<string, string> | undefined): void {
  if (!spec.ipv4_cidr && !spec.ipv6_cidr) throw new InvalidArgumentError('ipv4_cidr (or ipv6_cidr) is required', 'ipv4_cidr');
  if (spec.ipv4_cidr) {
    const cidr = parseIPv4Cidr(spec.ipv4_cidr);
    if (spec.gateway_ipv4 && (!isIPv4(spec.gateway_ipv4) || !inCidr(spec.gateway_ipv4, cidr))) {
      throw new InvalidArgumentError(`gateway_ipv4 ${spec.gateway_ipv4} must be an address inside ${spec.ipv4_cidr}`, 'gateway_ipv4');
    }
  }
  if (spec.ipv6_cidr && !/^[0-9a-fA-F:]+\/\d{1,3}$/.test(spec.ipv6_cidr)) throw new InvalidArgumentError(`ipv6_cidr ${spec.ipv6_cidr} is not an IPv6 network`, 'ipv6_cidr');
  const vlan = annotations?.[ANNOTATIONS.vlanId];
  if (vlan !== undefined && (!/^\d+$/.test(vlan) || Number(vlan) < 1 || Number(vlan) > 4094)) {
    throw new InvalidArgumentError(`annotation ${ANNOTATIONS.vlanId} must be a number from 1 to 4094, got ${JSON.stringify(vlan)}`, `annotations[${ANNOTATIONS.vlanId}]`);
  }
}

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

/** Locally administered, unicast (02:...) MAC from a hash of the seed, stepping past taken ones. */
export function generateMac(seed: string, taken: Set<string>): string {
  for (let i = 0; i < 1000; i++) {
    const h = createHash('sha256').update(`${seed}#${i}`).digest();
    const mac = ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
    if (!taken.has(mac)) return mac;
  }
  throw new FailedPreconditionError('could not find a free MAC address');
}

/**
 * Returns the reservation for `key` in `network`: the existing one when the request agrees with
 * it (idempotent), else a new one with the requested or the lowest free addresses.
 */
export function reserveInterface(network: Network, key: string, request: Reservation, field: string): Reservation {
  const reserved = network.status?.reserved_network_interfaces ?? {};
  const existing = reserved[key];
  const hw = request.hardware_address?.toLowerCase();
  if (hw !== undefined && !MAC.test(hw)) throw new InvalidArgumentError(`${field}.hardware_address ${request.hardware_address} is not a MAC address`, `${field}.hardware_address`);
  if (existing) {
    const agrees = (!hw || hw === existing.hardware_address) && (!request.ipv4_address || request.ipv4_address === existing.ipv4_address) && (!request.ipv6_address || request.ipv6_address === existing.ipv6_address);
    if (agrees) return existing;
    throw new FailedPreconditionError(`${key} already holds ${existing.ipv4_address ?? existing.hardware_address} in Network "${network.metadata.name}"`, field);
  }
  const others = Object.entries(reserved).filter(([k]) => k !== key).map(([, r]) => r);
  const takenMac = new Set(others.map((r) => r.hardware_address).filter(Boolean) as string[]);
  const takenV4 = new Set(others.map((r) => r.ipv4_address).filter(Boolean) as string[]);
  const takenV6 = new Set(others.map((r) => r.ipv6_address).filter(Boolean) as string[]);
  const result: Reservation = {};
  if (hw) {
    if (takenMac.has(hw)) throw new FailedPreconditionError(`hardware_address ${hw} is already used in Network "${network.metadata.name}"`, `${field}.hardware_address`);
    result.hardware_address = hw;
  } else {
    result.hardware_address = generateMac(`${network.metadata.name}/${key}`, takenMac);
  }
  if (network.spec.ipv4_cidr) {
    const cidr = parseIPv4Cidr(network.spec.ipv4_cidr);
    const gateway = network.spec.gateway_ipv4;
    const usable = (n: number) => n > cidr.network && n < cidr.network + cidr.size - 1 && toIp(n) !== gateway;
    if (request.ipv4_address) {
      const ip = request.ipv4_address;
      if (!isIPv4(ip) || !inCidr(ip, cidr)) throw new InvalidArgumentError(`${field}.ipv4_address ${ip} is not inside ${network.spec.ipv4_cidr}`, `${field}.ipv4_address`);
      if (!usable(toInt(ip))) throw new InvalidArgumentError(`${field}.ipv4_address ${ip} is the network, broadcast or gateway address of ${network.spec.ipv4_cidr}`, `${field}.ipv4_address`);
      if (takenV4.has(ip)) throw new FailedPreconditionError(`${field}.ipv4_address ${ip} is already reserved in Network "${network.metadata.name}"`, `${field}.ipv4_address`);
      result.ipv4_address = ip;
    } else {
      let chosen: string | undefined;
      for (let n = cidr.network + 1; n < cidr.network + cidr.size - 1; n++) {
        if (usable(n) && !takenV4.has(toIp(n))) { chosen = toIp(n); break; }
      }
      if (!chosen) throw new FailedPreconditionError(`Network "${network.metadata.name}" has no free IPv4 address in ${network.spec.ipv4_cidr}`, `${field}.ipv4_address`);
      result.ipv4_address = chosen;
    }
  }
  if (request.ipv6_address) {
    if (!isIPv6(request.ipv6_address)) throw new InvalidArgumentError(`${field}.ipv6_address ${request.ipv6_address} is not an IPv6 address`, `${field}.ipv6_address`);
    if (takenV6.has(request.ipv6_address)) throw new FailedPreconditionError(`${field}.ipv6_address ${request.ipv6_address} is already reserved`, `${field}.ipv6_address`);
    result.ipv6_address = request.ipv6_address;
  }
  return result;
}

export function prefixLength(cidr: string): number {
  return Number(cidr.split('/')[1]);
}
