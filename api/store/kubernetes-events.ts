// Events in the Kubernetes shape: core/v1 Events in one namespace (the controllers' own, as
// client-go's recorder puts the Events of cluster-scoped objects in a namespace too), so
// `kubectl describe virtualmachine X` and `kubectl get events` show them. The API server expires
// them itself (--event-ttl), so sweep() has nothing to do. Writes are a create and merge patches
// of count/lastTimestamp/message, the verbs the chart's RBAC grants (create, patch); reads need
// get/list. watch() polls the list: the stand-in API server serves no watch on events, and a
// `n0ctl get events -w` a second late is fine.
import * as fs from 'node:fs';
import {
  ApiException, CoreV1Api, KubeConfig, Observable, PatchStrategy, setHeaderOptions,
  type ConfigurationOptions, type CoreV1Event, type ObservableMiddleware,
} from '@kubernetes/client-node';
import { AlreadyExistsError, ConflictError, InvalidArgumentError, NotFoundError, UnavailableError } from '../errors';
import { validateName } from '../names';
import { validateEvent, type Event, type EventStore, type EventWatchEvent } from './events';

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
const POLL_MS = 1000;

export function defaultEventNamespace(): string {
  try { return fs.readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim() || 'default'; } catch { return 'default'; }
}

/** Per-request options of the core/v1 clients: a deadline on the HTTP request itself. */
export function requestOptions(timeoutMs: number, contentType?: string): ConfigurationOptions {
  const deadline: ObservableMiddleware = {
    pre: (ctx) => { ctx.setSignal(AbortSignal.timeout(timeoutMs)); return new Observable(Promise.resolve(ctx)); },
    post: (res) => new Observable(Promise.resolve(res)),
  };
  const base: ConfigurationOptions = { middleware: [deadline], middlewareMergeStrategy: 'append' };
  return contentType ? setHeaderOptions('Content-Type', contentType, base) : base;
}

function mapError(err: unknown, op: string, name: string): Error {
  if (err instanceof ApiException) {
    if (err.code === 404) return new NotFoundError('Event', name);
    if (err.code === 409) return op === 'create' ? new AlreadyExistsError('Event', name) : new ConflictError('Event', name);
    if (err.code === 400 || err.code === 422) return new InvalidArgumentError(`Event "${name}": ${typeof err.body === 'string' ? err.body : JSON.stringify(err.body)}`, 'event');
    return new UnavailableError(`kubernetes API ${op} of Event "${name}" failed (HTTP ${err.code})`);
  }
  return new UnavailableError(`kubernetes API ${op} of Event "${name}" failed: ${(err as Error)?.message ?? String(err)}`);
}

function fromCore(e: CoreV1Event): Event {
  const time = (t: unknown) => (t instanceof Date ? t.toISOString().replace(/\.\d+Z$/, 'Z') : t === undefined || t === null ? undefined : String(t));
  return {
    apiVersion: 'v1', kind: 'Event',
    metadata: {
      name: e.metadata?.name ?? '', namespace: e.metadata?.namespace, uid: e.metadata?.uid,
      resourceVersion: e.metadata?.resourceVersion, creationTimestamp: time(e.metadata?.creationTimestamp),
    },
    involvedObject: { apiVersion: e.involvedObject?.apiVersion, kind: e.involvedObject?.kind ?? '', name: e.involvedObject?.name ?? '', uid: e.involvedObject?.uid },
    type: e.type === 'Warning' ? 'Warning' : 'Normal',
    reason: e.reason ?? '', message: e.message ?? '', count: e.count ?? 1,
    firstTimestamp: time(e.firstTimestamp) ?? time(e.eventTime) ?? '', lastTimestamp: time(e.lastTimestamp) ?? time(e.firstTimestamp) ?? '',
    source: e.source?.component ? { component: e.source.component } : undefined,
  };
}

export class KubernetesEventStore implements EventStore {
  private readonly api: CoreV1Api;
  readonly namespace: string;

  constructor(kc: KubeConfig, namespace = defaultEventNamespace(), private readonly timeoutMs = 30_000) {
    this.api = kc.makeApiClient(CoreV1Api);
    this.namespace = validateName(namespace, 'namespace');
  }

  private opts(contentType?: string): ConfigurationOptions {
    return requestOptions(this.timeoutMs, contentType);
  }

  async create(event: Event): Promise<Event> {
    validateEvent(event);
    const { metadata, ...rest } = structuredClone(event);
    const body = { ...rest, metadata: { name: metadata.name, namespace: this.namespace } } as unknown as CoreV1Event;
    try {
      return fromCore(await this.api.createNamespacedEvent({ namespace: this.namespace, body }, this.opts()));
    } catch (err) { throw mapError(err, 'create', event.metadata.name); }
  }

  async update(event: Event): Promise<Event> {
    const body = { count: event.count, message: event.message, lastTimestamp: event.lastTimestamp };
    try {
      return fromCore(await this.api.patchNamespacedEvent({ name: event.metadata.name, namespace: this.namespace, body }, this.opts(PatchStrategy.MergePatch)));
    } catch (err) { throw mapError(err, 'patch', event.metadata.name); }
  }

  async list(): Promise<{ items: Event[]; resourceVersion: string }> {
    try {
      const res = await this.api.listNamespacedEvent({ namespace: this.namespace }, this.opts());
      const items = res.items.map(fromCore).sort((a, b) => a.lastTimestamp.localeCompare(b.lastTimestamp) || a.metadata.name.localeCompare(b.metadata.name));
      return { items, resourceVersion: res.metadata?.resourceVersion ?? '' };
    } catch (err) { throw mapError(err, 'list', '*'); }
  }

  watch(options: { resourceVersion?: string; signal?: AbortSignal } = {}): AsyncIterable<EventWatchEvent> {
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        const { signal } = options;
        let seen = new Map((await self.list()).items.map((e) => [e.metadata.name, e.metadata.resourceVersion]));
        while (!signal?.aborted) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, POLL_MS);
            signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
          });
          if (signal?.aborted) return;
          const items = (await self.list()).items;
          const next = new Map(items.map((e) => [e.metadata.name, e.metadata.resourceVersion]));
          for (const e of items) {
            const before = seen.get(e.metadata.name);
            if (before === undefined) yield { type: 'ADDED', object: e };
            else if (before !== e.metadata.resourceVersion) yield { type: 'MODIFIED', object: e };
          }
          seen = next;
        }
      },
    };
  }

  async sweep(): Promise<number> { return 0; }
}
