// The controllers' event recorder, after client-go's record.EventRecorder and EventCorrelator:
// reconcilers say what happened (`ctx.events.normal(vm, 'Started', ...)`) and never touch the
// store for it. The same object, type, reason and message again within the cache's memory is one
// Event with count+1 and a new lastTimestamp (client-go's aggregation by the event's key); a new
// one is created otherwise, or when the aggregated Event has expired meanwhile. Writes are best
// effort and never fail a reconcile: they run in the background, one at a time per key, so counts
// never race; a failed write is logged.
import { randomBytes } from 'node:crypto';
import { isN0Error } from '../../api/errors';
import { logger } from '../../api/log';
import { API_VERSION } from '../../api/types';
import { MAX_EVENT_MESSAGE, type Event, type EventStore, type EventType } from '../../api/store/events';

const log = logger('events');

/** What an Event is about: any document with kind and metadata (name, uid). */
export interface EventObject { kind: string; apiVersion?: string; metadata: { name: string; uid?: string } }

export interface EventRecorder {
  normal(obj: EventObject, reason: string, message: string): void;
  warning(obj: EventObject, reason: string, message: string): void;
}

/** A recorder that records nothing (stores without an event area). */
export const NO_EVENTS: EventRecorder = { normal: () => undefined, warning: () => undefined };

export interface RecorderOptions {
  /** source.component of every Event (default n0stack-controllers). */
  component?: string;
  /** How many distinct keys are remembered for aggregation (client-go: 4096). */
  cacheSize?: number;
  now?: () => Date;
}

const stamp = (d: Date) => d.toISOString().replace(/\.\d+Z$/, 'Z');

export class Recorder implements EventRecorder {
  private readonly last = new Map<string, Event>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly component: string;
  private readonly cacheSize: number;
  private readonly now: () => Date;

  constructor(private readonly sink: EventStore, options: RecorderOptions = {}) {
    this.component = options.component ?? 'n0stack-controllers';
    this.cacheSize = options.cacheSize ?? 4096;
    this.now = options.now ?? (() => new Date());
  }

  normal(obj: EventObject, reason: string, message: string): void { this.record(obj, 'Normal', reason, message); }
  warning(obj: EventObject, reason: string, message: string): void { this.record(obj, 'Warning', reason, message); }

  record(obj: EventObject, type: EventType, reason: string, message: string): void {
    const text = message.length > MAX_EVENT_MESSAGE ? `${message.slice(0, MAX_EVENT_MESSAGE - 3)}...` : message;
    const at = this.now();
    const key = JSON.stringify([obj.kind, obj.metadata.name, obj.metadata.uid ?? '', type, reason, text]);
    const previous = this.chains.get(key) ?? Promise.resolve();
    const next = previous.then(() => this.write(key, obj, type, reason, text, at)).catch((err: Error) => {
      log.warn('could not record an event', { kind: obj.kind, name: obj.metadata.name, reason, error: err.message });
    });
    this.chains.set(key, next);
    void next.finally(() => { if (this.chains.get(key) === next) this.chains.delete(key); });
  }

  /** Resolves when every event recorded so far has been written (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.chains.size) await Promise.all(this.chains.values());
  }

  private async write(key: string, obj: EventObject, type: EventType, reason: string, message: string, at: Date): Promise<void> {
    const seen = this.last.get(key);
    if (seen) {
      try {
        const updated = await this.sink.update({ ...seen, count: seen.count + 1, lastTimestamp: stamp(at) });
        this.remember(key, updated);
        return;
      } catch (err) {
        // Expired and swept (or deleted by hand): start a new Event.
        if (!isN0Error(err, 'NotFound')) throw err;
      }
    }
    const event: Event = {
      apiVersion: 'v1', kind: 'Event',
      // client-go's name: the object's name and a unique hex suffix.
      metadata: { name: `${obj.metadata.name.replace(/_/g, '-').slice(0, 200)}.${at.getTime().toString(16)}${randomBytes(4).toString('hex')}` },
      involvedObject: { apiVersion: obj.apiVersion ?? API_VERSION, kind: obj.kind, name: obj.metadata.name, ...(obj.metadata.uid ? { uid: obj.metadata.uid } : {}) },
      type, reason, message, count: 1, firstTimestamp: stamp(at), lastTimestamp: stamp(at),
      source: { component: this.component },
    };
    this.remember(key, await this.sink.create(event));
  }

  private remember(key: string, event: Event): void {
    this.last.delete(key);
    this.last.set(key, event);
    if (this.last.size > this.cacheSize) this.last.delete(this.last.keys().next().value!);
  }
}

/** The Event a reconciler's new Ready reason is worth, by that reason (absent: none). */
export type TransitionEvents = Record<string, { type: EventType; reason?: string }>;

/**
 * Records the Event for a Ready condition that changed reason (`before` -> `condition.reason`):
 * level-triggered reconciles write the same condition again and again, and only a transition is
 * news. The message is the condition's.
 */
export function recordTransition(events: EventRecorder | undefined, obj: EventObject, before: string | undefined, condition: { reason?: string; message?: string }, table: TransitionEvents): void {
  if (!events || !condition.reason || before === condition.reason) return;
  const event = table[condition.reason];
  if (!event) return;
  if (event.type === 'Warning') events.warning(obj, event.reason ?? condition.reason, condition.message ?? '');
  else events.normal(obj, event.reason ?? condition.reason, condition.message ?? '');
}
