// The kubernetes Store backend: documents are custom resources of the cluster-scoped CRDs in
// crds/*.yaml (n0stack.io/v1alpha1) on a management cluster, reached with @kubernetes/client-node.
// The API server owns uid, resourceVersion, generation and creationTimestamp, optimistic
// concurrency, finalizers and watch history; this file maps the Store contract onto its REST
// semantics and its errors onto api/errors.ts. Every write is validated here first
// (validateDocument), so bad input changes nothing even before the server sees it.
//
// What is proven here, and what is not: the tests run this backend, through the real
// @kubernetes/client-node HTTP client, against api/store/testing/fake-apiserver.ts, a stand-in
// written from the apiserver's documented and source-level rules for custom resources. They prove
// that this file sends well-formed requests (paths, patch content types, DeleteOptions
// preconditions, watch parameters, bearer token) and interprets Status errors, watch streams,
// bookmarks, ERROR 410 events and server-side stream ends correctly *as the fake models them*.
// They do not prove that a real kube-apiserver behaves exactly like the fake: its watch cache,
// bookmark timing, exact Status reasons/messages, managedFields, admission webhooks, RBAC,
// TLS/exec/OIDC authentication, API priority and fairness (429), etcd request-size limits and
// pruning/defaulting details are untested. In particular a real server refuses the CRDs while
// they use `additionalProperties: false` next to `properties` (structuralProblems() in the fake
// lists them), it refuses names with '_' (CR names must be DNS subdomains), which
// api/names.ts allows for the seed's examples, and it refuses annotation keys that are not
// qualified names, such as the seed's n0core/provisioning/... keys: documents carry canonical keys
// (api/seed-annotations.ts translates the seed's at the edges), and this backend refuses both
// kinds of problem itself with a clear error (kubernetes-names.ts), as the fake and a real server do. Run the conformance suite against a real cluster
// (kind/k3s) before relying on this backend.
import * as http from 'node:http';
import * as https from 'node:https';
import {
  ApiException, CustomObjectsApi, KubeConfig, Observable, PatchStrategy, Watch, setHeaderOptions,
  type ConfigurationOptions, type ObservableMiddleware,
} from '@kubernetes/client-node';
import { applyPatch, type Operation } from 'fast-json-patch';
import {
  AlreadyExistsError, ConflictError, DeadlineExceededError, FailedPreconditionError, InvalidArgumentError,
  N0Error, NotFoundError, TooOldError, UnavailableError,
} from '../errors';
import { logger } from '../log';
import { validateDocument } from '../schema';
import { GROUP, VERSION, PLURALS, isKind, type AnyResource, type Kind, type KindMap } from '../types';
import { checkAnnotationKeys, kubernetesName } from './kubernetes-names';
import { parseLabelSelector } from './labels';
import { KubernetesEventStore } from './kubernetes-events';
import { KubernetesSecretStore } from './kubernetes-secrets';
import { mergePatch } from './kv';
import type { DeleteOptions, ListOptions, ListResult, Patch, PatchOptions, Store, UpdateOptions, WatchEvent, WatchOptions } from './store';

const log = logger('store.kubernetes');

export interface KubernetesStoreOptions {
  kubeConfig?: KubeConfig;
  /** API server URL; with `token`, used instead of a kubeconfig. */
  server?: string;
  token?: string;
  /** Deadline of every non-watch request (default 30 s). */
  requestTimeoutMs?: number;
  /** How long a single watch request may stay open before the server ends it and we resume (default 300 s). */
  watchTimeoutSeconds?: number;
  /** Namespace of the core/v1 Events (default: the service account's, else `default`). */
  eventNamespace?: string;
}

type Op = 'get' | 'list' | 'create' | 'update' | 'patch' | 'delete' | 'watch';

function statusOf(err: ApiException<unknown>): { message?: string; reason?: string; details?: { causes?: { field?: string; message?: string }[] } } {
  let body: unknown = err.body;
  if (typeof body === 'string') { const text = body; try { body = JSON.parse(text); } catch { return { message: text }; } }
  return body && typeof body === 'object' ? body as ReturnType<typeof statusOf> : {};
}

