import type { Network } from '../../api/types';
import { getWithFinalizer } from './finalizer';
import { MemoryStore } from './testing/memory-store';
import type { ReconcileContext } from './types';

const net = (name: string, finalizers?: string[]): Network => ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name, finalizers }, spec: { ipv4_cidr: '10.0.0.0/24' } });

describe('getWithFinalizer', () => {
  let store: MemoryStore;
  let ctx: ReconcileContext;
  beforeEach(() => {
    store = new MemoryStore();
    ctx = { store, cache: { get: () => undefined, list: () => [], byIndex: () => [] }, signal: new AbortController().signal, enqueue: () => undefined };
  });
  afterEach(() => store.close());

  it('adds the finalizer once and keeps the others', async () => {
    await store.create(net('a', ['other/keep']));
    const got = await getWithFinalizer(ctx, 'Network', 'a', 'n0stack/test');
    expect(got?.metadata.finalizers).toEqual(['other/keep', 'n0stack/test']);
    const stored = await store.get('Network', 'a');
    expect(stored.metadata.finalizers).toEqual(['other/keep', 'n0stack/test']);
    // Already there: no write.
    const again = await getWithFinalizer(ctx, 'Network', 'a', 'n0stack/test');
    expect(again?.metadata.resourceVersion).toBe(stored.metadata.resourceVersion);
  });

  it('returns undefined for an object that does not exist', async () => {
    expect(await getWithFinalizer(ctx, 'Network', 'missing', 'n0stack/test')).toBeUndefined();
  });

  it('hands back an object being deleted as it is, without adding the finalizer', async () => {
    await store.create(net('b', ['other/keep']));
    await store.delete('Network', 'b');
    const got = await getWithFinalizer(ctx, 'Network', 'b', 'n0stack/test');
    expect(got?.metadata.deletionTimestamp).toBeDefined();
    expect(got?.metadata.finalizers).toEqual(['other/keep']);
    expect((await store.get('Network', 'b')).metadata.finalizers).toEqual(['other/keep']);
  });
});
