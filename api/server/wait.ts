// Waits, bounded by the caller's deadline, until an object's status shows the outcome of an intent.
import { DeadlineExceededError, FailedPreconditionError, isN0Error } from '../errors';
import { latestCondition } from '../conditions';
import type { Condition, Kind, KindMap } from '../types';
import type { Store } from '../store/store';

/**
 * When a waiting RPC gives up: a little before the caller's deadline, so the caller hears the
 * facade's DEADLINE_EXCEEDED naming what it waited for and the last condition, not only its own
 * client's bare "deadline exceeded" (the two clocks would otherwise race to the same instant).
 */
export function replyDeadline(callerDeadlineMs: number, now = Date.now()): number {
  const remaining = callerDeadlineMs - now;
  return callerDeadlineMs - Math.min(1_000, Math.max(0, remaining) * 0.1);
}

export type WaitVerdict<T> = { done: T } | { fail: Error } | undefined;

export interface WaitOptions {
  deadline: number;
  signal?: AbortSignal;
  /** Describes what is awaited, for the DEADLINE_EXCEEDED message. */
  what: string;
  /**
   * The object's deletion is what is awaited. Otherwise an object that is (or comes to be) in
   * deletion ends the wait at once with FAILED_PRECONDITION: it will not reach any other outcome.
   */
  untilDeleted?: boolean;
  /**
   * The object as this call just wrote it (create/update's answer): the wait starts from it and
   * its resourceVersion instead of reading the object again, one store read less per waiting
   * RPC (on etcd a round trip; the density run makes two waiting calls per VM).
   */
  from?: { metadata: { name: string; resourceVersion?: string } };
}

function lastCondition(obj: { status?: unknown } | undefined): string {
  const latest = latestCondition((obj?.status as { conditions?: Condition[] } | undefined)?.conditions);
  return latest ? `; last condition: ${latest.type}=${latest.status} ${latest.reason ?? ''}: ${latest.message ?? ''}` : '';
}

/**
 * Resolves with the verdict's value once `judge` returns { done }, rejects with its error on
 * { fail }, or with DeadlineExceededError naming the last observed condition. `judge` gets
 * undefined when the object does not exist (so deletions can be awaited).
 */
export async function waitFor<K extends Kind, T>(
  store: Store, kind: K, name: string,
  judge: (obj: KindMap[K] | undefined) => WaitVerdict<T>,
  options: WaitOptions,
): Promise<T> {
  const controller = new AbortController();
  const onAbort = () => controller.abort();
  options.signal?.addEventListener('abort', onAbort);
  let last: KindMap[K] | undefined;
  const timer = setTimeout(() => controller.abort(), Math.max(0, options.deadline - Date.now()));
  try {
    let resourceVersion: string | undefined;
    if (options.from?.metadata.resourceVersion !== undefined && options.from.metadata.name === name) {
      last = options.from as KindMap[K];
      resourceVersion = options.from.metadata.resourceVersion;
    } else {
      try {
        last = await store.get(kind, name);
        resourceVersion = last.metadata.resourceVersion;
      } catch (err) {
        if (!isN0Error(err, 'NotFound')) throw err;
        resourceVersion = (await store.list(kind)).resourceVersion;
      }
    }
    const verdict = (obj: KindMap[K] | undefined): WaitVerdict<T> => {
      if (obj?.metadata.deletionTimestamp && !options.untilDeleted) {
        return { fail: new FailedPreconditionError(`${kind} "${name}" is being deleted; it cannot ${options.what}${lastCondition(obj)}`) };
      }
      return judge(obj);
    };
    const first = verdict(last);
    if (first) return settle(first);
    try {
      for await (const event of store.watch(kind, { resourceVersion, signal: controller.signal, name })) {
        if (event.object.metadata.name !== name) continue;
        last = event.type === 'DELETED' ? undefined : event.object;
        const outcome = verdict(last);
        if (outcome) return settle(outcome);
      }
    } catch (err) {
      if (!controller.signal.aborted) throw err;
    }
    throw new DeadlineExceededError(`timed out waiting for ${kind} "${name}" to ${options.what}${lastCondition(last)}`);
  } finally {
    clearTimeout(timer);
    controller.abort();
    options.signal?.removeEventListener('abort', onAbort);
  }
}

function settle<T>(verdict: NonNullable<WaitVerdict<T>>): T {
  if ('fail' in verdict) throw verdict.fail;
  return verdict.done;
}
