// Image admission: a tag names a block storage registered in the image (what GenerateBlockStorage
// follows). Deleting an image unprotects its disks; the disks' own protection covers what remains.
import type { Image } from '../types';
import { violation } from './rules';
import type { Strategy } from './types';

function validateTags(image: Image): void {
  const registered = new Set((image.spec?.registered_block_storages ?? []).map((r) => r.block_storage_name));
  for (const [tag, bsName] of Object.entries(image.spec?.tags ?? {})) {
    if (!registered.has(bsName)) throw violation('image.tag-registered', `tags.${tag}: BlockStorage "${bsName}" is not registered in Image "${image.metadata.name}"; RegisterBlockStorage first`, `tags.${tag}`);
  }
}

export const imageStrategy: Strategy<'Image'> = {
  kind: 'Image',
  prepareForCreate: () => undefined,
  validateCreate: validateTags,
  validateUpdate: (_old, next) => validateTags(next),
  references: () => [],
  dependants: () => [],
  validateDelete: () => undefined,
};