/** Maps a client-node failure to the Store's typed errors. Exported for unit tests. */
export function mapError(err: unknown, op: Op, kind: string, name: string): N0Error {
  if (err instanceof N0Error) return err;
  if (err instanceof ApiException) {
    const status = statusOf(err);
    const message = status.message ?? `HTTP ${err.code}`;
    switch (err.code) {
      case 404: return new NotFoundError(kind, name);
      case 409:
        if (op === 'create' || status.reason === 'AlreadyExists') return new AlreadyExistsError(kind, name);
        return new ConflictError(kind, name, message);
      case 400:
      case 422: {
        // A failed JSON Patch `test` op is the caller's compare-and-swap losing, not bad input.
        if (op === 'patch' && /^testing value .* failed/.test(message)) return new ConflictError(kind, name, message);
        return new InvalidArgumentError(`${kind} "${name}": ${message}`, status.details?.causes?.[0]?.field);
      }
      case 410: return new TooOldError('?', message);
      case 401:
      case 403: return new FailedPreconditionError(`kubernetes API refused ${op} of ${kind} "${name}" (HTTP ${err.code}): ${message}; check the credentials and RBAC for ${GROUP}`);
      case 413: return new InvalidArgumentError(`${kind} "${name}" is too large for the API server: ${message}`, '(document)');
      case 429:
      case 500:
      case 502:
      case 503:
      case 504: return new UnavailableError(`kubernetes API ${op} of ${kind} "${name}" failed (HTTP ${err.code}): ${message}`);
      default: return new N0Error('Internal', `kubernetes API ${op} of ${kind} "${name}" failed (HTTP ${err.code}): ${message}`);
    }
  }
  const e = err as { name?: string; message?: string; code?: string };
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError') return new DeadlineExceededError(`kubernetes API ${op} of ${kind} "${name}" did not answer in time`);
  return new UnavailableError(`kubernetes API ${op} of ${kind} "${name}" failed: ${e?.message ?? String(err)}`);
}

/** Strips what only a real server adds and what Store callers never see. */
function clean<T extends AnyResource>(obj: T): T {
  const meta = obj.metadata as unknown as Record<string, unknown>;
  delete meta.managedFields;
  delete meta.selfLink;
  return obj;
}

function isConnectionReset(err: unknown): boolean {
  const e = err as { code?: string; message?: string; cause?: { code?: string } } | undefined;
  return e?.code === 'ECONNRESET' || e?.cause?.code === 'ECONNRESET' || /socket hang up|ECONNRESET/.test(e?.message ?? '');
}

export class KubernetesStore implements Store {
  readonly backend = 'kubernetes' as const;
  private readonly kc: KubeConfig;
  private readonly api: CustomObjectsApi;
  private readonly timeoutMs: number;
  private readonly watchTimeoutSeconds: number;
  private readonly watches = new Set<AbortController>();
  private closed = false;
  private agent: http.Agent | undefined;
  /** core/v1 Events (kubernetes-events.ts). */
  readonly events: KubernetesEventStore;
  /** core/v1 Secrets beside the Events (kubernetes-secrets.ts). */
  readonly secrets: KubernetesSecretStore;

  constructor(options: KubernetesStoreOptions = {}) {
    if (options.kubeConfig) {
      this.kc = options.kubeConfig;
    } else {
      this.kc = new KubeConfig();
      if (options.server) {
        this.kc.loadFromOptions({
          // client-node refuses plain http:// unless skipTLSVerify is set; there is no TLS to
          // verify then (kubectl proxy, the test stand-in). https:// is always verified.
          clusters: [{ name: 'n0stack', server: options.server, skipTLSVerify: options.server.startsWith('http://') }],
          users: [{ name: 'n0stack', ...(options.token ? { token: options.token } : {}) }],
          contexts: [{ name: 'n0stack', cluster: 'n0stack', user: 'n0stack' }],
          currentContext: 'n0stack',
        });
      } else {
        this.kc.loadFromDefault();
      }
    }
    this.api = this.kc.makeApiClient(CustomObjectsApi);
    this.timeoutMs = options.requestTimeoutMs ?? 30_000;
    this.events = new KubernetesEventStore(this.kc, options.eventNamespace, this.timeoutMs);
    this.secrets = new KubernetesSecretStore(this.kc, options.eventNamespace, this.timeoutMs);
    this.watchTimeoutSeconds = options.watchTimeoutSeconds ?? 300;
  }

