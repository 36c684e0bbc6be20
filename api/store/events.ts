// Events, after Kubernetes core/v1 Event: what a controller did or saw happen to an object
// (Scheduled, Started, StartFailed with QEMU's words, WaitingForDependants, ...), for `n0ctl
// describe` and `n0ctl get events`. They are not resources of the seed: short-lived records in a
// small store area of their own beside the kinds, with a TTL (an hour by default, kube-apiserver's
// --event-ttl), swept by the controllers. In the Kubernetes shape they are real core/v1 Events
// (kubernetes-events.ts). Aggregation (the same object, reason and message counted on one Event,
// as client-go's EventCorrelator does) is the recorder's (controllers/runtime/events.ts).
import { randomUUID } from 'node:crypto';
import { AlreadyExistsError, ConflictError, InvalidArgumentError, NotFoundError } from '../errors';
import { validateName } from '../names';
import type { KvBackend } from './kv';

export type EventType = 'Normal' | 'Warning';

export interface Event {
  apiVersion: 'v1';
  kind: 'Event';
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string; creationTimestamp?: string };
  involvedObject: { apiVersion?: string; kind: string; name: string; uid?: string };
  type: EventType;
  /** UpperCamelCase, machine-readable (Scheduled, StartFailed, ...). */
  reason: string;
  message: string;
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
  source?: { component?: string };
}

export interface EventWatchEvent { type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: Event }

/** Where Events are kept: a Store's `events` (api/store/store.ts). */
export interface EventStore {
  /** AlreadyExistsError when the name is taken. */
  create(event: Event): Promise<Event>;
  /** Replaces count, message, lastTimestamp of an existing Event; NotFoundError when it is gone (expired). */
  update(event: Event): Promise<Event>;
  /** Every Event not yet expired, oldest first. */
  list(): Promise<{ items: Event[]; resourceVersion: string }>;
  /** Changes after `resourceVersion` (default: from now on) until the signal aborts. */
  watch(options?: { resourceVersion?: string; signal?: AbortSignal }): AsyncIterable<EventWatchEvent>;
  /** Deletes the Events whose lastTimestamp is older than the TTL; returns how many. */
  sweep(): Promise<number>;
}

/** How long an Event lives after its last occurrence (kube-apiserver's --event-ttl default). */
export const EVENT_TTL_MS = 60 * 60_000;
export const MAX_EVENT_MESSAGE = 1024;
const REASON = /^[A-Z][A-Za-z0-9]{0,127}$/;
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

/** The schema of an Event (what a CRD would say), checked on every write of the KV store area. */
export function validateEvent(e: Event): Event {
  const bad = (field: string, what: string) => new InvalidArgumentError(`Event ${JSON.stringify(e?.metadata?.name)}: ${field} ${what}`, field);
  if (!e || typeof e !== 'object' || e.kind !== 'Event' || e.apiVersion !== 'v1') throw bad('kind', 'must be Event of apiVersion v1');
  validateName(e.metadata?.name, 'metadata.name');
  if (e.type !== 'Normal' && e.type !== 'Warning') throw bad('type', 'must be Normal or Warning');
  if (typeof e.reason !== 'string' || !REASON.test(e.reason)) throw bad('reason', 'must be UpperCamelCase, at most 128 characters');
  if (typeof e.message !== 'string' || e.message.length > MAX_EVENT_MESSAGE) throw bad('message', `must be a string of at most ${MAX_EVENT_MESSAGE} characters`);
  const io = e.involvedObject;
  if (!io || typeof io.kind !== 'string' || !io.kind || typeof io.name !== 'string' || !io.name) throw bad('involvedObject', 'needs kind and name');
  if (!Number.isSafeInteger(e.count) || e.count < 1) throw bad('count', 'must be a positive integer');
  for (const f of ['firstTimestamp', 'lastTimestamp'] as const) if (typeof e[f] !== 'string' || !TIME.test(e[f])) throw bad(f, 'must be an RFC 3339 UTC time');
  return e;
}

