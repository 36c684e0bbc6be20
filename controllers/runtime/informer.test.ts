import { TooOldError, UnavailableError } from '../../api/errors';
import type { ListOptions, ListResult } from '../../api/store/store';
import type { Kind, KindMap, Network } from '../../api/types';
import { Informer } from './informer';
import { MemoryStore } from './testing/memory-store';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(check: () => boolean, deadlineMs = 5000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`condition not met within ${deadlineMs} ms`);
    await sleep(5);
  }
}

const net = (name: string, cidr = '10.0.0.0/24'): Network => ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name }, spec: { ipv4_cidr: cidr } });

/** Lists fail while `failLists` > 0, as a store that is down would. */
class FlakyStore extends MemoryStore {
  failLists = 0;
  override async list<K extends Kind>(kind: K, options?: ListOptions): Promise<ListResult<KindMap[K]>> {
    if (this.failLists > 0) { this.failLists--; throw new UnavailableError('store is down'); }
    return super.list(kind, options);
  }
}

function recorder(informer: Informer<'Network'>): string[] {
  const events: string[] = [];
  informer.addHandlers({
    onAdd: (o) => events.push(`add ${o.metadata.name}`),
    onUpdate: (a, b) => events.push(`update ${b.metadata.name} ${a.spec.ipv4_cidr}->${b.spec.ipv4_cidr}`),
    onDelete: (o) => events.push(`delete ${o.metadata.name}`),
  });
  return events;
}

