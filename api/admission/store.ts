// The facade's store: every create and spec/metadata update through it is admitted first, so a
// seed RPC and ResourceService (n0ctl apply) cannot differ in the rules they apply, and a broken
// rule writes nothing. Status writes (controllers, seed reservations) and deletes pass through:
// deletes are held by the controllers' protection finalizers whatever the entrance, and the seed
// RPCs that refuse up front call admitDelete themselves.
import type { DeleteOptions, ListOptions, Patch, PatchOptions, Store, UpdateOptions, WatchOptions } from '../store/store';
import type { AnyResource, Kind, KindMap } from '../types';
import { admitCreate, admitUpdate } from './admit';

export class AdmittingStore implements Store {
  constructor(readonly inner: Store) {}

  get backend() { return this.inner.backend; }
  get<K extends Kind>(kind: K, name: string) { return this.inner.get(kind, name); }
  list<K extends Kind>(kind: K, options?: ListOptions) { return this.inner.list(kind, options); }
  watch<K extends Kind>(kind: K, options?: WatchOptions) { return this.inner.watch(kind, options); }
  delete<K extends Kind>(kind: K, name: string, options?: DeleteOptions) { return this.inner.delete(kind, name, options); }
  close() { return this.inner.close(); }

  async create<T extends AnyResource>(doc: T): Promise<T> {
    await admitCreate(this.inner, doc);
    return this.inner.create(doc);
  }

  async update<T extends AnyResource>(doc: T, options: UpdateOptions = {}): Promise<T> {
    if (options.subresource !== 'status') {
      const old = await this.inner.get(doc.kind, doc.metadata.name);
      // At another resourceVersion the write fails with Conflict anyway; judge only what can land.
      if (old.metadata.resourceVersion === doc.metadata.resourceVersion) admitUpdate(old as T, doc);
    }
    return this.inner.update(doc, options);
  }

  async patch<K extends Kind>(kind: K, name: string, patch: Patch, options: PatchOptions = {}): Promise<KindMap[K]> {
    if (options.subresource === 'status') return this.inner.patch(kind, name, patch, options);
    // A spec patch is admitted on its result: applied here to what is current, written as an
    // update at that resourceVersion (a lost race is the caller's Conflict, as with update).
    const { applyPatch, deepClone } = await import('fast-json-patch');
    const current = await this.inner.get(kind, name);
    if (options.resourceVersion !== undefined && options.resourceVersion !== current.metadata.resourceVersion) return this.inner.patch(kind, name, patch, options);
    const next = patch.type === 'json' ? applyPatch(deepClone(current), patch.ops, true, false).newDocument : mergePatch(structuredClone(current), patch.value);
    next.metadata.resourceVersion = current.metadata.resourceVersion;
    admitUpdate(current, next as KindMap[K]);
    return this.inner.update(next as KindMap[K]);
  }
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: any, patch: any): any {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out = target !== null && typeof target === 'object' && !Array.isArray(target) ? target : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k]; else out[k] = mergePatch(out[k], v);
  }
  return out;
}
