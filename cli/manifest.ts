// `n0ctl apply|diff|delete -f`: multi-document manifests, checked locally against the CRD schemas
// before anything is sent, and ordered so that what a document refers to is applied before it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { InvalidArgumentError, isN0Error } from '../api/errors';
import { validateDocument } from '../api/schema';
import { documentFromSeed } from '../api/seed-annotations';
import { API_VERSION, KINDS, isKind, type Kind, type Resource } from '../api/types';

export interface Manifest {
  doc: Resource;
  /** "file.yaml#2" for messages. */
  source: string;
}

export class ManifestError extends InvalidArgumentError {
  constructor(readonly problems: string[]) { super(problems.join('\n')); }
}

export const manifestKey = (doc: { kind: string; metadata: { name: string } }): string => `${doc.kind}/${doc.metadata.name}`;

/** Parses every YAML/JSON document of one source; empty documents (a trailing ---) are skipped. */
export function parseManifests(text: string, source: string): Manifest[] {
  const problems: string[] = [];
  const out: Manifest[] = [];
  const docs = YAML.parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new ManifestError([`${source}: ${(docs as { errors: Error[] }).errors?.[0]?.message ?? 'not YAML'}`]);
  docs.forEach((d, i) => {
    const where = docs.length > 1 ? `${source}#${i + 1}` : source;
    if (d.errors.length) { problems.push(`${where}: ${d.errors[0].message.split('\n')[0]}`); return; }
    const value = d.toJS() as unknown;
    if (value === null || value === undefined) return;
    const items = isList(value) ? (value as { items: unknown[] }).items : [value];
    items.forEach((item, j) => {
      const at = items.length > 1 || isList(value) ? `${where} items[${j}]` : where;
      const problem = checkEnvelope(item);
      if (problem) { problems.push(`${at}: ${problem}`); return; }
      // A manifest may still use the seed's annotation keys: they are sent as the canonical keys.
      try { out.push({ doc: documentFromSeed(item as Resource), source: at }); } catch (err) { problems.push(`${at}: ${(err as Error).message}`); }
    });
  });
  if (problems.length) throw new ManifestError(problems);
  return out;
}

function isList(value: unknown): boolean {
  const v = value as { kind?: unknown; items?: unknown };
  return typeof v === 'object' && v !== null && typeof v.kind === 'string' && v.kind.endsWith('List') && Array.isArray(v.items);
}

function checkEnvelope(value: unknown): string | undefined {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'a manifest must be a map with apiVersion, kind, metadata and spec';
  const v = value as Record<string, unknown>;
  if (v.apiVersion !== API_VERSION) return `apiVersion must be ${API_VERSION}, got ${JSON.stringify(v.apiVersion)}`;
  if (!isKind(v.kind)) return `kind must be one of ${KINDS.join(', ')}, got ${JSON.stringify(v.kind)}`;
  const meta = v.metadata as { name?: unknown } | undefined;
  if (!meta || typeof meta !== 'object' || typeof meta.name !== 'string') return `${v.kind}: metadata.name is required`;
  return undefined;
}

/**
 * Checks every document against its CRD schema (on a copy: defaults are the server's business)
 * and rejects the same object twice. Reports all problems at once.
 */
export function validateManifests(manifests: Manifest[]): void {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  for (const m of manifests) {
    const key = manifestKey(m.doc);
    if (seen.has(key)) problems.push(`${m.source}: ${key} is also defined in ${seen.get(key)}`);
    else seen.set(key, m.source);
    const copy = structuredClone(m.doc) as Resource;
    delete copy.status;
    try {
      validateDocument(copy);
    } catch (err) {
      if (isN0Error(err, 'InvalidArgument')) problems.push(`${m.source}: ${err.message}`);
      else throw err;
    }
  }
  if (problems.length) throw new ManifestError(problems);
}

