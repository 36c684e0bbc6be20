// Kind names as users type them: `vm`, `virtualmachines`, `bs`, `net`, `img`, `node`...
import { InvalidArgumentError } from '../api/errors';
import { loadCrds } from '../api/schema';
import { KINDS, type Kind } from '../api/types';

// Beyond the CRDs' own short names, the ones the brief and kubectl habits ask for.
const EXTRA_ALIASES: Record<string, Kind> = { no: 'Node', net: 'Network', img: 'Image', vms: 'VirtualMachine' };

let aliases: Map<string, Kind> | undefined;

export function kindAliases(): Map<string, Kind> {
  if (aliases) return aliases;
  aliases = new Map();
  for (const [kind, crd] of loadCrds()) {
    const singular = String((crd.raw.spec as { names: { singular?: string } }).names.singular ?? kind.toLowerCase());
    for (const name of [kind.toLowerCase(), singular, crd.plural, ...crd.shortNames]) aliases.set(name.toLowerCase(), kind);
  }
  for (const [alias, kind] of Object.entries(EXTRA_ALIASES)) aliases.set(alias, kind);
  return aliases;
}

export function resolveKind(input: string): Kind {
  const kind = kindAliases().get(input.toLowerCase());
  if (!kind) {
    throw new InvalidArgumentError(`unknown resource type "${input}" (one of ${KINDS.map((k) => k.toLowerCase()).join(', ')}, or vm, bs, net, img, node)`, 'kind');
  }
  return kind;
}
