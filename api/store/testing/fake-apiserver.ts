// A small stand-in for a Kubernetes API server serving the five n0stack CRDs (cluster-scoped,
// n0stack.io/v1alpha1, status subresource), for tests of the kubernetes Store backend, because no
// real API server can be installed here. It follows the apiserver's rules for custom resources
// (apiextensions-apiserver customResourceStrategy + genericregistry.Store + the etcd3 storage):
//  - one global revision counter is every object's resourceVersion and every list's revision;
//  - create drops status, sets uid/creationTimestamp/generation 1; a set resourceVersion is refused;
//  - update needs metadata.resourceVersion (422 without it, 409 when stale), keeps uid,
//    creationTimestamp, deletionTimestamp and status (main resource) or everything but status
//    (/status); generation bumps when anything outside metadata changed; a no-op write is not
//    stored (no new revision), like the etcd3 storage's no-op detection;
//  - patch applies to the stored object, then runs the update path, so a resourceVersion the patch
//    sets is a precondition; a failed JSON Patch op (e.g. test) is 422;
//  - delete honours preconditions and finalizers (deletionTimestamp; removed when an update
//    empties finalizers); an immediate delete answers with a Status, as CRDs do;
//  - watch streams newline-delimited {type, object} events from the history after a revision
//    (ADDED for the current state when none is given), BOOKMARKs when asked, and an ERROR event
//    with a 410 Expired Status for a compacted revision;
//  - bodies are pruned/validated against a structural form of the CRD schema: unknown fields
//    are dropped with a Warning header, or 400 with fieldValidation=Strict; schema violations 422.
//  - the CRDs' x-kubernetes-validations (CEL, generated from api/admission/rules.ts) are evaluated
//    with @marcbachmann/cel-js on create and update (main resource and /status), on the object
//    properties of the schema where they sit (not on list items or map values): `self` is the value
//    there (integers as CEL ints, by the schema's type; at the root, metadata holds only name and
//    generateName), `oldSelf` the old value; a rule naming oldSelf is a transition rule, evaluated on
//    update only and only where the old value exists. A false rule is 422 Invalid naming
//    <path><fieldPath> with `Invalid value: "object": <message>` (reason FieldValueForbidden:
//    `Forbidden: <message>`); a rule that fails to evaluate is 422 with the evaluation error. Not
//    modelled: CEL cost limits, messageExpression, optionalOldSelf, ratcheting of unchanged values,
//    the Kubernetes CEL libraries (quantity, url, ip/cidr, lists, regex extensions).
// It also serves coordination.k8s.io/v1 Leases (namespaced; get, create, update with an optional
// resourceVersion precondition — unconditional without one, as for built-in kinds) for the
// Lease-based leader election of the controllers, and core/v1 Events (namespaced; list, get,
// create, merge patch, delete; no watch, no TTL) for the controllers' event recorder.
// Not modelled: namespaces of the CRDs, generateName, pagination (limit/continue), set-based selectors
// (answered 400), watch label-selector transitions, field selectors, admission, server-side apply,
// strategic merge patch, managedFields, RBAC (only an optional bearer token).
import * as http from 'node:http';
import * as https from 'node:https';
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { applyPatch, type Operation } from 'fast-json-patch';
import { parse as parseCel } from '@marcbachmann/cel-js';
import { loadCrds } from '../../schema';
import { labelKeyProblem, labelValueProblem } from '../../names';
import { GROUP, VERSION, KINDS, PLURALS, type Kind } from '../../types';
import { parseLabelSelector, matchesLabels } from '../labels';
import { mergePatch } from '../kv';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Obj = { apiVersion?: string; kind?: string; metadata: Record<string, any>; spec?: unknown; status?: unknown; [k: string]: unknown };
type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
interface HistoryEvent { rev: number; kind: Kind; type: EventType; object: Obj }
interface Watcher { kind: Kind; res: http.ServerResponse; selector: ReturnType<typeof parseLabelSelector> }

export interface FakeApiServerOptions {
  /** When set, every request must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** How often a watch that asked for bookmarks gets one (a real server: about a minute). */
  bookmarkIntervalMs?: number;
  /** More bearer tokens, by the user name each authenticates as (the `token` is "kubernetes-admin"). */
  users?: Record<string, string>;
  /**
   * A validating admission webhook (as a ValidatingWebhookConfiguration with failurePolicy Fail
   * matching CREATE/UPDATE/DELETE of the n0stack.io resources, not their status): an HTTPS URL
   * and the CA that signed its certificate. Called for POST, PUT and DELETE; not for PATCH (this
   * stand-in does not compute a patch's result before storing it).
   */
  admissionWebhook?: { url: string; ca: string; timeoutMs?: number };
}

interface CelCheck { path: string[]; type: string; rule: string; message: string; fieldPath?: string; reason?: string; transition: boolean; program: (ctx: Record<string, unknown>) => unknown }

/** The x-kubernetes-validations of a schema's object properties (not of list items or map values). */
function celChecks(schema: any, path: string[] = []): CelCheck[] {
  if (!schema || typeof schema !== 'object') return [];
  const out: CelCheck[] = [];
  for (const v of schema['x-kubernetes-validations'] ?? []) {
    out.push({ path, type: schema.type ?? 'object', rule: v.rule, message: v.message ?? `failed rule: ${v.rule}`, fieldPath: v.fieldPath, reason: v.reason,
      transition: /\boldSelf\b/.test(v.rule), program: parseCel(v.rule) });
  }
  for (const [k, sub] of Object.entries(schema.properties ?? {})) out.push(...celChecks(sub, [...path, k]));
  return out;
}

