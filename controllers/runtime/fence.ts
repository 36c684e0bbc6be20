// The store a reconcile writes through while this process leads (fencing, after client-go's
// leaderelection and fencing tokens): every write first checks that the reconcile's signal is not
// aborted (the manager aborts in-flight work when the lead is lost) and, where the election offers
// no fence key, that its backend still names this process the leader (that check leaves the
// instant before the write open). On etcd the write itself is conditional on the election key
// (api/store/write-fence.ts), so no check is needed there.
import { UnavailableError } from '../../api/errors';
import type { Store } from '../../api/store/store';

const WRITES = new Set(['create', 'update', 'patch', 'delete']);

/** `store` with every write refused (UnavailableError naming it) once this process may no longer lead. */
export function fencedStore(store: Store, signal: AbortSignal, stillLeading?: () => Promise<boolean>): Store {
  const refuse = (what: string, why: string) => new UnavailableError(`not leading (${why}): ${what} not written`);
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof prop !== 'string' || !WRITES.has(prop) || typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        const doc = args[0] as { kind?: string; metadata?: { name?: string } } | string;
        const what = typeof doc === 'string' ? `${prop} of ${doc} "${String(args[1])}"` : `${prop} of ${doc?.kind} "${doc?.metadata?.name}"`;
        if (signal.aborted) throw refuse(what, 'the reconcile was aborted');
        if (stillLeading && !(await stillLeading().catch(() => false))) throw refuse(what, 'the election no longer names this process');
        if (signal.aborted) throw refuse(what, 'the reconcile was aborted');
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}