  /** Per-request options: a deadline on the HTTP request itself, so no call can hang. */
  private opts(contentType?: string): ConfigurationOptions {
    const deadline: ObservableMiddleware = {
      pre: (ctx) => {
        ctx.setSignal(AbortSignal.timeout(this.timeoutMs));
        const agent = this.keepAlive(ctx.getAgent());
        if (agent) ctx.setAgent(agent);
        return new Observable(Promise.resolve(ctx));
      },
      post: (res) => new Observable(Promise.resolve(res)),
    };
    const base: ConfigurationOptions = { middleware: [deadline], middlewareMergeStrategy: 'append' };
    return contentType ? setHeaderOptions('Content-Type', contentType, base) : base;
  }

  /**
   * client-node 1.x builds a new agent for every request, so every call opens a new connection
   * (and TLS handshake). Reuse one keep-alive agent with the same TLS options instead. Proxy
   * agents (other classes) are left alone.
   */
  private keepAlive(agent: http.Agent | https.Agent | undefined): http.Agent | undefined {
    if (!agent) return undefined;
    if (agent.constructor === https.Agent) {
      this.agent ??= new https.Agent({ ...(agent as https.Agent & { options: https.AgentOptions }).options, keepAlive: true });
    } else if (agent.constructor === http.Agent) {
      this.agent ??= new http.Agent({ keepAlive: true });
    } else {
      return undefined;
    }
    agent.destroy();
    return this.agent;
  }

  private ref(kind: Kind) { return { group: GROUP, version: VERSION, plural: PLURALS[kind] }; }