/** A JSON value as CEL sees it under a structural schema: integers are ints (bigint), numbers doubles. */
function asCel(value: any, schema: any): unknown {
  if (typeof value === 'number') return schema?.type === 'integer' || (schema?.type === undefined && Number.isInteger(value)) ? BigInt(value) : value;
  if (Array.isArray(value)) return value.map((v) => asCel(v, schema?.items));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, asCel(v, schema?.properties?.[k] ?? (typeof schema?.additionalProperties === 'object' ? schema.additionalProperties : undefined))]));
  }
  return value;
}

function at(value: any, path: string[]): any {
  return path.reduce((v, k) => (v && typeof v === 'object' ? v[k] : undefined), value);
}

class HttpError extends Error {
  constructor(readonly code: number, readonly reason: string, message: string, readonly details?: Record<string, unknown>) { super(message); }
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const MAX_BODY_BYTES = 3 * 1024 * 1024;
const MAX_ANNOTATION_BYTES = 256 * 1024;
// JSON round trip, not structuredClone: stored objects are JSON, and structuredClone gives objects
// of another realm under jest, which isDeepStrictEqual then tells apart.
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v));
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * Label and annotation keys are qualified names: at most one '/', the prefix a lower-case DNS
 * subdomain (no '_', unlike api/names.ts's names), the name part 63 characters of [-A-Za-z0-9_.].
 */
function qualifiedKeyProblem(key: string): string | undefined {
  const parts = key.split('/');
  if (parts.length > 2) return 'may contain at most one /';
  if (parts.length === 2 && (parts[0].length > 253 || !DNS_SUBDOMAIN.test(parts[0]))) return 'prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \'-\' or \'.\'';
  return labelKeyProblem(parts[parts.length - 1]);
}

/**
 * A real server refuses a CRD whose schema has `additionalProperties` next to `properties`
 * ("additionalProperties and properties are mutual exclusive"). Returns the paths that would be
 * refused, so a test can say so, and the schema as a server would need it (without them).
 */
export function structuralProblems(schema: any, path = ''): string[] {
  if (!schema || typeof schema !== 'object') return [];
  const out: string[] = [];
  if (schema.properties && schema.additionalProperties !== undefined) out.push(`${path || '.'}: additionalProperties and properties are mutually exclusive`);
  for (const [k, v] of Object.entries(schema.properties ?? {})) out.push(...structuralProblems(v, `${path}.${k}`));
  if (schema.items) out.push(...structuralProblems(schema.items, `${path}[]`));
  if (typeof schema.additionalProperties === 'object') out.push(...structuralProblems(schema.additionalProperties, `${path}.*`));
  return out;
}

function structural(schema: any): any {
  if (!schema || typeof schema !== 'object' || Array.isArray(schema)) return schema;
  const out: any = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'additionalProperties' && schema.properties) continue;
    out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as object).map(([p, s]) => [p, structural(s)])) : structural(v);
  }
  return out;
}

/** Drops fields the structural schema does not know (the apiserver's pruning); returns their paths. */
function prune(value: any, schema: any, path: string, unknown: string[], root = false): void {
  if (!schema || value === null || typeof value !== 'object' || schema['x-kubernetes-preserve-unknown-fields']) return;
  if (Array.isArray(value)) { value.forEach((v, i) => prune(v, schema.items, `${path}[${i}]`, unknown)); return; }
  for (const key of Object.keys(value)) {
    if (root && key === 'metadata') continue; // ObjectMeta has its own rules
    const sub = schema.properties?.[key] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
    if (sub === undefined && schema.additionalProperties !== true) { unknown.push(path ? `${path}.${key}` : key); delete value[key]; }
    else prune(value[key], sub, path ? `${path}.${key}` : key, unknown);
  }
}

export class FakeApiServer {
  private readonly server: http.Server;
  private readonly objects = new Map<Kind, Map<string, Obj>>(KINDS.map((k) => [k, new Map()]));
  private readonly history: HistoryEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly schemas = new Map<Kind, { schema: any; validate: ValidateFunction; cel: CelCheck[] }>();
  private readonly leases = new Map<string, Obj>();
  private readonly events = new Map<string, Obj>();
  private readonly secrets = new Map<string, Obj>();
  private rev = 0;
  private compacted = 0;
  url = '';

  private constructor(private readonly options: FakeApiServerOptions) {
    const ajv = new Ajv({ allErrors: false, strict: false, useDefaults: true });
    addFormats(ajv);
    for (const kw of ['x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-int-or-string', 'x-kubernetes-map-type', 'x-kubernetes-validations']) ajv.addKeyword(kw);
    for (const [kind, crd] of loadCrds()) {
      const schema = structural(crd.schema);
      this.schemas.set(kind, { schema, validate: ajv.compile(schema), cel: celChecks(schema) });
    }
    this.server = http.createServer((req, res) => { this.handle(req, res).catch((err) => this.fail(res, err)); });
    // Real API servers keep idle connections for minutes; Node's 5 s default made the client reuse a
    // keep-alive socket at the instant this server closed it ("socket hang up") in tests.
    this.server.keepAliveTimeout = 120_000;
    this.server.headersTimeout = 125_000;
  }

