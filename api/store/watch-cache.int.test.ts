// The facade's watch cache over the real embedded store: watchers share one upstream watch, a
// watcher that starts a little behind gets what it missed from the window, one from before the
// window gets a watch of its own, and an upstream failure reaches every watcher.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UnavailableError } from '../errors';
import type { Kind, Network } from '../types';
import { openStore } from './index';
import type { Store, WatchEvent, WatchOptions } from './store';
import { WatchCacheStore } from './watch-cache';

const net = (name: string): Network => ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name }, spec: { ipv4_cidr: '10.0.0.0/24' } });

/** Collects `count` events as "TYPE name", then stops the watch. */
async function take(store: Store, count: number, options: WatchOptions = {}): Promise<string[]> {
  const controller = new AbortController();
  const seen: string[] = [];
  for await (const e of store.watch('Network', { ...options, signal: controller.signal })) {
    seen.push(`${e.type} ${e.object.metadata.name}`);
    if (seen.length === count) controller.abort();
  }
  return seen;
}

describe('WatchCacheStore', () => {
  let dir: string;
  let inner: Store;
  let upstreamWatches: number;
  let breakUpstream: ((err: Error) => void) | undefined;
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-watch-cache-'));
    const embedded = await openStore({ backend: 'embedded', dataDir: dir });
    upstreamWatches = 0;
    // Counts the watches that reach the real store, and can make them fail like a lost connection.
    inner = new Proxy(embedded, {
      get: (target, prop, receiver) => prop !== 'watch' ? Reflect.get(target, prop, receiver) : (kind: Kind, o: WatchOptions) => {
        upstreamWatches++;
        const failure = new AbortController();
        return {
          async *[Symbol.asyncIterator]() {
            let failWith: Error | undefined;
            breakUpstream = (err) => { failWith = err; failure.abort(); };
            const both = AbortSignal.any([o.signal ?? new AbortController().signal, failure.signal]);
            for await (const e of target.watch(kind, { ...o, signal: both })) yield e;
            if (failWith) throw failWith;
          },
        };
      },
    });
  });
  afterEach(async () => {
    await inner.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('hands a watcher that names its object only that object\'s events, from the window too', async () => {
    const cache = new WatchCacheStore(inner);
    const a = await inner.create(net('a'));
    const all = take(cache, 4, { resourceVersion: a.metadata.resourceVersion });
    await inner.create(net('b'));
    await inner.create(net('c'));
    await inner.update({ ...(await inner.get('Network', 'b')), status: { observedGeneration: 1 } }, { subresource: 'status' });
    // Starts behind: b's two events come from the window (found by revision), c's not at all.
    const onlyB = take(cache, 3, { resourceVersion: a.metadata.resourceVersion, name: 'b' });
    await inner.delete('Network', 'c');
    await inner.delete('Network', 'b');
    expect(await onlyB).toEqual(['ADDED b', 'MODIFIED b', 'DELETED b']);
    expect(await all).toEqual(['ADDED b', 'ADDED c', 'MODIFIED b', 'DELETED c']);
    expect(upstreamWatches).toBe(1);
  });

  it('serves every watcher of a kind from one upstream watch, each from its own position', async () => {
    const cache = new WatchCacheStore(inner);
    const a = await inner.create(net('a'));
    const first = take(cache, 3, { resourceVersion: a.metadata.resourceVersion });
    const b = await inner.create(net('b'));
    await inner.create(net('c'));
    // Starts after b, behind the feed's position: the window replays c.
    const second = take(cache, 2, { resourceVersion: b.metadata.resourceVersion });
    await inner.create(net('d'));
    await inner.delete('Network', 'a');
    expect(await first).toEqual(['ADDED b', 'ADDED c', 'ADDED d']);
    expect(await second).toEqual(['ADDED c', 'ADDED d']);
    expect(upstreamWatches).toBe(1);
    expect(cache.stats).toEqual({ cached: 2, upstream: 0 });
    // A later watcher from the same position replays the window, the deletion included.
    expect(await take(cache, 3, { resourceVersion: b.metadata.resourceVersion })).toEqual(['ADDED c', 'ADDED d', 'DELETED a']);
    expect(upstreamWatches).toBe(1);
    await cache.close();
  });

  it('gives a watcher from before the window a watch of its own, and shares frozen events', async () => {
    const cache = new WatchCacheStore(inner, { window: 2 });
    const a = await inner.create(net('a'));
    const b = await inner.create(net('b'));
    const follower = take(cache, 4, { resourceVersion: b.metadata.resourceVersion });
    const rv: Record<string, string> = {};
    for (const n of ['c', 'd', 'e', 'f']) rv[n] = (await inner.create(net(n))).metadata.resourceVersion!;
    expect(await follower).toEqual(['ADDED c', 'ADDED d', 'ADDED e', 'ADDED f']);
    // The window now holds only e and f: a watch from a (before the floor) goes upstream.
    expect(await take(cache, 5, { resourceVersion: a.metadata.resourceVersion })).toEqual(['ADDED b', 'ADDED c', 'ADDED d', 'ADDED e', 'ADDED f']);
    expect(cache.stats).toEqual({ cached: 1, upstream: 1 });
    // So does a watch "from now" (no resourceVersion to place it by).
    const fromNow = take(cache, 1);
    await new Promise((r) => setTimeout(r, 50));
    await inner.create(net('g'));
    expect(await fromNow).toEqual(['ADDED g']);
    expect(cache.stats.upstream).toBe(2);
    const controller = new AbortController();
    // The window holds f and g now; a watch from e is served from it, with shared, frozen objects.
    for await (const e of cache.watch('Network', { resourceVersion: rv.e, signal: controller.signal }) as AsyncIterable<WatchEvent<Network>>) {
      expect(e.object.metadata.name).toBe('f');
      expect(Object.isFrozen(e.object.spec)).toBe(true);
      controller.abort();
    }
    expect(cache.stats).toEqual({ cached: 2, upstream: 2 });
    await cache.close();
  });

  it('fails every watcher when the upstream watch fails, and starts afresh for the next', async () => {
    const cache = new WatchCacheStore(inner);
    const a = await inner.create(net('a'));
    const w1 = take(cache, 10, { resourceVersion: a.metadata.resourceVersion });
    const w2 = take(cache, 10, { resourceVersion: a.metadata.resourceVersion });
    await inner.create(net('b'));
    await new Promise((r) => setTimeout(r, 50));
    breakUpstream!(new UnavailableError('connection reset'));
    await expect(w1).rejects.toThrow(/connection reset/);
    await expect(w2).rejects.toThrow(/connection reset/);
    const c = await inner.create(net('c'));
    const w3 = take(cache, 1, { resourceVersion: c.metadata.resourceVersion });
    await new Promise((r) => setTimeout(r, 50));
    await inner.create(net('d'));
    expect(await w3).toEqual(['ADDED d']);
    expect(upstreamWatches).toBe(2);
    await cache.close();
  });

  it('ends a watcher whose signal aborts without disturbing the others', async () => {
    const cache = new WatchCacheStore(inner);
    const a = await inner.create(net('a'));
    const early = new AbortController();
    const stopped = (async () => { const seen: string[] = []; for await (const e of cache.watch('Network', { resourceVersion: a.metadata.resourceVersion, signal: early.signal })) seen.push(e.object.metadata.name); return seen; })();
    const other = take(cache, 2, { resourceVersion: a.metadata.resourceVersion });
    await inner.create(net('b'));
    await new Promise((r) => setTimeout(r, 50));
    early.abort();
    expect(await stopped).toEqual(['b']);
    await inner.create(net('c'));
    expect(await other).toEqual(['ADDED b', 'ADDED c']);
    await cache.close();
  });
});
