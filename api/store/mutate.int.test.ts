// deleteChecked on the real embedded store: a delete guarded by a check survives a concurrent
// status writer (what the facade's DeleteBlockStorage meets right after DeleteVirtualMachine),
// and never deletes an object whose current state the check refuses.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FailedPreconditionError, isN0Error } from '../errors';
import type { Network } from '../types';
import { openStore, type Store } from './index';
import { deleteChecked, mutate } from './mutate';
import { LmdbBackend } from './embedded';
import { KvStore } from './kv';

describe('deleteChecked', () => {
  let dir: string;
  let store: Store;
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-mutate-'));
    store = await openStore({ backend: 'embedded', dataDir: dir });
  });
  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const network = (name: string): Network => ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name }, spec: { ipv4_cidr: '10.0.0.0/24' } });
  // What a controller does: a status write, which changes the resourceVersion but not the spec.
  const writeStatus = (name: string, observedGeneration: number) => mutate(store, 'Network', name, (n) => { n.status = { ...n.status, observedGeneration }; }, { subresource: 'status' });

  it('re-reads and deletes when a status write lands between its read and its delete', async () => {
    await store.create(network('busy'));
    let checks = 0;
    const deleted = await deleteChecked(store, 'Network', 'busy', async () => {
      checks++;
      // The first time, a controller writes status right after our read: the delete must not fail.
      if (checks === 1) await writeStatus('busy', 7);
    });
    expect(checks).toBe(2);
    expect(deleted.status?.observedGeneration).toBe(7);
    expect(deleted.metadata.name).toBe('busy');
    await expect(store.get('Network', 'busy')).rejects.toMatchObject({ code: 'NotFound' });
  });

  it('the premise: a plain delete with the resourceVersion read before a status write is a Conflict', async () => {
    const before = await store.create(network('raced'));
    await writeStatus('raced', 3);
    const err = await store.delete('Network', 'raced', { resourceVersion: before.metadata.resourceVersion }).then(() => undefined, (e) => e);
    expect(isN0Error(err, 'Conflict')).toBe(true);
    expect((await store.get('Network', 'raced')).metadata.name).toBe('raced');
  });

  it('refuses (and deletes nothing) when the check refuses the state it re-read', async () => {
    await store.create(network('guarded'));
    let checks = 0;
    const err = await deleteChecked(store, 'Network', 'guarded', async (n) => {
      checks++;
      // Between our first read and the delete, the object turns into something we must not delete.
      if (checks === 1) { await writeStatus('guarded', 9); return; }
      if (n.status?.observedGeneration === 9) throw new FailedPreconditionError('now in use');
    }).then(() => undefined, (e) => e);
    expect(isN0Error(err, 'FailedPrecondition')).toBe(true);
    expect(checks).toBe(2);
    expect((await store.get('Network', 'guarded')).status?.observedGeneration).toBe(9);
  });

  it('keeps many concurrent status writers from failing it', async () => {
    await store.create(network('hot'));
    let stop = false;
    const writers = [0, 1, 2].map(async (i) => {
      for (let n = 0; !stop; n++) {
        await writeStatus('hot', 100 * i + n).catch((e) => { if (!isN0Error(e, 'NotFound')) throw e; stop = true; });
      }
    });
    await new Promise((r) => setTimeout(r, 20));
    await deleteChecked(store, 'Network', 'hot', () => undefined);
    stop = true;
    await Promise.all(writers);
    await expect(store.get('Network', 'hot')).rejects.toMatchObject({ code: 'NotFound' });
  });
});

describe('KvStore update after a read', () => {
  it('writes at the revision just read without reading again, and still refuses a stale revision', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-recent-'));
    const lmdb = new LmdbBackend(dir);
    let gets = 0;
    const counting = new Proxy(lmdb, { get: (t, p, r) => (p === 'get' ? (key: string) => { gets++; return t.get(key); } : Reflect.get(t, p, r)) });
    const store = new KvStore('embedded', counting, '/t');
    try {
      await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name: 'n' }, spec: { ipv4_cidr: '10.0.0.0/24' } });
      gets = 0;
      const updated = await mutate(store, 'Network', 'n', (net) => { net.status = { observedGeneration: 3 }; }, { subresource: 'status' });
      expect(gets).toBe(1);
      expect(updated.status?.observedGeneration).toBe(3);
      // A second writer's update from the old copy conflicts (the CAS decides, not the remembered text).
      const stale = { ...updated, metadata: { ...updated.metadata, resourceVersion: String(Number(updated.metadata.resourceVersion) - 1) } };
      await expect(store.update(stale, { subresource: 'status' })).rejects.toMatchObject({ code: 'Conflict' });
      // Writing after our own write needs no read either; spec and server-owned fields are kept.
      gets = 0;
      const again = await store.update({ ...updated, status: { observedGeneration: 4 } }, { subresource: 'status' });
      expect(gets).toBe(0);
      expect(again.spec).toEqual({ ipv4_cidr: '10.0.0.0/24' });
      expect(again.metadata.uid).toBe(updated.metadata.uid);
      expect((await store.get('Network', 'n')).status?.observedGeneration).toBe(4);
      // Gone meanwhile: NotFound, as when the update had read it, for a change and for a no-op.
      await store.delete('Network', 'n');
      await expect(store.update({ ...again, status: { observedGeneration: 5 } }, { subresource: 'status' })).rejects.toMatchObject({ code: 'NotFound' });
      await expect(store.update(again, { subresource: 'status' })).rejects.toMatchObject({ code: 'NotFound' });
    } finally {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('mutate with a base', () => {
  let dir: string;
  let store: Store;
  let gets: number;
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-mutate-base-'));
    const embedded = await openStore({ backend: 'embedded', dataDir: dir });
    gets = 0;
    store = new Proxy(embedded, { get: (t, p, r) => (p === 'get' ? (...a: Parameters<Store['get']>) => { gets++; return t.get(...a); } : Reflect.get(t, p, r)) });
  });
  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const network = (name: string): Network => ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name }, spec: { ipv4_cidr: '10.0.0.0/24' } });

  it('writes onto a current base without reading, and leaves the base untouched', async () => {
    const base = Object.freeze(await store.create(network('n'))) as Network;
    gets = 0;
    const written = await mutate(store, 'Network', 'n', (n) => { n.status = { observedGeneration: 1 }; }, { subresource: 'status', base });
    expect(gets).toBe(0);
    expect(written.status?.observedGeneration).toBe(1);
    expect(base.status).toBeUndefined();
  });

  it('reads afresh when the base is stale, so no write in between is lost', async () => {
    const base = await store.create(network('n'));
    await mutate(store, 'Network', 'n', (n) => { n.status = { segment_id: 7 }; }, { subresource: 'status' });
    gets = 0;
    const written = await mutate(store, 'Network', 'n', (n) => { n.status = { ...n.status, observedGeneration: 1 }; }, { subresource: 'status', base });
    expect(gets).toBe(1);
    expect(written.status).toEqual({ segment_id: 7, observedGeneration: 1 });
  });

  it('still refuses a fenced write onto a newer object', async () => {
    const base = await store.create(network('n'));
    await mutate(store, 'Network', 'n', (n) => { n.status = { segment_id: 7 }; }, { subresource: 'status' });
    await expect(mutate(store, 'Network', 'n', (n) => { n.status = { observedGeneration: 1 }; }, { subresource: 'status', base, resourceVersion: base.metadata.resourceVersion }))
      .rejects.toThrow(/computed from resourceVersion/);
    expect((await store.get('Network', 'n')).status).toEqual({ segment_id: 7 });
  });
});
