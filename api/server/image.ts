// ImageService: names and tags for block storages. Registering protects the block storage (as
// the seed does), so an image's content cannot be deleted under it.
import { API_VERSION, ANNOTATIONS, type Image } from '../types';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, isN0Error } from '../errors';
import { validateName } from '../names';
import { deleteChecked, mutate } from '../store/mutate';
import { blockStorageMessage, given, imageMessage, mapOrUndefined, seedAnnotations } from './convert';
import { blockStorageDocument, blockStorageSettled, createBlockStorage } from './blockstorage';
import { waitFor } from './wait';
import { admitted, compact, type CallInfo, type FacadeContext, type ServiceHandlers } from './context';

const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

function validateTag(tag: unknown, field: string): string {
  if (typeof tag !== 'string' || !TAG.test(tag)) throw new InvalidArgumentError(`${field} ${JSON.stringify(tag)} is not a valid tag (letters, digits, '_', '.', '-'; at most 128)`, field);
  return tag;
}

export function imageService(context: FacadeContext): ServiceHandlers {
  const ctx = admitted(context);
  const { store } = ctx;

  // Registering protects the block storage; returns once its controller reports it.
  const setProtected = async (name: string, value: boolean, call: CallInfo) => {
    const bs = await mutate(store, 'BlockStorage', name, (b) => {
      if (!!b.spec.protected === value) return false;
      if (value) b.spec.protected = true; else delete b.spec.protected;
    });
    await waitFor(store, 'BlockStorage', name, blockStorageSettled(bs.metadata.generation ?? 1), { deadline: call.deadline, signal: call.signal, what: value ? 'become PROTECTED' : 'be unprotected' });
  };

  return {
    async ListImages(req) {
      const { items } = await store.list('Image', { labelSelector: given(req.label_selector) });
      return { images: items.map(imageMessage) };
    },
    async GetImage(req) {
      return imageMessage(await store.get('Image', validateName(req.name, 'name')));
    },
    async ApplyImage(req) {
      const name = validateName(req.name, 'name');
      const annotations = seedAnnotations(req.annotations);
      const labels = mapOrUndefined(req.labels);
      try {
        return imageMessage(await store.create({ apiVersion: API_VERSION, kind: 'Image', metadata: compact({ name, annotations, labels }), spec: {} } as Image));
      } catch (err) {
        if (!isN0Error(err, 'AlreadyExists')) throw err;
        return imageMessage(await mutate(store, 'Image', name, (image) => {
          if (annotations) image.metadata.annotations = annotations;
          if (labels) image.metadata.labels = labels;
        }));
      }
    },
    async DeleteImage(req, call) {
      // The image controller writes status when its block storages change.
      const image = await deleteChecked(store, 'Image', validateName(req.name, 'name'), () => undefined);
      for (const r of image.spec.registered_block_storages ?? []) {
        await setProtected(r.block_storage_name, false, call).catch((err) => { if (!isN0Error(err, 'NotFound')) throw err; });
      }
      return {};
    },
    async RegisterBlockStorage(req, call) {
      const imageName = validateName(req.image_name, 'image_name');
      const bsName = validateName(req.block_storage_name, 'block_storage_name');
      const tags = (req.tags ?? []).map((t: unknown, i: number) => validateTag(t, `tags[${i}]`));
      await store.get('Image', imageName);
      // A disk in use cannot be protected (the kind's admission refuses it before anything is written).
      await setProtected(bsName, true, call);
      return imageMessage(await mutate(store, 'Image', imageName, (image) => {
        const registered = image.spec.registered_block_storages ?? [];
        if (!registered.some((r) => r.block_storage_name === bsName)) {
          registered.push({ block_storage_name: bsName, registered_at: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') });
        }
        image.spec.registered_block_storages = registered;
        image.spec.tags = { ...image.spec.tags, ...Object.fromEntries(tags.map((t: string) => [t, bsName])) };
      }));
    },
    async UnregisterBlockStorage(req, call) {
      const imageName = validateName(req.image_name, 'image_name');
      const bsName = validateName(req.block_storage_name, 'block_storage_name');
      const image = await mutate(store, 'Image', imageName, (img) => {
        const registered = img.spec.registered_block_storages ?? [];
        if (!registered.some((r) => r.block_storage_name === bsName)) throw new NotFoundError('registered BlockStorage', `${bsName}" in Image "${imageName}`);
        img.spec.registered_block_storages = registered.filter((r) => r.block_storage_name !== bsName);
        img.spec.tags = Object.fromEntries(Object.entries(img.spec.tags ?? {}).filter(([, v]) => v !== bsName));
      });
      await setProtected(bsName, false, call).catch((err) => { if (!isN0Error(err, 'NotFound')) throw err; });
      return imageMessage(image);
    },
    async TagImage(req) {
      const name = validateName(req.name, 'name');
      const bsName = validateName(req.block_storage_name, 'block_storage_name');
      const tags = (req.tags ?? []).map((t: unknown, i: number) => validateTag(t, `tags[${i}]`));
      if (!tags.length) throw new InvalidArgumentError('tags must not be empty', 'tags');
      return imageMessage(await mutate(store, 'Image', name, (image) => {
        if (!(image.spec.registered_block_storages ?? []).some((r) => r.block_storage_name === bsName)) {
          throw new FailedPreconditionError(`BlockStorage "${bsName}" is not registered in Image "${name}"; RegisterBlockStorage first`, 'block_storage_name');
        }
        image.spec.tags = { ...image.spec.tags, ...Object.fromEntries(tags.map((t: string) => [t, bsName])) };
      }));
    },
    async UntagImage(req) {
      const name = validateName(req.name, 'name');
      const tag = validateTag(req.tag, 'tag');
      return imageMessage(await mutate(store, 'Image', name, (image) => {
        if (!image.spec.tags?.[tag]) throw new NotFoundError('tag', `${tag}" of Image "${name}`);
        delete image.spec.tags[tag];
      }));
    },
    async GenerateBlockStorage(req, call) {
      const imageName = validateName(req.image_name, 'image_name');
      const tag = validateTag(req.tag, 'tag');
      validateName(req.block_storage_name, 'block_storage_name');
      const image = await store.get('Image', imageName);
      const baseName = image.spec.tags?.[tag];
      if (!baseName) throw new NotFoundError('tag', `${tag}" of Image "${imageName}`);
      const base = await store.get('BlockStorage', baseName);
      const doc = blockStorageDocument({ ...req, name: req.block_storage_name }, { backing_block_storage: baseName });
      const baseNode = base.status?.node_name ?? base.spec.node_name;
      // A copy-on-write overlay must sit on the node that holds its backing file.
      if (doc.spec.node_name && baseNode && doc.spec.node_name !== baseNode) {
        throw new FailedPreconditionError(`annotation ${ANNOTATIONS.blockStorageRequestNodeName}=${doc.spec.node_name}, but image "${imageName}:${tag}" (${baseName}) is on node ${baseNode}`, 'annotations');
      }
      doc.spec.node_name = baseNode;
      // An overlay smaller than its base is refused by the kind's admission (blockstorage.overlay-not-smaller).
      return blockStorageMessage(await createBlockStorage(ctx, call, doc));
    },
  };
}
