// Read-modify-write with optimistic concurrency: re-read and re-apply on ConflictError, so
// concurrent writers never lose each other's updates (how IPAM and reservations stay unique).
import { ConflictError, isN0Error } from '../errors';
import type { Kind, KindMap } from '../types';
import type { Store } from './store';

export interface MutateOptions<K extends Kind = Kind> {
  subresource?: 'status';
  attempts?: number;
  /**
   * Fencing: write only onto this resourceVersion (the one the change was computed from). A newer
   * object is a ConflictError, not a re-application: a status computed from an old read must not
   * overwrite what was written since (e.g. move observedGeneration backwards). The caller requeues.
   */
  resourceVersion?: string;
  /**
   * The object as the caller last read it (a reconcile's own read, an informer's copy): the first
   * attempt applies `change` to a copy of it instead of reading the object again, and writes at
   * its resourceVersion, so a stale base is refused by the store's CAS and the next attempt reads
   * afresh. Saves a read per write when the base is current (on etcd a round trip).
   */
  base?: KindMap[K];
}

/**
 * Applies `change` to the current object and writes it back. `change` may throw to abort (its
 * error propagates) or return false to skip the write (nothing to change); returning false after
 * editing is for edits that change nothing (the object is returned as edited).
 */
export async function mutate<K extends Kind>(
  store: Store, kind: K, name: string,
  change: (obj: KindMap[K]) => boolean | void | Promise<boolean | void>,
  options: MutateOptions<K> = {},
): Promise<KindMap[K]> {
  // Generous: writers that never pause (the test keeps three in a loop) can win many rounds in a
  // row on a loaded machine; each retry waits up to 50 ms, so this still ends within seconds.
  const attempts = options.attempts ?? 200;
  for (let attempt = 0; ; attempt++) {
    // A store's get returns an object of the caller's own: `change` may edit it in place.
    const current = attempt === 0 && options.base?.metadata.resourceVersion !== undefined && options.base.metadata.name === name
      ? structuredClone(options.base) : await store.get(kind, name);
    if (options.resourceVersion !== undefined && current.metadata.resourceVersion !== options.resourceVersion) {
      throw new ConflictError(kind, name, `computed from resourceVersion ${options.resourceVersion}, now ${current.metadata.resourceVersion}`);
    }
    if ((await change(current)) === false) return current;
    try {
      return await store.update(current, { subresource: options.subresource });
    } catch (err) {
      if (!isN0Error(err, 'Conflict') || attempt + 1 >= attempts) throw err;
      // Spread retries of many concurrent writers a little.
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
    }
  }
}

export { ConflictError };

/**
 * Deletes an object once `check` accepts its current state (`check` throws to refuse). The delete
 * carries the resourceVersion that was checked, so nothing slips in between; when a concurrent
 * write wins (a controller updating status, e.g. releasing a disk after its VM is gone), it
 * re-reads and checks again instead of failing with Conflict. Returns the object it deleted.
 */
export async function deleteChecked<K extends Kind>(
  store: Store, kind: K, name: string,
  check: (obj: KindMap[K]) => void | Promise<void>,
  options: { attempts?: number } = {},
): Promise<KindMap[K]> {
  // Generous: writers that never pause (the test keeps three in a loop) can win many rounds in a
  // row on a loaded machine; each retry waits up to 50 ms, so this still ends within seconds.
  const attempts = options.attempts ?? 200;
  for (let attempt = 0; ; attempt++) {
    const current = await store.get(kind, name);
    await check(current);
    try {
      await store.delete(kind, name, { resourceVersion: current.metadata.resourceVersion });
      return current;
    } catch (err) {
      if (!isN0Error(err, 'Conflict') || attempt + 1 >= attempts) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
    }
  }
}

