// A Network's spec checks and segment, over the address arithmetic of api/logic/ipam.ts. The
// addresses it lends are NetworkAddress objects (api/addresses.ts).
import { InvalidArgumentError } from './errors';
import type { Network, NetworkSpec } from './types';
import { parseIPv4, parseIPv4Cidr, parseIPv6Cidr, ipv4InCidr } from './logic/ipam';
import { parseVlanAnnotation, segmentOf } from './logic/network';
import { ANNOTATIONS } from './types';

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
