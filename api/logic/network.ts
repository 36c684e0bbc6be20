// The overlay segment id of a network: spec.vxlan_id, else the seed's vlan_id annotation, else a
// stable hash of the name (so a network keeps its segment across controller restarts without
// storing anything; two hashed networks may collide, which the Network reconciler must check).
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../errors';
import { ANNOTATIONS, type Network } from '../types';

export const MAX_VXLAN_ID = 16_777_215;
export const MAX_VLAN_ID = 4094;

export type SegmentSource = 'spec' | 'annotation' | 'hash';

export interface Segment {
  id: number;
  source: SegmentSource;
}

export const VLAN_ANNOTATION_FIELD = `metadata.annotations["${ANNOTATIONS.vlanId}"]`;
const LEGACY_VLAN_KEY = 'n0core/provisioning/virtual_machine/vlan_id';

/** Parses the seed's vlan_id annotation ("100"): decimal digits, 1..4094. */
export function parseVlanAnnotation(value: string): number {
  if (!/^\d{1,4}$/.test(value)) {
    throw new InvalidArgumentError(`${VLAN_ANNOTATION_FIELD} ${JSON.stringify(value)} must be a VLAN id: a number from 1 to ${MAX_VLAN_ID}`, VLAN_ANNOTATION_FIELD);
  }
  const id = Number(value);
  if (id < 1 || id > MAX_VLAN_ID) {
    throw new InvalidArgumentError(`${VLAN_ANNOTATION_FIELD} ${value} is out of range: a VLAN id is 1 to ${MAX_VLAN_ID}`, VLAN_ANNOTATION_FIELD);
  }
  return id;
}

/** A stable id in 1..16777215 from the name (first 4 bytes of SHA-256 modulo the range). */
export function hashSegmentId(name: string): number {
  const n = createHash('sha256').update(name).digest().readUInt32BE(0);
  return (n % MAX_VXLAN_ID) + 1;
}

export function segmentOf(network: Pick<Network, 'metadata' | 'spec'>): Segment {
  const vxlan = network.spec.vxlan_id;
  if (vxlan !== undefined && vxlan !== null) {
    if (!Number.isInteger(vxlan) || vxlan < 1 || vxlan > MAX_VXLAN_ID) {
      throw new InvalidArgumentError(`spec.vxlan_id must be an integer from 1 to ${MAX_VXLAN_ID}, got ${vxlan}`, 'vxlan_id');
    }
    return { id: vxlan, source: 'spec' };
  }
  // A Network stored before the canonical key (api/seed-annotations.ts) keeps its segment.
  const annotation = network.metadata.annotations?.[ANNOTATIONS.vlanId] ?? network.metadata.annotations?.[LEGACY_VLAN_KEY];
  if (annotation !== undefined) return { id: parseVlanAnnotation(annotation), source: 'annotation' };
  return { id: hashSegmentId(network.metadata.name), source: 'hash' };
}