  private async call<T>(op: Op, kind: Kind, name: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      // A kept-alive connection the server closed just as we reused it fails before any answer;
      // reads are safe to send again (writes are not: the first may have landed).
      if ((op === 'get' || op === 'list') && isConnectionReset(err)) {
        try { return await fn(); } catch (again) { throw mapError(again, op, kind, name); }
      }
      throw mapError(err, op, kind, name);
    }
  }

  private checkKind(kind: unknown): Kind {
    if (!isKind(kind)) throw new InvalidArgumentError(`kind ${JSON.stringify(kind)} is not one of ${Object.keys(PLURALS).join(', ')}`, 'kind');
    return kind;
  }

  async get<K extends Kind>(kind: K, name: string): Promise<KindMap[K]> {
    this.checkKind(kind);
    kubernetesName(name);
    const obj = await this.call('get', kind, name, () => this.api.getClusterCustomObject({ ...this.ref(kind), name }, this.opts()));
    return clean(obj as KindMap[K]);
  }

  async list<K extends Kind>(kind: K, options: ListOptions = {}): Promise<ListResult<KindMap[K]>> {
    this.checkKind(kind);
    // Set-based selectors are outside the Store contract, so refuse them even though a server would take them.
    parseLabelSelector(options.labelSelector);
    const labelSelector = options.labelSelector?.trim() || undefined;
    const res = await this.call('list', kind, '*', () => this.api.listClusterCustomObject({ ...this.ref(kind), labelSelector }, this.opts()));
    const list = res as { items: KindMap[K][]; metadata: { resourceVersion: string } };
    return { items: list.items.map((i) => clean({ ...i, apiVersion: i.apiVersion ?? `${GROUP}/${VERSION}`, kind: i.kind ?? kind })), resourceVersion: list.metadata.resourceVersion };
  }

  async create<T extends AnyResource>(doc: T): Promise<T> {
    const body = structuredClone(doc);
    // The server assigns these; a set resourceVersion would even be refused on create.
    for (const f of ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp'] as const) delete body.metadata?.[f];
    validateDocument(body);
    kubernetesName(body.metadata.name);
    checkAnnotationKeys(body);
    const kind = body.kind;
    const created = await this.call('create', kind, body.metadata.name, () =>
      this.api.createClusterCustomObject({ ...this.ref(kind), body, fieldValidation: 'Strict' }, this.opts()));
    return clean(created as T);
  }

  async update<T extends AnyResource>(doc: T, options: UpdateOptions = {}): Promise<T> {
    const body = structuredClone(doc);
    validateDocument(body);
    kubernetesName(body.metadata.name);
    checkAnnotationKeys(body);
    const { kind, metadata: { name, resourceVersion } } = body;
    if (!resourceVersion) throw new InvalidArgumentError(`${kind} "${name}": metadata.resourceVersion is required for an update`, 'metadata.resourceVersion');
    const req = { ...this.ref(kind), name, body, fieldValidation: 'Strict' };
    const updated = await this.call('update', kind, name, () => (options.subresource === 'status'
      ? this.api.replaceClusterCustomObjectStatus(req, this.opts())
      : this.api.replaceClusterCustomObject(req, this.opts())));
    return clean(updated as T);
  }

  async patch<K extends Kind>(kind: K, name: string, patch: Patch, options: PatchOptions = {}): Promise<KindMap[K]> {
    this.checkKind(kind);
    kubernetesName(name);
    // Apply locally to the current object first so an invalid result is refused before any write.
    // The server applies the patch again to whatever is current then, and validates it itself.
    const current = await this.get(kind, name);
    if (options.resourceVersion !== undefined && options.resourceVersion !== current.metadata.resourceVersion) {
      throw new ConflictError(kind, name, `resourceVersion ${options.resourceVersion} is not current`);
    }
    let patched: KindMap[K];
    let body: unknown;
    if (patch.type === 'json') {
      try {
        patched = applyPatch(structuredClone(current), patch.ops, true, false).newDocument;
      } catch (err) {
        const e = err as { name?: string; message: string };
        if (e.name === 'TEST_OPERATION_FAILED') throw new ConflictError(kind, name, `JSON Patch test failed: ${e.message.split('\n')[0]}`);
        throw new InvalidArgumentError(`${kind} "${name}": JSON Patch does not apply: ${e.message.split('\n')[0]}`, 'patch');
      }
      // A resourceVersion in the patched object is the server's precondition (409 when stale).
      body = options.resourceVersion !== undefined
        ? [...patch.ops, { op: 'replace', path: '/metadata/resourceVersion', value: options.resourceVersion } satisfies Operation]
        : patch.ops;
    } else {
      if (!patch.value || typeof patch.value !== 'object' || Array.isArray(patch.value)) throw new InvalidArgumentError('merge patch must be an object', 'patch');
      patched = mergePatch(structuredClone(current), patch.value) as KindMap[K];
      body = structuredClone(options.resourceVersion !== undefined
        ? { ...patch.value, metadata: { ...(patch.value.metadata as object | undefined), resourceVersion: options.resourceVersion } }
        : patch.value);
    }
    if (patched?.metadata?.name !== name || patched.kind !== kind) {
      throw new InvalidArgumentError(`${kind} "${name}": a patch may not change metadata.name or kind`, 'metadata.name');
    }
    // What the server will keep: status only on /status, everything but status otherwise.
    const effective = options.subresource === 'status' ? { ...current, status: patched.status } : { ...patched, status: current.status };
    if (effective.status === undefined) delete effective.status;
    validateDocument(effective);
    checkAnnotationKeys(effective);
    const contentType = patch.type === 'json' ? PatchStrategy.JsonPatch : PatchStrategy.MergePatch;
    const req = { ...this.ref(kind), name, body, fieldValidation: 'Strict' };
    const result = await this.call('patch', kind, name, () => (options.subresource === 'status'
      ? this.api.patchClusterCustomObjectStatus(req, this.opts(contentType))
      : this.api.patchClusterCustomObject(req, this.opts(contentType))));
    return clean(result as KindMap[K]);
  }

  async delete<K extends Kind>(kind: K, name: string, options: DeleteOptions = {}): Promise<KindMap[K] | undefined> {
    this.checkKind(kind);
    kubernetesName(name);
    const body = options.resourceVersion !== undefined ? { preconditions: { resourceVersion: options.resourceVersion } } : undefined;
    const res = await this.call('delete', kind, name, () => this.api.deleteClusterCustomObject({ ...this.ref(kind), name, body }, this.opts())) as { kind?: string };
    // Removed at once: the server answers with a Status. Held by finalizers: with the object.
    return res?.kind === 'Status' || !res ? undefined : clean(res as KindMap[K]);
  }

  watch<K extends Kind>(kind: K, options: WatchOptions = {}): AsyncIterable<WatchEvent<KindMap[K]>> {
    this.checkKind(kind);
    return { [Symbol.asyncIterator]: () => this.watchIterator(kind, options) };
  }

  private async *watchIterator<K extends Kind>(kind: K, options: WatchOptions): AsyncGenerator<WatchEvent<KindMap[K]>> {
    const { signal } = options;
    if (signal?.aborted || this.closed) return;
    // "From now on": a watch without resourceVersion would replay the current state as ADDED.
    let rv = options.resourceVersion ?? (await this.list(kind)).resourceVersion;
    type Item = { kind: 'event'; type: string; object: Record<string, unknown> } | { kind: 'end'; err: unknown };
    const queue: Item[] = [];
    let wake: (() => void) | undefined;
    const push = (item: Item) => { queue.push(item); wake?.(); };
    const onAbort = () => push({ kind: 'end', err: undefined });
    signal?.addEventListener('abort', onAbort);
    const path = `/apis/${GROUP}/${VERSION}/${PLURALS[kind]}`;
    let controller: AbortController | undefined;
    let quickEnds = 0;
    try {
      while (!signal?.aborted) {
        const opened = Date.now();
        controller = await new Watch(this.kc).watch(path,
          { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: this.watchTimeoutSeconds },
          (type, object) => push({ kind: 'event', type, object }),
          (err) => push({ kind: 'end', err }));
        this.watches.add(controller);
        let ended: { err: unknown } | undefined;
        while (!ended) {
          if (!queue.length) await new Promise<void>((r) => { wake = r; });
          wake = undefined;
          const item = queue.shift()!;
          if (item.kind === 'end') { ended = item; break; }
          const meta = (item.object?.metadata ?? {}) as { resourceVersion?: string };
          if (item.type === 'BOOKMARK') { if (meta.resourceVersion) rv = meta.resourceVersion; continue; }
          if (item.type === 'ERROR') {
            const status = item.object as { code?: number; message?: string };
            if (status.code === 410) throw new TooOldError(rv, status.message);
            throw new UnavailableError(`watch of ${kind} failed: ${status.message ?? JSON.stringify(status)}`);
          }
          if (item.type !== 'ADDED' && item.type !== 'MODIFIED' && item.type !== 'DELETED') continue;
          if (meta.resourceVersion) rv = meta.resourceVersion;
          yield { type: item.type, object: clean(item.object as unknown as KindMap[K]) };
        }
        this.watches.delete(controller);
        controller.abort();
        if (signal?.aborted || this.closed) return;
        const err = ended.err as { statusCode?: number; message?: string } | null | undefined;
        if (err) {
          if (err.statusCode === 410) throw new TooOldError(rv, err.message);
          throw new UnavailableError(`watch of ${kind} from resourceVersion ${rv} failed: ${err.message ?? String(err)}`);
        }
        // The server ended the stream (its timeout): resume from the last revision seen. A server
        // that keeps ending streams at once is failing, not timing out.
        quickEnds = Date.now() - opened < 1000 ? quickEnds + 1 : 0;
        if (quickEnds >= 5) throw new UnavailableError(`watch of ${kind} keeps ending at once (5 times from resourceVersion ${rv})`);
        log.debug('watch stream ended by the server; resuming', { kind, resourceVersion: rv });
        if (quickEnds) await new Promise((r) => setTimeout(r, 100 * quickEnds));
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (controller) { this.watches.delete(controller); controller.abort(); }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.watches) c.abort();
    this.watches.clear();
    this.agent?.destroy();
  }
}