describe('Informer', () => {
  let controller: AbortController;
  let store: FlakyStore;
  beforeEach(() => { controller = new AbortController(); store = new FlakyStore(); });
  afterEach(async () => { controller.abort(); await store.close(); });

  it('keeps an index in step with adds, updates, deletes and re-lists', async () => {
    await store.create(net('a', '10.0.0.0/24'));
    await store.create(net('b', '10.0.0.0/24'));
    const informer = new Informer(store, 'Network', { backoff: { baseMs: 20 } });
    informer.addIndex('cidr', (n) => [n.spec.ipv4_cidr!]);
    const names = (cidr: string) => informer.byIndex('cidr', cidr).map((n) => n.metadata.name).sort();
    void informer.run(controller.signal);
    await informer.waitForSync(2000);
    expect(names('10.0.0.0/24')).toEqual(['a', 'b']);
    // An index added after the cache filled covers what is already there.
    informer.addIndex('name', (n) => [n.metadata.name]);
    expect(informer.byIndex('name', 'b').map((n) => n.spec.ipv4_cidr)).toEqual(['10.0.0.0/24']);
    const b = await store.get('Network', 'b');
    await store.update({ ...b, spec: { ipv4_cidr: '10.1.0.0/24' } });
    await store.delete('Network', 'a');
    await until(() => names('10.1.0.0/24').length === 1 && names('10.0.0.0/24').length === 0);
    expect(names('10.1.0.0/24')).toEqual(['b']);
    expect(informer.byIndex('name', 'a')).toEqual([]);
    // A broken watch re-lists: objects gone meanwhile leave the index too.
    const c = await store.create(net('c', '10.2.0.0/24'));
    await until(() => names('10.2.0.0/24').length === 1);
    await until(() => store.memory.watchCount === 1);
    store.memory.breakWatches(new UnavailableError('connection reset'));
    await store.delete('Network', c.metadata.name);
    await until(() => informer.stats.lists === 2);
    expect(names('10.2.0.0/24')).toEqual([]);
    expect(names('10.1.0.0/24')).toEqual(['b']);
    expect(() => informer.byIndex('nope', 'x')).toThrow(/no index named nope/);
    expect(() => informer.addIndex('cidr', () => [])).toThrow(/already has an index named cidr/);
  });

  it('lists, then follows the watch, keeping the cache and telling handlers', async () => {
    await store.create(net('a'));
    const informer = new Informer(store, 'Network');
    const events = recorder(informer);
    const running = informer.run(controller.signal);
    await informer.waitForSync(2000);
    expect(events).toEqual(['add a']);
    const b = await store.create(net('b'));
    await store.update({ ...b, spec: { ipv4_cidr: '10.1.0.0/24' } });
    await store.delete('Network', 'a');
    await until(() => events.length === 4);
    expect(events).toEqual(['add a', 'add b', 'update b 10.0.0.0/24->10.1.0.0/24', 'delete a']);
    expect(informer.list().map((o) => o.metadata.name)).toEqual(['b']);
    expect(informer.get('b')?.spec.ipv4_cidr).toBe('10.1.0.0/24');
    expect(informer.get('a')).toBeUndefined();
    // Status-only writes are changes too (level-triggered consumers decide what matters).
    await store.update({ ...informer.get('b')!, status: { state: 'AVAILABLE' } }, { subresource: 'status' });
    await until(() => informer.get('b')?.status?.state === 'AVAILABLE');
    expect(informer.stats).toMatchObject({ lists: 1, watches: 1, watchFailures: 0 });
    controller.abort();
    await running;
    expect(store.memory.watchCount).toBe(0);
  });

  it('hands out frozen objects so no reader can corrupt the shared cache', async () => {
    await store.create(net('a'));
    const informer = new Informer(store, 'Network');
    void informer.run(controller.signal);
    await informer.waitForSync(2000);
    const cached = informer.get('a')!;
    expect(() => { (cached.spec as { ipv4_cidr?: string }).ipv4_cidr = 'x'; }).toThrow(TypeError);
    const copy = structuredClone(cached);
    copy.spec.ipv4_cidr = '10.9.0.0/24';
    expect(informer.get('a')!.spec.ipv4_cidr).toBe('10.0.0.0/24');
  });

  it('re-lists after a broken watch and delivers what it missed as a difference', async () => {
    await store.create(net('keep'));
    await store.create(net('gone'));
    await store.create(net('changed'));
    const informer = new Informer(store, 'Network', { backoff: { baseMs: 150 } });
    const events = recorder(informer);
    void informer.run(controller.signal);
    await informer.waitForSync(2000);
    await until(() => store.memory.watchCount === 1);
    events.length = 0;
    // The connection drops; while the informer backs off, the world changes without it watching.
    expect(store.memory.breakWatches(new UnavailableError('connection reset'))).toBe(1);
    await store.delete('Network', 'gone');
    const changed = await store.get('Network', 'changed');
    await store.update({ ...changed, spec: { ipv4_cidr: '10.2.0.0/24' } });
    await store.create(net('new'));
    await until(() => informer.stats.lists === 2 && events.length === 3);
    expect(events.sort()).toEqual(['add new', 'delete gone', 'update changed 10.0.0.0/24->10.2.0.0/24']);
    expect(informer.list().map((o) => o.metadata.name).sort()).toEqual(['changed', 'keep', 'new']);
    // And it watches again afterwards.
    await until(() => store.memory.watchCount === 1);
    await store.create(net('after'));
    await until(() => informer.get('after') !== undefined);
    expect(informer.stats.watchFailures).toBe(1);
  });

  it('re-lists at once on TooOldError', async () => {
    const informer = new Informer(store, 'Network', { backoff: { baseMs: 5000 } });
    void informer.run(controller.signal);
    await informer.waitForSync(2000);
    await until(() => store.memory.watchCount === 1);
    const t = Date.now();
    store.memory.breakWatches(new TooOldError('1'));
    await until(() => informer.stats.lists === 2 && store.memory.watchCount === 1);
    expect(Date.now() - t).toBeLessThan(1000); // not the 5 s back-off
    await store.create(net('x'));
    await until(() => informer.get('x') !== undefined);
  });

  it('retries a failing list with back-off, and waitForSync has a deadline', async () => {
    store.failLists = 3;
    const informer = new Informer(store, 'Network', { backoff: { baseMs: 30, maxMs: 1000 } });
    void informer.run(controller.signal);
    await expect(informer.waitForSync(20)).rejects.toMatchObject({ code: 'DeadlineExceeded', message: expect.stringContaining('Network cache did not sync within 20 ms') });
    const t = Date.now();
    await informer.waitForSync(3000);
    expect(informer.stats.listFailures).toBe(3);
    // 30 + 60 + 120 ms of back-off in total, most of it after the first wait gave up.
    expect(Date.now() - t).toBeGreaterThanOrEqual(100);
    expect(informer.synced).toBe(true);
  });

  it('stops promptly when the signal aborts, even while backing off', async () => {
    store.failLists = 100;
    const informer = new Informer(store, 'Network', { backoff: { baseMs: 60_000 } });
    const running = informer.run(controller.signal);
    await until(() => informer.stats.listFailures === 1);
    const t = Date.now();
    controller.abort();
    await running;
    expect(Date.now() - t).toBeLessThan(500);
  });
});