/** Whether `e` has outlived the TTL at `now`. */
export function expired(e: Event, now = Date.now(), ttlMs = EVENT_TTL_MS): boolean {
  return Date.parse(e.lastTimestamp) + ttlMs < now;
}

/** Events on the embedded and etcd backends: JSON under `<prefix>/events/` beside the kinds. */
export class KvEventStore implements EventStore {
  private readonly area: string;
  constructor(private readonly kv: KvBackend, prefix: string, private readonly ttlMs = EVENT_TTL_MS) {
    this.area = `${prefix}/events/`;
  }

  private decode(value: string, revision: number): Event {
    const e = JSON.parse(value) as Event;
    e.metadata.resourceVersion = String(revision);
    return e;
  }

  async create(event: Event): Promise<Event> {
    const stored: Event = structuredClone(event);
    delete stored.metadata.resourceVersion;
    stored.metadata.uid = randomUUID();
    stored.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    validateEvent(stored);
    const value = JSON.stringify(stored);
    const rev = await this.kv.put(this.area + stored.metadata.name, value, 0);
    if (rev === undefined) throw new AlreadyExistsError('Event', stored.metadata.name);
    return this.decode(value, rev);
  }

  async update(event: Event): Promise<Event> {
    const key = this.area + validateName(event?.metadata?.name, 'metadata.name');
    const entry = await this.kv.get(key);
    if (!entry) throw new NotFoundError('Event', event.metadata.name);
    const current = JSON.parse(entry.value) as Event;
    const next: Event = { ...current, count: event.count, message: event.message, lastTimestamp: event.lastTimestamp };
    validateEvent(next);
    const value = JSON.stringify(next);
    const rev = await this.kv.put(key, value, entry.modRevision);
    if (rev === undefined) throw new ConflictError('Event', event.metadata.name);
    return this.decode(value, rev);
  }

  async list(): Promise<{ items: Event[]; resourceVersion: string }> {
    const { entries, revision } = await this.kv.range(this.area);
    const now = Date.now();
    const items = entries.map((e) => this.decode(e.value, e.modRevision)).filter((e) => !expired(e, now, this.ttlMs));
    items.sort((a, b) => a.lastTimestamp.localeCompare(b.lastTimestamp) || a.metadata.name.localeCompare(b.metadata.name));
    return { items, resourceVersion: String(revision) };
  }

  watch(options: { resourceVersion?: string; signal?: AbortSignal } = {}): AsyncIterable<EventWatchEvent> {
    const self = this;
    return {
      async *[Symbol.asyncIterator]() {
        const after = options.resourceVersion ? Number(options.resourceVersion) : await self.kv.revision();
        if (!Number.isSafeInteger(after) || after < 0) throw new InvalidArgumentError(`resourceVersion ${JSON.stringify(options.resourceVersion)} is not one of this store`, 'resource_version');
        for await (const ev of self.kv.watch(self.area, after, options.signal)) {
          yield { type: ev.type === 'delete' ? 'DELETED' : ev.created ? 'ADDED' : 'MODIFIED', object: self.decode(ev.value, ev.revision) };
        }
      },
    };
  }

  async sweep(): Promise<number> {
    const { entries } = await this.kv.range(this.area);
    const now = Date.now();
    let swept = 0;
    for (const entry of entries) {
      if (!expired(JSON.parse(entry.value) as Event, now, this.ttlMs)) continue;
      // A lost CAS means the Event just occurred again: it stays.
      if (await this.kv.delete(entry.key, entry.modRevision) !== undefined) swept++;
    }
    return swept;
  }
}

/** The Events that are about `obj` (by uid when both have one, else by kind and name). */
export function eventsFor(events: Event[], obj: { kind: string; metadata: { name: string; uid?: string } }): Event[] {
  return events.filter((e) => e.involvedObject.kind === obj.kind && e.involvedObject.name === obj.metadata.name
    && (!obj.metadata.uid || !e.involvedObject.uid || e.involvedObject.uid === obj.metadata.uid));
}
