// The facade's store: every create and spec/metadata update through it is admitted first, so a
// seed RPC and ResourceService (n0ctl apply) cannot differ in the rules they apply, and a broken
// rule writes nothing. Status writes (controllers, seed reservations) and deletes pass through:
// deletes are held by the controllers' protection finalizers whatever the entrance, and the seed
// RPCs that refuse up front call admitDelete themselves.
import type { DeleteOptions, ListOptions, Patch, PatchOptions, Store, UpdateOptions, WatchOptions } from '../store/store';
import { applyPatch, deepClone } from 'fast-json-patch';
import { ConflictError, InvalidArgumentError } from '../errors';
import { mergePatch } from '../store/kv';
import type { AnyResource, Kind, KindMap } from '../types';
import { admitCreate, admitUpdate } from './admit';

export class AdmittingStore implements Store {
  constructor(readonly inner: Store) {}

  get backend() { return this.inner.backend; }
  get events() { return this.inner.events; }
  get secrets() { return this.inner.secrets; }
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
    // Without a resourceVersion the store refuses the update itself (InvalidArgument).
    if (options.subresource !== 'status' && doc.metadata?.resourceVersion) {
      const old = await this.inner.get(doc.kind, doc.metadata.name);
      // Judged against exactly the version it replaces: at another resourceVersion the store would
      // refuse it anyway, and refusing here too means no write lands unjudged.
      if (old.metadata.resourceVersion !== doc.metadata.resourceVersion) throw new ConflictError(doc.kind, doc.metadata.name);
      await admitUpdate(this.inner, old as T, doc);
    }
    return this.inner.update(doc, options);
  }

  async patch<K extends Kind>(kind: K, name: string, patch: Patch, options: PatchOptions = {}): Promise<KindMap[K]> {
    if (options.subresource === 'status') return this.inner.patch(kind, name, patch, options);
    // A spec patch is admitted on its result: applied here to what is current, written as an
    // update at that resourceVersion (a lost race is the caller's Conflict, as with update).
    const current = await this.inner.get(kind, name);
    if (options.resourceVersion !== undefined && options.resourceVersion !== current.metadata.resourceVersion) throw new ConflictError(kind, name);
    const next = patched(current, patch);
    next.metadata.resourceVersion = current.metadata.resourceVersion;
    await admitUpdate(this.inner, current, next as KindMap[K]);
    return this.inner.update(next as KindMap[K]);
  }
}

/** The patch applied to a copy of `current`, its failures as the store reports them. */
function patched<T extends AnyResource>(current: T, patch: Patch): T {
  if (patch.type === 'merge') return mergePatch(structuredClone(current), patch.value) as T;
  try {
    return applyPatch(deepClone(current), patch.ops, true, false).newDocument as T;
  } catch (err) {
    // A failed `test` op is a precondition that no longer holds: the object changed under the caller.
    if ((err as Error).name === 'TEST_OPERATION_FAILED') throw new ConflictError(current.kind, current.metadata.name, 'patch test failed');
    throw new InvalidArgumentError(`${current.kind} "${current.metadata.name}": invalid patch: ${(err as Error).message.split('\n')[0]}`, 'patch');
  }
}
