// The seed's annotation keys and the canonical keys n0stack stores instead. The seed's keys
// (n0core/provisioning/virtual_machine/request_node_name, ...) have several '/', which a
// Kubernetes API server refuses (an annotation key is a qualified name, `[dns-prefix/]name`), so
// every document is stored with the canonical keys (api/types.ts ANNOTATIONS), in every store,
// and the seed's keys are translated at the edges only: the seed's RPCs take them in (to
// canonical) and give them back (from canonical, by kind), and `n0ctl apply` translates manifests
// that still use them. Pure functions; api/seed-annotations.test.ts holds every key we write to
// the API server's own regexes.
import { InvalidArgumentError } from './errors';
import { ANNOTATIONS, type Kind } from './types';

/** Each seed key, the kinds the seed put it on, and the canonical key it is stored as. */
export const SEED_ANNOTATIONS: Readonly<Record<string, { kinds: readonly Kind[]; canonical: string }>> = {
  'n0core/provisioning/virtual_machine/request_node_name': { kinds: ['VirtualMachine'], canonical: ANNOTATIONS.vmRequestNodeName },
  'n0core/provisioning/block_storage/request_node_name': { kinds: ['BlockStorage'], canonical: ANNOTATIONS.blockStorageRequestNodeName },
  'n0core/provisioning/virtual_machine/vlan_id': { kinds: ['Network'], canonical: ANNOTATIONS.vlanId },
  'github.com/n0stack/n0stack/n0core/agent_version': { kinds: ['Node'], canonical: ANNOTATIONS.agentVersion },
};

/**
 * The annotations with every seed key replaced by its canonical key (on any kind: a seed key
 * means the same wherever it is sent). The same meaning under both keys with different values is
 * refused, naming both.
 */
export function annotationsFromSeed<T extends Record<string, string> | undefined>(annotations: T, field = 'annotations'): T {
  if (!annotations) return annotations;
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(annotations)) {
    if (!SEED_ANNOTATIONS[key]) out[key] ??= value;
  }
  for (const [key, value] of Object.entries(annotations)) {
    const seed = SEED_ANNOTATIONS[key];
    if (!seed) continue;
    if (out[seed.canonical] !== undefined && out[seed.canonical] !== value) {
      throw new InvalidArgumentError(`${field}: ${key}=${JSON.stringify(value)} and ${seed.canonical}=${JSON.stringify(out[seed.canonical])} say different things (${key} is the seed's name of ${seed.canonical})`, field);
    }
    out[seed.canonical] = value;
  }
  return out as T;
}

/** The annotations as the seed's messages show them: canonical keys back to the seed's keys for `kind`. */
export function annotationsToSeed(kind: Kind, annotations: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!annotations) return out;
  for (const key in annotations) out[TO_SEED.get(`${kind} ${key}`) ?? key] = annotations[key];
  return out;
}

/** `<kind> <canonical key>` -> the seed's key, built once: every message a Get or List renders asks. */
const TO_SEED = new Map(Object.entries(SEED_ANNOTATIONS).flatMap(([seedKey, s]) => s.kinds.map((kind) => [`${kind} ${s.canonical}`, seedKey] as const)));

/** A document's metadata.annotations translated from the seed's keys, in place (n0ctl apply). */
export function documentFromSeed<T extends { metadata?: { annotations?: Record<string, string> } }>(doc: T, field = 'metadata.annotations'): T {
  if (doc?.metadata?.annotations && typeof doc.metadata.annotations === 'object') doc.metadata.annotations = annotationsFromSeed(doc.metadata.annotations, field);
  return doc;
}
