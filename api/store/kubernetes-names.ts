// What a Kubernetes API server refuses that n0stack allows, refused by the kubernetes store
// itself with a clear error (pure functions, unit-tested in kubernetes-names.test.ts):
//  - object names with '_' (the seed's `debug_ipv6`): a custom resource's name must be a DNS
//    subdomain. No reversible mapping exists that keeps names readable in kubectl and unique.
//  - annotation keys that are not qualified names, `[dns-prefix/]name` (at most one '/'). The
//    seed's n0core/provisioning/... keys were such keys; documents now carry canonical keys
//    (api/types.ts ANNOTATIONS) and the seed's are translated at the edges
//    (api/seed-annotations.ts), so nothing is transcoded here.
import { InvalidArgumentError } from '../errors';
import { validateName } from '../names';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

function isDnsSubdomain(s: string): boolean { return s.length <= 253 && DNS_SUBDOMAIN.test(s); }
function isQualifiedNamePart(s: string): boolean { return s.length <= 63 && QUALIFIED_NAME.test(s); }

/** True when a Kubernetes API server accepts `key` as an annotation (or label) key. */
export function isQualifiedKey(key: string): boolean {
  const parts = key.split('/');
  if (parts.length === 1) return isQualifiedNamePart(parts[0]);
  return parts.length === 2 && isDnsSubdomain(parts[0]) && isQualifiedNamePart(parts[1]);
}

/** Refuses what a Kubernetes object name cannot be; returns the name. */
export function kubernetesName(name: unknown, field = 'metadata.name'): string {
  validateName(name, field);
  if ((name as string).includes('_')) {
    throw new InvalidArgumentError(`${field} ${JSON.stringify(name)}: the kubernetes store cannot hold names with '_' — Kubernetes object names are DNS subdomains (use '-' instead)`, field);
  }
  return name as string;
}

/** Refuses a document whose metadata.annotations keys a Kubernetes API server would refuse. */
export function checkAnnotationKeys(doc: { metadata?: { annotations?: Record<string, unknown> } } | null | undefined): void {
  for (const key of Object.keys(doc?.metadata?.annotations ?? {})) {
    if (!isQualifiedKey(key)) {
      throw new InvalidArgumentError(
        `metadata.annotations key ${JSON.stringify(key)} cannot be stored in Kubernetes: a key is "prefix/name" with a lower-case DNS prefix and a name of at most 63 letters, digits, '-', '_' or '.' (the seed's n0core/provisioning/... keys are sent as provisioning.n0stack.io/...: api/seed-annotations.ts)`,
        'metadata.annotations',
      );
    }
  }
}
