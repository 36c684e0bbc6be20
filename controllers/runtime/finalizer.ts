// The opening that every reconciler owning a finalizer shares (controller-runtime's
// controllerutil.AddFinalizer pattern): nothing is built for an object before it carries the
// finalizer, so a delete can never leave a bridge, a disk or a QEMU behind.
import { isN0Error } from '../../api/errors';
import { mutate } from '../../api/store/mutate';
import type { Kind, KindMap } from '../../api/types';
import type { ReconcileContext } from './types';

/**
 * Reads the object to reconcile: undefined when it is gone; otherwise the object carrying
 * `finalizer` (added when missing). An object being deleted comes back as it is: the caller
 * finalizes it when metadata.deletionTimestamp is set.
 */
export async function getWithFinalizer<K extends Kind>(ctx: ReconcileContext, kind: K, name: string, finalizer: string): Promise<KindMap[K] | undefined> {
  let obj: KindMap[K];
  try {
    obj = await ctx.store.get(kind, name);
  } catch (err) {
    if (isN0Error(err, 'NotFound')) return undefined;
    throw err;
  }
  if (obj.metadata.deletionTimestamp || obj.metadata.finalizers?.includes(finalizer)) return obj;
  try {
    return await mutate(ctx.store, kind, name, (o) => {
      // Deleted meanwhile: no new finalizer on an object on its way out (as Kubernetes refuses).
      if (o.metadata.deletionTimestamp || o.metadata.finalizers?.includes(finalizer)) return false;
      o.metadata.finalizers = [...(o.metadata.finalizers ?? []), finalizer];
    });
  } catch (err) {
    if (isN0Error(err, 'NotFound')) return undefined;
    throw err;
  }
}