  static async start(options: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const fake = new FakeApiServer(options);
    await new Promise<void>((resolve, reject) => { fake.server.once('error', reject); fake.server.listen(0, '127.0.0.1', resolve); });
    const { port } = fake.server.address() as { port: number };
    fake.url = `http://127.0.0.1:${port}`;
    return fake;
  }

  /** The current revision (what a list would report). */
  get revision(): string { return String(this.rev); }

  /** Forgets the history up to and including `revision`, like an etcd compaction. */
  compact(revision: string | number): void {
    const r = Number(revision);
    if (!Number.isSafeInteger(r) || r < 0 || r > this.rev) throw new Error(`cannot compact to ${revision} (current ${this.rev})`);
    this.compacted = Math.max(this.compacted, r);
    while (this.history.length && this.history[0].rev <= this.compacted) this.history.shift();
  }

  /** Ends every open watch stream cleanly, as a server does when a watch's timeout expires. */
  closeWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  async stop(): Promise<void> {
    this.closeWatches();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private fail(res: http.ServerResponse, err: unknown): void {
    const e = err instanceof HttpError ? err : new HttpError(500, 'InternalError', `Internal error occurred: ${err instanceof Error ? err.message : String(err)}`);
    if (res.headersSent) { res.end(); return; }
    this.send(res, e.code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: e.message, reason: e.reason, details: e.details, code: e.code });
  }

