import { describeStoreConformance } from '../../../api/store/conformance';
import { UnavailableError } from '../../../api/errors';
import type { Network } from '../../../api/types';
import { MemoryKv, MemoryStore } from './memory-store';

let current: MemoryStore | undefined;
describeStoreConformance('memory (test fixture)', async () => {
  current = new MemoryStore();
  return { store: current, cleanup: () => current!.close() };
}, { supportsCompaction: async () => async (revision) => current!.memory.compact(Number(revision)) });

describe('memory store fault injection', () => {
  it('breaks open watches with the given error', async () => {
    const store = new MemoryStore(new MemoryKv());
    const { resourceVersion } = await store.list('Network');
    const iterator = store.watch('Network', { resourceVersion })[Symbol.asyncIterator]();
    const next = iterator.next();
    await new Promise((r) => setImmediate(r));
    expect(store.memory.watchCount).toBe(1);
    expect(store.memory.breakWatches(new UnavailableError('connection lost'))).toBe(1);
    await expect(next).rejects.toMatchObject({ code: 'Unavailable' });
    expect(store.memory.watchCount).toBe(0);
    await store.close();
  });

  it('compacts automatically beyond the retained window', async () => {
    const store = new MemoryStore(new MemoryKv(3));
    const first = await store.create<Network>({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name: 'a' }, spec: {} });
    for (const n of ['b', 'c', 'd', 'e']) await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name: n }, spec: {} });
    const watchOld = async () => { for await (const _ of store.watch('Network', { resourceVersion: first.metadata.resourceVersion })) break; };
    await expect(watchOld()).rejects.toMatchObject({ code: 'TooOld' });
    await store.close();
  });
});
