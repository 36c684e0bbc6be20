// What a seed action does to resources, derived from the seed's naming conventions
// ("[Resource type]_name: reference to resources"): which resource a task creates, which ones it
// only refers to, and the action that undoes it (for `n0ctl do --reverse`).
import type { SeedType } from '../proto';

export interface ResourceRef {
  type: SeedType;
  name: string;
}

export interface InverseTask {
  type: SeedType;
  action: string;
  args: Record<string, unknown>;
  /** The seed's own naming for hand-written inverse tasks: Delete_test-vm, Unregister_x-from-y. */
  suggestedName: string;
}

// service: the task's `type`; type: the kind of resource the action makes (they differ only for
// GenerateBlockStorage, an Image action that makes a BlockStorage).
const CREATORS: Record<string, { service: SeedType; type: SeedType; nameField: string; inverse: string }> = {
  ApplyNode: { service: 'Node', type: 'Node', nameField: 'name', inverse: 'DeleteNode' },
  ApplyNetwork: { service: 'Network', type: 'Network', nameField: 'name', inverse: 'DeleteNetwork' },
  CreateBlockStorage: { service: 'BlockStorage', type: 'BlockStorage', nameField: 'name', inverse: 'DeleteBlockStorage' },
  FetchBlockStorage: { service: 'BlockStorage', type: 'BlockStorage', nameField: 'name', inverse: 'DeleteBlockStorage' },
  CopyBlockStorage: { service: 'BlockStorage', type: 'BlockStorage', nameField: 'name', inverse: 'DeleteBlockStorage' },
  GenerateBlockStorage: { service: 'Image', type: 'BlockStorage', nameField: 'block_storage_name', inverse: 'DeleteBlockStorage' },
  ApplyImage: { service: 'Image', type: 'Image', nameField: 'name', inverse: 'DeleteImage' },
  CreateVirtualMachine: { service: 'VirtualMachine', type: 'VirtualMachine', nameField: 'name', inverse: 'DeleteVirtualMachine' },
};

// Fields that name another resource, by the seed's convention. `name` refers to the task's own type.
const REFERENCE_FIELDS: Record<string, SeedType> = {
  node_name: 'Node',
  network_name: 'Network',
  block_storage_name: 'BlockStorage',
  block_storage_names: 'BlockStorage',
  source_block_storage: 'BlockStorage',
  backing_block_storage: 'BlockStorage',
  image_name: 'Image',
};

/** Fields whose keys are free text (annotation keys look like paths), never references. */
const OPAQUE_FIELDS = new Set(['annotations', 'labels', 'tags']);

/** The resource a task creates or updates, if its action is a creator. */
export function producedResource(type: SeedType, action: string, args: Record<string, unknown>): ResourceRef | undefined {
  const creator = CREATORS[action];
  if (!creator || creator.service !== type) return undefined;
  const name = args[creator.nameField];
  return typeof name === 'string' && name !== '' ? { type: creator.type, name } : undefined;
}

/** Resources a task uses without creating them. */
export function referencedResources(type: SeedType, action: string, args: Record<string, unknown>): ResourceRef[] {
  const refs: ResourceRef[] = [];
  const visit = (value: unknown, key: string | undefined, top: boolean): void => {
    if (key && OPAQUE_FIELDS.has(key)) return;
    if (Array.isArray(value)) { for (const v of value) visit(v, key, false); return; }
    if (value && typeof value === 'object') {
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) visit(v, k, false);
      return;
    }
    if (typeof value !== 'string' || value === '' || !key) return;
    const refType = key === 'name' && top ? type : REFERENCE_FIELDS[key];
    if (refType) refs.push({ type: refType, name: value });
  };
  for (const [k, v] of Object.entries(args)) visit(v, k, true);
  const produced = producedResource(type, action, args);
  const seen = new Set<string>();
  return refs.filter((r) => {
    const key = refKey(r);
    if (produced && key === refKey(produced)) return false;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export function refKey(ref: ResourceRef): string {
  return `${ref.type}/${ref.name}`;
}

/** The task that undoes this one, or undefined when there is nothing to undo (Get, OpenConsole, Delete...). */
export function inverseOf(type: SeedType, action: string, args: Record<string, unknown>): InverseTask | undefined {
  if (action === 'RegisterBlockStorage' && type === 'Image') {
    const image = String(args.image_name ?? '');
    const bs = String(args.block_storage_name ?? '');
    return {
      type: 'Image', action: 'UnregisterBlockStorage', args: { image_name: image, block_storage_name: bs },
      suggestedName: `Unregister_${bs}-from-${image}`,
    };
  }
  const produced = producedResource(type, action, args);
  if (!produced) return undefined;
  const creator = CREATORS[action];
  return {
    type: produced.type, action: creator.inverse, args: { name: produced.name },
    suggestedName: `Delete_${produced.name}`,
  };
}