  private send(res: http.ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  /** Who the request authenticates as (401 when it does not). */
  private user(req: http.IncomingMessage): string {
    const bearer = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''))?.[1];
    if (this.options.token === undefined && !this.options.users) return 'kubernetes-admin';
    if (bearer !== undefined && bearer === this.options.token) return 'kubernetes-admin';
    if (bearer !== undefined && this.options.users && Object.hasOwn(this.options.users, bearer)) return this.options.users[bearer];
    throw new HttpError(401, 'Unauthorized', 'Unauthorized');
  }

  /** Sends the write to the validating webhook; its refusal is the writer's answer (failurePolicy Fail: so is its failure). */
  private async admitByWebhook(operation: 'CREATE' | 'UPDATE' | 'DELETE', kind: Kind, username: string, object: Obj | null, oldObject: Obj | null): Promise<void> {
    const hook = this.options.admissionWebhook;
    if (!hook) return;
    const review = {
      apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
      request: {
        uid: randomUUID(), kind: { group: GROUP, version: VERSION, kind }, resource: { group: GROUP, version: VERSION, resource: PLURALS[kind] },
        name: (object ?? oldObject)?.metadata?.name, operation, userInfo: { username }, object, oldObject, dryRun: false,
      },
    };
    const body = JSON.stringify(review);
    const answer = await new Promise<any>((resolve, reject) => {
      const call = https.request(hook.url, { method: 'POST', ca: hook.ca, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }, timeout: hook.timeoutMs ?? 10_000 }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => { text += d; }).on('end', () => {
          try { resolve(res.statusCode === 200 ? JSON.parse(text) : { error: `HTTP ${res.statusCode}: ${text.slice(0, 200)}` }); } catch (err) { reject(err); }
        });
      });
      call.on('timeout', () => call.destroy(new Error('context deadline exceeded')));
      call.on('error', reject);
      call.end(body);
    }).catch((err: Error) => ({ error: err.message }));
    if (answer.error || answer.response?.uid !== review.request.uid) {
      throw new HttpError(500, 'InternalError', `Internal error occurred: failed calling webhook "validate.n0stack.io": ${answer.error ?? 'the response does not answer the request'}`);
    }
    if (!answer.response.allowed) {
      const status = answer.response.status ?? {};
      throw new HttpError(status.code ?? 403, status.reason ?? 'Forbidden', `admission webhook "validate.n0stack.io" denied the request: ${status.message ?? ''}`);
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const username = this.user(req);
    const url = new URL(req.url ?? '/', 'http://fake');
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] === 'apis' && parts[1] === 'coordination.k8s.io') return this.lease(req, res, parts);
    if (parts[0] === 'api' && parts[1] === 'v1' && parts[4] === 'events') return this.event(req, res, parts);
    if (parts[0] === 'api' && parts[1] === 'v1' && parts[4] === 'secrets') return this.secret(req, res, parts, url.searchParams);
    const kind = KINDS.find((k) => PLURALS[k] === parts[3]);
    if (parts[0] !== 'apis' || parts[1] !== GROUP || parts[2] !== VERSION || !kind || parts.length > 6 || (parts.length === 6 && parts[5] !== 'status')) {
      throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
    }
    const name = parts[4];
    const sub = parts[5] as 'status' | undefined;
    const q = url.searchParams;
    const method = req.method ?? 'GET';
    if (name === undefined) {
      if (method === 'GET' && (q.get('watch') === 'true' || q.get('watch') === '1')) return this.watch(kind, q, res);
      if (method === 'GET') return this.send(res, 200, this.list(kind, q.get('labelSelector') ?? ''));
      if (method === 'POST') {
        const body = await this.body(req, q, true, res);
        await this.admitByWebhook('CREATE', kind, username, body, null);
        return this.send(res, 201, this.create(kind, body));
      }
    } else {
      if (method === 'GET') return this.send(res, 200, this.existing(kind, name));
      if (method === 'PUT') {
        const body = await this.body(req, q, true, res);
        if (!sub) await this.admitByWebhook('UPDATE', kind, username, body, clone(this.existing(kind, name)));
        return this.send(res, 200, this.update(kind, name, body, sub));
      }
      if (method === 'PATCH') return this.send(res, 200, this.patch(kind, name, String(req.headers['content-type'] ?? ''), await this.body(req, q, false), sub, q, res));
      if (method === 'DELETE' && !sub) {
        const raw = await this.rawBody(req);
        await this.admitByWebhook('DELETE', kind, username, null, clone(this.existing(kind, name)));
        return this.send(res, 200, this.delete(kind, name, raw));
      }
    }
    throw new HttpError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
  }

  /** /apis/coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}] */
  private async lease(req: http.IncomingMessage, res: http.ServerResponse, parts: string[]): Promise<void> {
    const [, , version, namespaces, ns, leases, name, ...rest] = parts;
    if (version !== 'v1' || namespaces !== 'namespaces' || leases !== 'leases' || !ns || rest.length) throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
    const key = (n: string) => `${ns}/${n}`;
    const notFound = (n: string) => new HttpError(404, 'NotFound', `leases.coordination.k8s.io "${n}" not found`, { name: n, group: 'coordination.k8s.io', kind: 'leases' });
    const method = req.method ?? 'GET';
    if (method === 'GET' && name) {
      const obj = this.leases.get(key(name));
      if (!obj) throw notFound(name);
      return this.send(res, 200, obj);
    }
    const check = (obj: Obj, n: string) => {
      if (obj?.kind !== undefined && obj.kind !== 'Lease') throw new HttpError(400, 'BadRequest', `the kind in the data (${obj.kind}) is not Lease`);
      if (typeof obj?.metadata?.name !== 'string' || !DNS_SUBDOMAIN.test(obj.metadata.name) || obj.metadata.name !== n) throw new HttpError(422, 'Invalid', `Lease.coordination.k8s.io "${n}" is invalid: metadata.name: Invalid value`);
      const spec = (obj.spec ?? {}) as Record<string, unknown>;
      for (const f of ['acquireTime', 'renewTime'] as const) {
        // MicroTime: RFC 3339 with exactly six fractional digits, or Go's parser refuses it.
        if (spec[f] !== undefined && !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$/.test(String(spec[f]))) {
          throw new HttpError(400, 'BadRequest', `parsing time "${spec[f]}" as "2006-01-02T15:04:05.000000Z07:00": cannot parse`);
        }
      }
    };
    const stored = (obj: Obj, old?: Obj): Obj => ({
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', spec: obj.spec,
      metadata: { ...obj.metadata, namespace: ns, uid: old?.metadata.uid ?? randomUUID(), creationTimestamp: old?.metadata.creationTimestamp ?? now(), resourceVersion: String(++this.rev) },
    });
    if (method === 'POST' && !name) {
      const obj = JSON.parse(await this.rawBody(req)) as Obj;
      check(obj, obj?.metadata?.name);
      if (this.leases.has(key(obj.metadata.name))) throw new HttpError(409, 'AlreadyExists', `leases.coordination.k8s.io "${obj.metadata.name}" already exists`);
      const created = stored(obj);
      this.leases.set(key(obj.metadata.name), created);
      return this.send(res, 201, created);
    }
    if (method === 'PUT' && name) {
      const obj = JSON.parse(await this.rawBody(req)) as Obj;
      check(obj, name);
      const old = this.leases.get(key(name));
      if (!old) throw notFound(name);
      const rv = obj.metadata.resourceVersion;
      if (rv && rv !== old.metadata.resourceVersion) throw new HttpError(409, 'Conflict', `Operation cannot be fulfilled on leases.coordination.k8s.io "${name}": the object has been modified; please apply your changes to the latest version and try again`);
      const updated = stored(obj, old);
      this.leases.set(key(name), updated);
      return this.send(res, 200, updated);
    }
    throw new HttpError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
  }

  /** /api/v1/namespaces/{ns}/events[/{name}] */
  private async event(req: http.IncomingMessage, res: http.ServerResponse, parts: string[]): Promise<void> {
    const [, , namespaces, ns, , name, ...rest] = parts;
    if (namespaces !== 'namespaces' || !ns || !DNS_SUBDOMAIN.test(ns) || rest.length) throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
    const key = (n: string) => `${ns}/${n}`;
    const notFound = (n: string) => new HttpError(404, 'NotFound', `events "${n}" not found`, { name: n, kind: 'events' });
    const check = (obj: Obj) => {
      const n = obj?.metadata?.name;
      const invalid = (field: string, msg: string) => new HttpError(422, 'Invalid', `Event "${n}" is invalid: ${field}: ${msg}`, { name: n, kind: 'Event', causes: [{ reason: 'FieldValueInvalid', message: msg, field }] });
      if (typeof n !== 'string' || !DNS_SUBDOMAIN.test(n) || n.length > 253) throw invalid('metadata.name', 'Invalid value: a lowercase RFC 1123 subdomain');
      if (obj.metadata.namespace !== undefined && obj.metadata.namespace !== ns) throw invalid('metadata.namespace', 'does not match the namespace of the request');
      const io = obj.involvedObject as Record<string, unknown> | undefined;
      if (!io || typeof io.kind !== 'string' || typeof io.name !== 'string') throw invalid('involvedObject', 'Required value');
      if (obj.type !== 'Normal' && obj.type !== 'Warning') throw invalid('type', 'Unsupported value: must be Normal or Warning');
      if (typeof obj.reason !== 'string' || obj.reason.length > 128) throw invalid('reason', 'must be at most 128 characters');
      if (obj.message !== undefined && (typeof obj.message !== 'string' || obj.message.length > 4096)) throw invalid('message', 'must be at most 4096 characters');
    };
    const method = req.method ?? 'GET';
    if (method === 'GET' && !name) {
      const items = [...this.events.entries()].filter(([k]) => k.startsWith(`${ns}/`)).map(([, v]) => v);
      return this.send(res, 200, { apiVersion: 'v1', kind: 'EventList', metadata: { resourceVersion: String(this.rev) }, items });
    }
    if (method === 'GET' && name) {
      const obj = this.events.get(key(name));
      if (!obj) throw notFound(name);
      return this.send(res, 200, obj);
    }
    if (method === 'POST' && !name) {
      const obj = JSON.parse(await this.rawBody(req)) as Obj;
      check(obj);
      if (this.events.has(key(obj.metadata.name))) throw new HttpError(409, 'AlreadyExists', `events "${obj.metadata.name}" already exists`);
      const created: Obj = { ...obj, apiVersion: 'v1', kind: 'Event', metadata: { ...obj.metadata, namespace: ns, uid: randomUUID(), creationTimestamp: now(), resourceVersion: String(++this.rev) } };
      this.events.set(key(obj.metadata.name), created);
      return this.send(res, 201, created);
    }
    if (method === 'PATCH' && name) {
      const old = this.events.get(key(name));
      if (!old) throw notFound(name);
      if (!String(req.headers['content-type'] ?? '').startsWith('application/merge-patch+json')) throw new HttpError(415, 'UnsupportedMediaType', 'this stand-in takes only merge patches of events');
      const patched = mergePatch(clone(old), JSON.parse(await this.rawBody(req))) as Obj;
      check(patched);
      const updated: Obj = { ...patched, metadata: { ...old.metadata, resourceVersion: String(++this.rev) } };
      this.events.set(key(name), updated);
      return this.send(res, 200, updated);
    }
    if (method === 'DELETE' && name) {
      if (!this.events.delete(key(name))) throw notFound(name);
      return this.send(res, 200, { kind: 'Status', apiVersion: 'v1', status: 'Success' });
    }
    throw new HttpError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
  }

  /** /api/v1/namespaces/{ns}/secrets[/{name}]: create, get, list (label selector), delete. */
  private async secret(req: http.IncomingMessage, res: http.ServerResponse, parts: string[], q: URLSearchParams): Promise<void> {
    const [, , namespaces, ns, , name, ...rest] = parts;
    if (namespaces !== 'namespaces' || !ns || !DNS_SUBDOMAIN.test(ns) || rest.length) throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
    const key = (n: string) => `${ns}/${n}`;
    const notFound = (n: string) => new HttpError(404, 'NotFound', `secrets "${n}" not found`, { name: n, kind: 'secrets' });
    const method = req.method ?? 'GET';
    if (method === 'GET' && !name) {
      let selector: ReturnType<typeof parseLabelSelector>;
      try { selector = parseLabelSelector(q.get('labelSelector') ?? ''); } catch (err) { throw new HttpError(400, 'BadRequest', `unable to parse requirement: ${(err as Error).message}`); }
      const items = [...this.secrets.entries()].filter(([k, v]) => k.startsWith(`${ns}/`) && matchesLabels(v.metadata.labels, selector)).map(([, v]) => v);
      return this.send(res, 200, { apiVersion: 'v1', kind: 'SecretList', metadata: { resourceVersion: String(this.rev) }, items });
    }
    if (method === 'GET' && name) {
      const obj = this.secrets.get(key(name));
      if (!obj) throw notFound(name);
      return this.send(res, 200, obj);
    }
    if (method === 'POST' && !name) {
      const obj = JSON.parse(await this.rawBody(req)) as Obj;
      const n = obj?.metadata?.name;
      if (typeof n !== 'string' || !DNS_SUBDOMAIN.test(n) || n.length > 253) throw new HttpError(422, 'Invalid', `Secret "${n}" is invalid: metadata.name: Invalid value`);
      const data = (obj as { data?: Record<string, unknown> }).data ?? {};
      for (const [k, v] of Object.entries(data)) if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw new HttpError(400, 'BadRequest', `Secret.data[${k}]: illegal base64 data`);
      if (this.secrets.has(key(n))) throw new HttpError(409, 'AlreadyExists', `secrets "${n}" already exists`, { name: n, kind: 'secrets' });
      const created: Obj = { ...obj, apiVersion: 'v1', kind: 'Secret', metadata: { ...obj.metadata, namespace: ns, uid: randomUUID(), creationTimestamp: now(), resourceVersion: String(++this.rev) } };
      this.secrets.set(key(n), created);
      return this.send(res, 201, created);
    }
    if (method === 'DELETE' && name) {
      if (!this.secrets.delete(key(name))) throw notFound(name);
      return this.send(res, 200, { kind: 'Status', apiVersion: 'v1', status: 'Success' });
    }
    throw new HttpError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
  }

  private async rawBody(req: http.IncomingMessage): Promise<string> {
    let size = 0;
    const chunks: Buffer[] = [];
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) throw new HttpError(413, 'RequestEntityTooLarge', 'the request is too large');
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /** Decodes a JSON body; for an object body also prunes unknown fields (or refuses them when Strict). */
  private async body(req: http.IncomingMessage, q: URLSearchParams, decodeObject = true, res?: http.ServerResponse): Promise<any> {
    let parsed: any;
    try { parsed = JSON.parse(await this.rawBody(req)); } catch (err) {
      if (err instanceof HttpError) throw err;
      throw new HttpError(400, 'BadRequest', `the request body is not valid JSON: ${(err as Error).message}`);
    }
    if (decodeObject) this.decode(parsed, q, res);
    return parsed;
  }

  private decode(obj: any, q: URLSearchParams, res?: http.ServerResponse): void {
    if (!obj || typeof obj !== 'object' || Array.isArray(obj) || !obj.metadata || typeof obj.metadata !== 'object') throw new HttpError(400, 'BadRequest', 'the body must be an object with metadata');
    const kind = obj.kind as Kind;
    const entry = this.schemas.get(kind);
    if (obj.apiVersion !== `${GROUP}/${VERSION}` || !entry) throw new HttpError(400, 'BadRequest', `the API version/kind in the data (${obj.apiVersion}, ${obj.kind}) does not match the expected one`);
    const unknown: string[] = [];
    prune(obj, entry.schema, '', unknown, true);
    if (unknown.length && q.get('fieldValidation') === 'Strict') throw new HttpError(400, 'BadRequest', `strict decoding error: ${unknown.map((u) => `unknown field "${u}"`).join(', ')}`);
    if (unknown.length) res?.setHeader('Warning', unknown.map((u) => `299 - "unknown field \\"${u}\\""`).join(', '));
  }

  private qualified(kind: Kind): string { return `${PLURALS[kind]}.${GROUP}`; }

  private existing(kind: Kind, name: string): Obj {
    const obj = this.objects.get(kind)!.get(name);
    if (!obj) throw new HttpError(404, 'NotFound', `${this.qualified(kind)} "${name}" not found`, { name, group: GROUP, kind: PLURALS[kind] });
    return obj;
  }

  private invalid(kind: Kind, name: string, field: string, message: string): HttpError {
    return new HttpError(422, 'Invalid', `${kind}.${GROUP} "${name}" is invalid: ${field}: ${message}`, { name, group: GROUP, kind, causes: [{ reason: 'FieldValueInvalid', message, field }] });
  }

  private conflict(kind: Kind, name: string, detail = 'the object has been modified; please apply your changes to the latest version and try again'): HttpError {
    return new HttpError(409, 'Conflict', `Operation cannot be fulfilled on ${this.qualified(kind)} "${name}": ${detail}`, { name, group: GROUP, kind: PLURALS[kind] });
  }

  private validate(kind: Kind, obj: Obj, old?: Obj): void {
    const { name, labels, annotations, finalizers } = obj.metadata;
    if (typeof name !== 'string' || !name) throw this.invalid(kind, String(name ?? ''), 'metadata.name', 'Required value: name is required');
    if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) throw this.invalid(kind, name, 'metadata.name', `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`);
    for (const [k, v] of Object.entries(labels ?? {})) {
      const problem = qualifiedKeyProblem(k) ?? (typeof v === 'string' ? labelValueProblem(v) : 'must be a string');
      if (problem) throw this.invalid(kind, name, 'metadata.labels', `Invalid value: "${k}": ${problem}`);
    }
    // Annotation keys are qualified names like label keys (at most one '/'), so the seed's
    // n0core/provisioning/... keys are refused by a real server too.
    for (const k of Object.keys(annotations ?? {})) {
      const problem = qualifiedKeyProblem(k);
      if (problem) throw this.invalid(kind, name, 'metadata.annotations', `Invalid value: "${k}": ${problem}`);
    }
    if (Buffer.byteLength(JSON.stringify(annotations ?? {})) > MAX_ANNOTATION_BYTES) throw this.invalid(kind, name, 'metadata.annotations', `Too long: must have at most ${MAX_ANNOTATION_BYTES} bytes`);
    if (old?.metadata.deletionTimestamp && (finalizers ?? []).some((f: string) => !(old.metadata.finalizers ?? []).includes(f))) {
      throw this.invalid(kind, name, 'metadata.finalizers', 'Forbidden: no new finalizers can be added if the object is being deleted');
    }
    const { validate } = this.schemas.get(kind)!;
    if (!validate(obj)) {
      const e = validate.errors![0];
      throw this.invalid(kind, name, e.instancePath.replace(/^\//, '').replace(/\//g, '.') || '<root>', `Invalid value: ${e.message}`);
    }
    this.validateCel(kind, name, obj, old);
  }

  /** The CRD's CEL rules, all of them, reported together as the API server does. */
  private validateCel(kind: Kind, name: string, obj: Obj, old?: Obj): void {
    const { schema, cel } = this.schemas.get(kind)!;
    const rootView = (o: Obj) => ({ ...o, metadata: Object.fromEntries(Object.entries(o.metadata).filter(([k]) => k === 'name' || k === 'generateName')) });
    const causes: { reason: string; message: string; field: string }[] = [];
    for (const c of cel) {
      const self = at(rootView(obj), c.path);
      if (self === undefined) continue;
      const oldSelf = old ? at(rootView(old), c.path) : undefined;
      if (c.transition && oldSelf === undefined) continue;
      const sub = at({ properties: schema.properties }, c.path.flatMap((k) => ['properties', k]));
      const base = c.path.join('.');
      const field = `${base}${c.fieldPath ?? ''}`.replace(/^\./, '') || '<root>';
      let ok: unknown;
      try {
        ok = c.program({ self: asCel(self, c.path.length ? sub : schema), ...(c.transition ? { oldSelf: asCel(oldSelf, c.path.length ? sub : schema) } : {}) });
      } catch (err) {
        causes.push({ reason: 'FieldValueInvalid', field: base || '<root>', message: `Invalid value: "${c.type}": ${c.rule}: evaluation error: ${(err as Error).message}` });
        continue;
      }
      if (ok === true) continue;
      causes.push(c.reason === 'FieldValueForbidden'
        ? { reason: 'FieldValueForbidden', field, message: `Forbidden: ${c.message}` }
        : { reason: c.reason ?? 'FieldValueInvalid', field, message: `Invalid value: "${c.type}": ${c.message}` });
    }
    if (!causes.length) return;
    const each = causes.map((x) => `${x.field}: ${x.message}`);
    throw new HttpError(422, 'Invalid', `${kind}.${GROUP} "${name}" is invalid: ${each.length === 1 ? each[0] : `[${each.join(', ')}]`}`, { name, group: GROUP, kind, causes });
  }

  private list(kind: Kind, labelSelector: string): { apiVersion: string; kind: string; metadata: { resourceVersion: string }; items: Obj[] } {
    let selector;
    try { selector = parseLabelSelector(labelSelector); } catch (err) { throw new HttpError(400, 'BadRequest', `unable to parse requirement: ${(err as Error).message}`); }
    const items = [...this.objects.get(kind)!.values()].filter((o) => matchesLabels(o.metadata.labels, selector)).sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    return { apiVersion: `${GROUP}/${VERSION}`, kind: `${kind}List`, metadata: { resourceVersion: String(this.rev) }, items };
  }

  private record(kind: Kind, type: EventType, object: Obj): void {
    const event = { rev: this.rev, kind, type, object: clone(object) };
    this.history.push(event);
    for (const w of this.watchers) if (w.kind === kind && matchesLabels(object.metadata.labels, w.selector)) w.res.write(`${JSON.stringify({ type, object: event.object })}\n`);
  }

  private create(kind: Kind, body: Obj): Obj {
    if (body.kind !== kind) throw new HttpError(400, 'BadRequest', `the kind in the data (${body.kind}) does not match ${kind}`);
    if (body.metadata.resourceVersion) throw new HttpError(500, 'InternalError', 'Internal error occurred: resourceVersion should not be set on objects to be created');
    const obj: Obj = { ...body, metadata: { ...body.metadata, uid: randomUUID(), creationTimestamp: now(), generation: 1 } };
    delete obj.status;
    delete obj.metadata.deletionTimestamp;
    delete obj.metadata.deletionGracePeriodSeconds;
    this.validate(kind, obj);
    const name = obj.metadata.name as string;
    if (this.objects.get(kind)!.has(name)) throw new HttpError(409, 'AlreadyExists', `${this.qualified(kind)} "${name}" already exists`, { name, group: GROUP, kind: PLURALS[kind] });
    obj.metadata.resourceVersion = String(++this.rev);
    this.objects.get(kind)!.set(name, obj);
    this.record(kind, 'ADDED', obj);
    return obj;
  }

  private update(kind: Kind, name: string, body: Obj, sub?: 'status'): Obj {
    const old = this.existing(kind, name);
    if (body.kind !== kind || body.metadata.name !== name) throw new HttpError(400, 'BadRequest', `the name of the object (${body.metadata.name}) does not match the name on the URL (${name})`);
    if (!body.metadata.resourceVersion) throw this.invalid(kind, name, 'metadata.resourceVersion', 'Invalid value: 0x0: must be specified for an update');
    if (body.metadata.uid && body.metadata.uid !== old.metadata.uid) throw this.conflict(kind, name, `Precondition failed: UID in precondition: ${body.metadata.uid}, UID in object meta: ${old.metadata.uid}`);
    if (body.metadata.resourceVersion !== old.metadata.resourceVersion) throw this.conflict(kind, name);
    let next: Obj;
    if (sub === 'status') {
      next = clone(old);
      if ('status' in body) next.status = body.status; else delete next.status;
    } else {
      next = { ...body, metadata: { ...body.metadata } };
      if ('status' in old) next.status = old.status; else delete next.status;
      for (const f of ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation']) {
        if (f in old.metadata) next.metadata[f] = old.metadata[f]; else delete next.metadata[f];
      }
      const { metadata: _a, ...newRest } = next;
      const { metadata: _b, ...oldRest } = old;
      if (!isDeepStrictEqual(newRest, oldRest)) next.metadata.generation = old.metadata.generation + 1;
    }
    this.validate(kind, next, old);
    if (isDeepStrictEqual(next, old)) return old; // no-op: nothing stored, no new revision
    if (next.metadata.deletionTimestamp && !(next.metadata.finalizers ?? []).length) {
      // The update that empties the finalizers of a terminating object is its deletion.
      const gone = { ...clone(old), metadata: { ...clone(old.metadata), resourceVersion: String(++this.rev) } };
      this.objects.get(kind)!.delete(name);
      this.record(kind, 'DELETED', gone);
      return gone;
    }
    next.metadata.resourceVersion = String(++this.rev);
    this.objects.get(kind)!.set(name, next);
    this.record(kind, 'MODIFIED', next);
    return next;
  }

  private patch(kind: Kind, name: string, contentType: string, patch: unknown, sub: 'status' | undefined, q: URLSearchParams, res: http.ServerResponse): Obj {
    const current = clone(this.existing(kind, name));
    let patched: Obj;
    const type = contentType.split(';')[0].trim();
    if (type === 'application/json-patch+json') {
      if (!Array.isArray(patch)) throw new HttpError(400, 'BadRequest', 'json patch must be a list of operations');
      try {
        patched = applyPatch(current, patch as Operation[], true, true).newDocument;
      } catch (err) {
        const e = err as { name?: string; operation?: { path?: string }; message: string };
        const message = e.name === 'TEST_OPERATION_FAILED' ? `testing value ${e.operation?.path} failed: test failed` : e.message.split('\n')[0];
        throw new HttpError(422, 'Invalid', message);
      }
    } else if (type === 'application/merge-patch+json') {
      patched = mergePatch(current, patch) as Obj;
    } else {
      throw new HttpError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json`);
    }
    this.decode(patched, q, res);
    // The stored object's resourceVersion is in `current`, so only a patch that set another one fails here.
    return this.update(kind, name, patched, sub);
  }

  private delete(kind: Kind, name: string, raw: string): unknown {
    const old = this.existing(kind, name);
    let options: { preconditions?: { resourceVersion?: string; uid?: string } } = {};
    try { if (raw.trim()) options = JSON.parse(raw); } catch { throw new HttpError(400, 'BadRequest', 'DeleteOptions is not valid JSON'); }
    const pre = options.preconditions ?? {};
    if (pre.uid !== undefined && pre.uid !== old.metadata.uid) throw this.conflict(kind, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid}`);
    if (pre.resourceVersion !== undefined && pre.resourceVersion !== old.metadata.resourceVersion) {
      throw this.conflict(kind, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`);
    }
    if ((old.metadata.finalizers ?? []).length) {
      if (old.metadata.deletionTimestamp) return old;
      const marked = { ...clone(old), metadata: { ...clone(old.metadata), deletionTimestamp: now(), deletionGracePeriodSeconds: 0, resourceVersion: String(++this.rev) } };
      this.objects.get(kind)!.set(name, marked);
      this.record(kind, 'MODIFIED', marked);
      return marked;
    }
    const gone = { ...clone(old), metadata: { ...clone(old.metadata), resourceVersion: String(++this.rev) } };
    this.objects.get(kind)!.delete(name);
    this.record(kind, 'DELETED', gone);
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, group: GROUP, kind: PLURALS[kind], uid: old.metadata.uid } };
  }

  private watch(kind: Kind, q: URLSearchParams, res: http.ServerResponse): void {
    let selector;
    try { selector = parseLabelSelector(q.get('labelSelector') ?? ''); } catch (err) { throw new HttpError(400, 'BadRequest', `unable to parse requirement: ${(err as Error).message}`); }
    const rvParam = q.get('resourceVersion') ?? '';
    if (rvParam !== '' && !/^\d+$/.test(rvParam)) throw new HttpError(400, 'BadRequest', `resourceVersion: Invalid value: "${rvParam}": must be a decimal revision`);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    const line = (type: string, object: unknown) => res.write(`${JSON.stringify({ type, object })}\n`);
    const from = Number(rvParam || 0);
    if (rvParam !== '' && from !== 0 && from < this.compacted) {
      // What the watch cache does: a 200 stream carrying one ERROR event, then the end.
      line('ERROR', { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${from} (${this.compacted})`, reason: 'Expired', code: 410 });
      res.end();
      return;
    }
    if (from === 0) {
      for (const o of this.list(kind, q.get('labelSelector') ?? '').items) line('ADDED', o);
    } else {
      for (const e of this.history) if (e.rev > from && e.kind === kind && matchesLabels(e.object.metadata.labels, selector)) line(e.type, e.object);
    }
    const watcher: Watcher = { kind, res, selector };
    this.watchers.add(watcher);
    const timers: NodeJS.Timeout[] = [];
    if (q.get('allowWatchBookmarks') === 'true') {
      timers.push(setInterval(() => line('BOOKMARK', { apiVersion: `${GROUP}/${VERSION}`, kind, metadata: { resourceVersion: String(this.rev) } }), this.options.bookmarkIntervalMs ?? 60_000));
    }
    const timeout = Number(q.get('timeoutSeconds') ?? 0);
    if (timeout > 0) timers.push(setTimeout(() => res.end(), timeout * 1000));
    res.on('close', () => { timers.forEach((t) => clearTimeout(t)); this.watchers.delete(watcher); });
  }
}
