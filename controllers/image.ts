// Image reconciler: an image is only names and tags; it is Ready when every tag points to a
// registered block storage that exists.
import type { Image } from '../api/types';
import { isN0Error } from '../api/errors';
import { setCondition } from '../api/conditions';
import { mutate } from '../api/store/mutate';
import type { Cache, IndexSpec, ReconcileContext, ReconcileResult, Reconciler } from './runtime/types';

const IMAGE_BY_BLOCK_STORAGE = 'image-by-block-storage';

export class ImageReconciler implements Reconciler<'Image'> {
  readonly kind = 'Image' as const;
  // Only the images that register a block storage care about it (mapping every change to every
  // image made each disk's progress update reconcile all images).
  readonly watches = [{ kind: 'BlockStorage' as const, map: (bs: { metadata: { name: string } }, cache: Cache) => cache.byIndex('Image', IMAGE_BY_BLOCK_STORAGE, bs.metadata.name).map((i) => i.metadata.name) }];
  readonly indexes: IndexSpec[] = [{ kind: 'Image', name: IMAGE_BY_BLOCK_STORAGE, keys: (img) => ((img as Image).spec.registered_block_storages ?? []).map((r) => r.block_storage_name) }];

  async reconcile(name: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    let image: Image;
    try { image = await ctx.store.get('Image', name); } catch (err) { if (isN0Error(err, 'NotFound')) return {}; throw err; }
    const registered = new Set((image.spec.registered_block_storages ?? []).map((r) => r.block_storage_name));
    const problems: string[] = [];
    for (const [tag, bs] of Object.entries(image.spec.tags ?? {})) {
      if (!registered.has(bs)) problems.push(`tag ${tag} points to ${bs}, which is not registered`);
    }
    for (const bs of registered) if (!ctx.cache.get('BlockStorage', bs)) problems.push(`registered block storage ${bs} does not exist`);
    const generation = image.metadata.generation ?? 1;
    await mutate(ctx.store, 'Image', name, (img) => {
      img.status ??= {};
      const before = JSON.stringify(img.status);
      img.status.observedGeneration = generation;
      img.status.conditions = setCondition(img.status.conditions, problems.length
        ? { type: 'Ready', status: 'False', reason: 'DanglingReference', message: problems.join('; ') }
        : { type: 'Ready', status: 'True', reason: 'Consistent', message: `${registered.size} block storage(s), ${Object.keys(img.spec.tags ?? {}).length} tag(s)` }, generation);
      return JSON.stringify(img.status) !== before;
    }, { subresource: 'status' }).catch((err) => { if (!isN0Error(err, 'NotFound')) throw err; });
    return {};
  }
}
