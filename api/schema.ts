// Validates whole documents against crds/*.yaml: the CRDs' openAPIV3Schema is the single source
// of truth for spec and status; metadata follows Kubernetes ObjectMeta rules checked here.
import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import YAML from 'yaml';
import { InvalidArgumentError } from './errors';
import { nameProblem, labelKeyProblem, labelValueProblem } from './names';
import { API_VERSION, KINDS, isKind, type Kind, type Resource } from './types';

/** Largest serialized document a store accepts (etcd's default request limit is 1.5 MiB). */
export const MAX_DOCUMENT_BYTES = 1024 * 1024 - 1;

export interface CrdInfo {
  kind: Kind;
  plural: string;
  shortNames: string[];
  printerColumns: { name: string; type: string; jsonPath: string; priority?: number; description?: string }[];
  schema: Record<string, unknown>;
  raw: Record<string, unknown>;
}

export function crdDirectory(): string {
  // Works from both the TypeScript sources (api/) and the build (dist/api/).
  for (const candidate of [path.resolve(__dirname, '..', 'crds'), path.resolve(__dirname, '..', '..', 'crds')]) {
    if (fs.existsSync(path.join(candidate, 'virtualmachine.yaml'))) return candidate;
  }
  throw new Error(`crds/ not found near ${__dirname}`);
}

let crdCache: Map<Kind, CrdInfo> | undefined;

export function loadCrds(): Map<Kind, CrdInfo> {
  if (crdCache) return crdCache;
  const dir = crdDirectory();
  const result = new Map<Kind, CrdInfo>();
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
    const raw = YAML.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    const kind = raw?.spec?.names?.kind;
    if (!isKind(kind)) throw new Error(`${file}: unknown kind ${kind}`);
    const version = raw.spec.versions[0];
    result.set(kind, {
      kind,
      plural: raw.spec.names.plural,
      shortNames: raw.spec.names.shortNames ?? [],
      printerColumns: version.additionalPrinterColumns ?? [],
      schema: version.schema.openAPIV3Schema,
      raw,
    });
  }
  for (const kind of KINDS) if (!result.has(kind)) throw new Error(`crds/: no CRD for ${kind}`);
  crdCache = result;
  return result;
}

function newAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: true });
  addFormats(ajv);
  // Kubernetes structural-schema extensions carry no validation ajv must enforce.
  for (const keyword of ['x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-int-or-string', 'x-kubernetes-map-type', 'x-kubernetes-validations']) {
    ajv.addKeyword(keyword);
  }
  return ajv;
}

/**
 * Kubernetes structural schemas may not combine `properties` with `additionalProperties`, and the
 * API server prunes unknown fields instead. Locally we reject them: every object schema with
 * `properties` gets `additionalProperties: false` when compiled.
 */
export function closeObjects(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closeObjects);
  if (!schema || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as object).map(([pk, pv]) => [pk, closeObjects(pv)])) : closeObjects(v);
  if (out.properties && out.additionalProperties === undefined && !out['x-kubernetes-preserve-unknown-fields']) out.additionalProperties = false;
  return out;
}

let validators: Map<Kind, ValidateFunction> | undefined;

function validatorFor(kind: Kind): ValidateFunction {
  if (!validators) {
    const ajv = newAjv();
    validators = new Map();
    for (const [k, crd] of loadCrds()) validators.set(k, ajv.compile(closeObjects(crd.schema) as object));
  }
  return validators.get(kind)!;
}

function describe(error: ErrorObject): { field: string; message: string } {
  const pointer = error.instancePath.replace(/^\//, '').replace(/\//g, '.');
  let field = pointer;
  let message = error.message ?? 'is invalid';
  if (error.keyword === 'additionalProperties') {
    const extra = (error.params as { additionalProperty: string }).additionalProperty;
    field = pointer ? `${pointer}.${extra}` : extra;
    message = 'is not a known field';
  } else if (error.keyword === 'required') {
    const missing = (error.params as { missingProperty: string }).missingProperty;
    field = pointer ? `${pointer}.${missing}` : missing;
    message = 'is required';
  } else if (error.keyword === 'enum') {
    message = `must be one of ${(error.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  }
  return { field: field || '(document)', message };
}

/**
 * Validates a document for a write. Throws InvalidArgumentError naming the first bad field.
 * Mutates the document only to fill schema defaults (like the API server does).
 */
export function validateDocument(doc: Resource): void {
  if (!doc || typeof doc !== 'object') throw new InvalidArgumentError('document must be an object');
  if (doc.apiVersion !== API_VERSION) throw new InvalidArgumentError(`apiVersion must be ${API_VERSION}, got ${JSON.stringify(doc.apiVersion)}`, 'apiVersion');
  if (!isKind(doc.kind)) throw new InvalidArgumentError(`kind must be one of ${KINDS.join(', ')}, got ${JSON.stringify(doc.kind)}`, 'kind');
  validateMetadata(doc);
  if (doc.spec === undefined) doc.spec = {};
  const { kind, metadata: { name } } = doc;
  const validate = validatorFor(kind);
  if (!validate(doc)) {
    const { field, message } = describe(validate.errors![0]);
    throw new InvalidArgumentError(`${kind} "${name}": ${field} ${message}`, field);
  }
  const size = Buffer.byteLength(JSON.stringify(doc));
  if (size > MAX_DOCUMENT_BYTES) {
    throw new InvalidArgumentError(`${doc.kind} "${doc.metadata.name}" is ${size} bytes; documents are limited to ${MAX_DOCUMENT_BYTES} bytes`, '(document)');
  }
}

function validateMetadata(doc: Resource): void {
  const meta = doc.metadata;
  if (!meta || typeof meta !== 'object') throw new InvalidArgumentError('metadata is required', 'metadata');
  const problem = nameProblem(meta.name);
  if (problem) throw new InvalidArgumentError(`metadata.name ${JSON.stringify(meta.name)} is invalid: ${problem}`, 'metadata.name');
  for (const [field, map] of [['labels', meta.labels], ['annotations', meta.annotations]] as const) {
    if (map === undefined) continue;
    if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new InvalidArgumentError(`metadata.${field} must be a map of strings`, `metadata.${field}`);
    for (const [key, value] of Object.entries(map)) {
      if (typeof value !== 'string') throw new InvalidArgumentError(`metadata.${field}[${key}] must be a string`, `metadata.${field}`);
      // The seed's annotation keys (n0core/provisioning/virtual_machine/vlan_id) have several '/', so
      // annotation keys are only checked for sanity; label keys follow Kubernetes exactly.
      if (field === 'labels') {
        const keyProblem = labelKeyProblem(key) ?? labelValueProblem(value);
        if (keyProblem) throw new InvalidArgumentError(`metadata.labels[${key}]: ${keyProblem}`, 'metadata.labels');
      } else if (key.length === 0 || key.length > 316 || /[\s\u0000]/.test(key)) {
        throw new InvalidArgumentError(`metadata.annotations key ${JSON.stringify(key)} is invalid`, 'metadata.annotations');
      }
    }
  }
  if (meta.finalizers !== undefined) {
    if (!Array.isArray(meta.finalizers) || meta.finalizers.some((f) => typeof f !== 'string' || f.length === 0 || f.length > 316)) {
      throw new InvalidArgumentError('metadata.finalizers must be a list of non-empty strings', 'metadata.finalizers');
    }
  }
}