/** Files named on the command line: a file, every .yaml/.yml/.json in a directory (sorted), or '-' for stdin. */
export function readManifestSources(paths: string[], readStdin: () => string = () => fs.readFileSync(0, 'utf8')): Manifest[] {
  const out: Manifest[] = [];
  for (const p of paths) {
    if (p === '-') { out.push(...parseManifests(readStdin(), '<stdin>')); continue; }
    let stat: fs.Stats;
    try { stat = fs.statSync(p); } catch { throw new InvalidArgumentError(`${p}: no such file or directory`, '-f'); }
    if (stat.isDirectory()) {
      const files = fs.readdirSync(p).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();
      if (files.length === 0) throw new InvalidArgumentError(`${p}: no .yaml, .yml or .json files in the directory`, '-f');
      for (const f of files) out.push(...parseManifests(fs.readFileSync(path.join(p, f), 'utf8'), path.join(p, f)));
    } else {
      out.push(...parseManifests(fs.readFileSync(p, 'utf8'), p));
    }
  }
  return out;
}

/** Other objects a document names in its spec, as "Kind/name". */
export function references(doc: Resource): string[] {
  const spec = (doc.spec ?? {}) as Record<string, unknown>;
  const refs: string[] = [];
  const add = (kind: Kind, name: unknown): void => { if (typeof name === 'string' && name) refs.push(`${kind}/${name}`); };
  add('Node', spec.node_name);
  switch (doc.kind) {
    case 'BlockStorage':
      add('BlockStorage', spec.source_block_storage);
      add('BlockStorage', spec.backing_block_storage);
      break;
    case 'Image':
      for (const r of (spec.registered_block_storages as { block_storage_name?: string }[] | undefined) ?? []) add('BlockStorage', r.block_storage_name);
      for (const bs of Object.values((spec.tags as Record<string, string> | undefined) ?? {})) add('BlockStorage', bs);
      break;
    case 'VirtualMachine':
      for (const bs of (spec.block_storage_names as string[] | undefined) ?? []) add('BlockStorage', bs);
      for (const nic of (spec.nics as { network_name?: string }[] | undefined) ?? []) add('Network', nic.network_name);
      break;
    default:
  }
  return [...new Set(refs)];
}

/** Tie-break when references do not decide: pools first, VMs last. */
const KIND_RANK: Record<Kind, number> = { Node: 0, NodeLease: 0, Reservation: 1, Network: 1, NetworkAddress: 2, Image: 2, BlockStorage: 3, VirtualMachine: 4 };

/**
 * Apply order: a document comes after every document (in this set) it refers to; among ready
 * documents, by kind rank, then as written. Throws naming a reference cycle.
 */
export function applyOrder(manifests: Manifest[]): Manifest[] {
  const byKey = new Map(manifests.map((m) => [manifestKey(m.doc), m]));
  const deps = new Map(manifests.map((m) => [m, references(m.doc).filter((r) => byKey.has(r) && r !== manifestKey(m.doc)).map((r) => byKey.get(r)!)]));
  const done = new Set<Manifest>();
  const out: Manifest[] = [];
  const index = new Map(manifests.map((m, i) => [m, i]));
  while (out.length < manifests.length) {
    const ready = manifests.filter((m) => !done.has(m) && deps.get(m)!.every((d) => done.has(d)));
    if (ready.length === 0) {
      const left = manifests.filter((m) => !done.has(m)).map((m) => manifestKey(m.doc));
      throw new ManifestError([`these objects refer to each other in a cycle: ${left.join(', ')}`]);
    }
    ready.sort((a, b) => KIND_RANK[a.doc.kind] - KIND_RANK[b.doc.kind] || index.get(a)! - index.get(b)!);
    // One at a time so a newly applied object can unblock a lower-ranked one before later ranks.
    const next = ready[0];
    done.add(next);
    out.push(next);
  }
  return out;
}

/** Delete order: the reverse of the apply order (users before what they use). */
export function deleteOrder(manifests: Manifest[]): Manifest[] {
  return applyOrder(manifests).reverse();
}
