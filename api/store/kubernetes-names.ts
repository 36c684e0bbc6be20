// What a Kubernetes API server refuses that n0stack allows, and how the kubernetes store bridges
// it (pure functions, unit-tested both ways in kubernetes-names.test.ts):
//  - object names with '_' (the seed's `debug_ipv6`): a custom resource's name must be a DNS
//    subdomain. No reversible mapping exists that keeps names readable in kubectl and unique, so
//    the kubernetes store refuses them with a clear InvalidArgumentError.
//  - annotation keys with more than one '/' (the seed's n0core/provisioning/virtual_machine/
//    request_node_name): an annotation key is a qualified name, `[prefix/]name`. These are
//    transcoded reversibly:
//        <first>/<rest>  <->  <first>.path.n0stack.io/<E(rest)>
//    where E maps '-' to '--', '.' to '-d' and '/' to '.' (a prefix-free code, so it decodes
//    uniquely), e.g. n0core/provisioning/virtual_machine/request_node_name <->
//    n0core.path.n0stack.io/provisioning.virtual_machine.request_node_name. A key that is
//    already a valid qualified name is stored as it is, unless its prefix ends in
//    `.path.n0stack.io` — then it is transcoded too, so decoding never mistakes it for ours.
//    Keys that fit neither (an upper-case or '_' first segment, a name part over 63 characters)
//    are refused with an InvalidArgumentError naming the key.
import type { Operation } from 'fast-json-patch';
import { InvalidArgumentError } from '../errors';
import { validateName } from '../names';

export const TRANSCODED_SUFFIX = '.path.n0stack.io';

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

function escapePath(rest: string): string {
  return rest.replace(/[-./]/g, (c) => (c === '-' ? '--' : c === '.' ? '-d' : '.'));
}

function unescapePath(name: string): string | undefined {
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const c = name[i];
    if (c === '.') out += '/';
    else if (c !== '-') out += c;
    else if (name[i + 1] === '-') { out += '-'; i++; }
    else if (name[i + 1] === 'd') { out += '.'; i++; }
    else return undefined;
  }
  return out;
}

function reserved(key: string): boolean {
  const slash = key.indexOf('/');
  return slash > 0 && key.slice(0, slash).endsWith(TRANSCODED_SUFFIX);
}

/** n0stack annotation key -> the key stored on the API server. */
export function encodeAnnotationKey(key: string): string {
  if (isQualifiedKey(key) && !reserved(key)) return key;
  const slash = key.indexOf('/');
  const prefix = slash > 0 ? `${key.slice(0, slash)}${TRANSCODED_SUFFIX}` : '';
  const name = slash > 0 ? escapePath(key.slice(slash + 1)) : '';
  if (!prefix || !isDnsSubdomain(prefix) || !isQualifiedNamePart(name)) {
    throw new InvalidArgumentError(
      `metadata.annotations key ${JSON.stringify(key)} cannot be stored in Kubernetes: keys are "prefix/name" with a lower-case DNS prefix and a name of at most 63 letters, digits, '-', '_' or '.'; keys with more slashes need a lower-case DNS first segment and at most 63 characters after it`,
      'metadata.annotations',
    );
  }
  return `${prefix}/${name}`;
}

/** The key stored on the API server -> the n0stack annotation key (keys we did not transcode pass through). */
export function decodeAnnotationKey(key: string): string {
  if (!reserved(key)) return key;
  const slash = key.indexOf('/');
  const rest = unescapePath(key.slice(slash + 1));
  // Not in E's image (written by someone else, e.g. kubectl): shown as it is.
  return rest === undefined ? key : `${key.slice(0, slash - TRANSCODED_SUFFIX.length)}/${rest}`;
}

type Annotations = Record<string, string | null>;

function mapKeys(map: Annotations, fn: (k: string) => string): Annotations {
  return Object.fromEntries(Object.entries(map).map(([k, v]) => [fn(k), v]));
}

export function encodeAnnotations<T extends Annotations | undefined>(map: T): T {
  return (map && typeof map === 'object' ? mapKeys(map, encodeAnnotationKey) : map) as T;
}

export function decodeAnnotations<T extends Annotations | undefined>(map: T): T {
  return (map && typeof map === 'object' ? mapKeys(map, decodeAnnotationKey) : map) as T;
}

/** Encodes the annotation keys of a document (or merge patch) in place; returns it. */
export function encodeDocument<T>(doc: T): T {
  const meta = (doc as { metadata?: { annotations?: Annotations } } | null)?.metadata;
  if (meta && typeof meta === 'object' && meta.annotations && typeof meta.annotations === 'object') meta.annotations = encodeAnnotations(meta.annotations);
  return doc;
}

/** Decodes the annotation keys of a document from the server in place; returns it. */
export function decodeDocument<T>(doc: T): T {
  const meta = (doc as { metadata?: { annotations?: Annotations } } | null)?.metadata;
  if (meta && typeof meta === 'object' && meta.annotations && typeof meta.annotations === 'object') meta.annotations = decodeAnnotations(meta.annotations);
  return doc;
}

const ANNOTATION_PATH = '/metadata/annotations/';
const unescapePointer = (s: string) => s.replace(/~1/g, '/').replace(/~0/g, '~');
const escapePointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

function encodePointer(pointer: string): string {
  if (!pointer.startsWith(ANNOTATION_PATH)) return pointer;
  const rest = pointer.slice(ANNOTATION_PATH.length);
  const slash = rest.indexOf('/'); // a pointer below the value (never for string values, kept anyway)
  const key = unescapePointer(slash < 0 ? rest : rest.slice(0, slash));
  return `${ANNOTATION_PATH}${escapePointer(encodeAnnotationKey(key))}${slash < 0 ? '' : rest.slice(slash)}`;
}

/** Rewrites JSON Patch ops that touch annotations (paths, and object values that hold them). */
export function encodePatchOps(ops: Operation[]): Operation[] {
  return ops.map((op) => {
    const out = structuredClone(op) as Operation & { from?: string; value?: unknown };
    out.path = encodePointer(out.path);
    if (typeof out.from === 'string') out.from = encodePointer(out.from);
    if ('value' in out && out.value && typeof out.value === 'object') {
      if (out.path === '/metadata/annotations') out.value = encodeAnnotations(out.value as Annotations);
      else if (out.path === '/metadata') out.value = encodeDocument({ metadata: out.value }).metadata;
      else if (out.path === '') out.value = encodeDocument(out.value);
    }
    return out;
  });
}
