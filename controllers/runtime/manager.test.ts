import { Registry } from 'prom-client';
import type { Store } from '../../api/store/store';
import type { Kind, Network, VirtualMachine } from '../../api/types';
import { Manager, type LeaderElector } from './manager';
import { MemoryStore } from './testing/memory-store';
import { TerminalError, type ReconcileContext, type ReconcileResult, type Reconciler } from './types';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(check: () => boolean, deadlineMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`${what} not met within ${deadlineMs} ms`);
    await sleep(5);
  }
}

const net = (name: string, annotations?: Record<string, string>): Network => ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name, annotations }, spec: { ipv4_cidr: '10.0.0.0/24' } });
const vm = (name: string, networks: string[]): VirtualMachine => ({
  apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name },
  spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: 2 ** 29, nics: networks.map((network_name) => ({ network_name })) },
});

type Behaviour = (name: string, ctx: ReconcileContext, call: number) => Promise<ReconcileResult>;

/** A toy reconciler that counts calls and in-flight reconciles per key. */
class Counting<K extends Kind> implements Reconciler<K> {
  readonly calls: { name: string; at: number }[] = [];
  readonly active = new Map<string, number>();
  readonly maxActive = new Map<string, number>();
  watches?: Reconciler<K>['watches'];
  constructor(readonly kind: K, private readonly behaviour: Behaviour = async () => ({})) {}
  count(name: string): number { return this.calls.filter((c) => c.name === name).length; }
  async reconcile(name: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    this.calls.push({ name, at: Date.now() });
    const now = (this.active.get(name) ?? 0) + 1;
    this.active.set(name, now);
    this.maxActive.set(name, Math.max(this.maxActive.get(name) ?? 0, now));
    try {
      return await this.behaviour(name, ctx, this.count(name));
    } finally {
      this.active.set(name, this.active.get(name)! - 1);
    }
  }
}

describe('Manager', () => {
  let store: MemoryStore;
  let controller: AbortController;
  let manager: Manager;
  const make = (extra: Partial<ConstructorParameters<typeof Manager>[0]> = {}) => {
    manager = new Manager({ store, registry: new Registry(), backoff: { baseMs: 30, maxMs: 1000 }, shutdownDeadlineMs: 2000, ...extra });
    return manager;
  };
  beforeEach(() => { store = new MemoryStore(); controller = new AbortController(); });
  afterEach(async () => { controller.abort(); await manager?.stopped; await store.close(); });

  it('reconciles existing objects once at start and new ones on change, with a synced cache', async () => {
    await store.create(net('a'));
    const r = new Counting('Network');
    make().register(r);
    await manager.start(controller.signal);
    expect(manager.cache.get('Network', 'a')?.spec.ipv4_cidr).toBe('10.0.0.0/24');
    await until(() => r.count('a') === 1);
    await store.create(net('b'));
    await until(() => r.count('b') === 1);
    await sleep(50);
    expect(r.count('a')).toBe(1);
    expect(r.count('b')).toBe(1);
  });

  it('de-duplicates: a burst of changes while a key is in flight gives one more reconcile', async () => {
    let release!: () => void;
    const gate = new Promise<void>((res) => { release = res; });
    const r = new Counting('Network', async (_n, _c, call) => { if (call === 1) await gate; return {}; });
    make().register(r);
    await manager.start(controller.signal);
    const created = await store.create(net('a'));
    await until(() => r.count('a') === 1);
    let current = created;
    for (let i = 0; i < 20; i++) current = await store.update({ ...current, metadata: { ...current.metadata, annotations: { i: String(i) } } });
    await until(() => manager.cache.get('Network', 'a')?.metadata.annotations?.i === '19');
    release();
    await until(() => r.count('a') === 2);
    await sleep(80);
    expect(r.count('a')).toBe(2);
  });

  it('never reconciles one key concurrently under a burst of 200 updates, and ends on the last state', async () => {
    const lastSeen = new Map<string, string>();
    const r = new Counting('Network', async (name, ctx) => {
      await sleep(Math.random() * 4);
      const obj = await ctx.store.get('Network', name);
      lastSeen.set(name, obj.metadata.annotations?.n ?? '');
      return {};
    });
    make({ workersPerKind: 4 }).register(r);
    await manager.start(controller.signal);
    const keys = ['a', 'b', 'c'];
    for (const n of keys) await store.create(net(n));
    await Promise.all(keys.map(async (n) => {
      for (let i = 1; i <= 200; i++) {
        const cur = await store.get('Network', n);
        await store.update({ ...cur, metadata: { ...cur.metadata, annotations: { n: String(i) } } });
        // The memory store never yields to the event loop by itself; real stores do (I/O).
        if (i % 2 === 0) await new Promise((res) => setTimeout(res, 1));
      }
    }));
    const idle = () => manager.queueStats().Network.queued === 0 && manager.queueStats().Network.inFlight === 0;
    await until(() => keys.every((k) => manager.cache.get('Network', k)?.metadata.annotations?.n === '200') && idle(), 10_000, 'queue drained');
    await sleep(50);
    expect(idle()).toBe(true);
    for (const n of keys) expect(r.maxActive.get(n)).toBe(1);
    // Level-triggered: for every key, a reconcile after the last write saw it.
    for (const n of keys) expect(lastSeen.get(n)).toBe('200');
    // Bursts collapse: far fewer reconciles than writes, but more than one per key.
    expect(r.calls.length).toBeGreaterThan(keys.length * 10);
    expect(r.calls.length).toBeLessThan(keys.length * 201);
    // eslint-disable-next-line no-console
    console.info(`3 keys x 200 updates -> ${r.calls.length} reconciles, max concurrency per key ${Math.max(...r.maxActive.values())}`);
  }, 30_000);

  it('retries errors with growing back-off, then stops after success', async () => {
    const r = new Counting('Network', async (_n, _c, call) => { if (call <= 3) throw new Error(`transient ${call}`); return {}; });
    make().register(r);
    await manager.start(controller.signal);
    await store.create(net('a'));
    await until(() => r.count('a') === 4);
    const at = r.calls.map((c) => c.at);
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    expect(gaps[0]).toBeGreaterThanOrEqual(28);
    expect(gaps[1]).toBeGreaterThanOrEqual(58);
    expect(gaps[2]).toBeGreaterThanOrEqual(118);
    await sleep(300);
    expect(r.count('a')).toBe(4);
  });

  it('does not retry a TerminalError until the object changes', async () => {
    const r = new Counting('Network', async (name, ctx) => {
      const obj = await ctx.store.get('Network', name);
      if (!obj.metadata.annotations?.fixed) throw new TerminalError('spec is wrong', 'InvalidSpec');
      return {};
    });
    make().register(r);
    await manager.start(controller.signal);
    const a = await store.create(net('a'));
    await until(() => r.count('a') === 1);
    await sleep(200);
    expect(r.count('a')).toBe(1);
    await store.update({ ...a, metadata: { ...a.metadata, annotations: { fixed: 'yes' } } });
    await until(() => r.count('a') === 2);
  });

  it('honours requeueAfter without any change', async () => {
    const r = new Counting('Network', async (_n, _c, call) => (call < 3 ? { requeueAfterMs: 60 } : {}));
    make().register(r);
    await manager.start(controller.signal);
    await store.create(net('a'));
    await until(() => r.count('a') === 3);
    const at = r.calls.map((c) => c.at);
    expect(at[1] - at[0]).toBeGreaterThanOrEqual(58);
    expect(at[2] - at[1]).toBeGreaterThanOrEqual(58);
    await sleep(150);
    expect(r.count('a')).toBe(3);
  });

  it('enqueues through watches (old and new state) and ctx.enqueue', async () => {
    const vms = new Counting('VirtualMachine');
    vms.watches = [{ kind: 'Network', map: (obj, cache) => cache.list('VirtualMachine').filter((v) => v.spec.nics?.some((n) => n.network_name === obj.metadata.name)).map((v) => v.metadata.name) }];
    const nets = new Counting('Network', async (name, ctx) => { if (name === 'poke') ctx.enqueue('VirtualMachine', 'vm-other'); return {}; });
    make();
    manager.register(vms);
    manager.register(nets);
    await store.create(net('lan'));
    await store.create(vm('vm-lan', ['lan']));
    await store.create(vm('vm-other', ['wan']));
    await manager.start(controller.signal);
    await until(() => vms.count('vm-lan') >= 1 && vms.count('vm-other') === 1);
    const before = { lan: vms.count('vm-lan'), other: vms.count('vm-other') };
    const lan = await store.get('Network', 'lan');
    await store.update({ ...lan, spec: { ipv4_cidr: '10.5.0.0/24' } });
    await until(() => vms.count('vm-lan') === before.lan + 1, 5000, 'watch-driven reconcile');
    await sleep(50);
    // Old and new state both map to vm-lan: one reconcile, not two.
    expect(vms.count('vm-lan')).toBe(before.lan + 1);
    await sleep(50);
    expect(vms.count('vm-other')).toBe(before.other);
    await store.create(net('poke'));
    await until(() => vms.count('vm-other') === before.other + 1, 5000, 'ctx.enqueue');
  }, 20_000);

  it('resyncs every object periodically', async () => {
    const r = new Counting('Network');
    make({ resyncMs: 80 }).register(r);
    await store.create(net('a'));
    await manager.start(controller.signal);
    await until(() => r.count('a') >= 3, 3000, 'three resyncs');
  });

  it('runs a reconciler\'s audit periodically while leading, one run at a time, and reconciles what it finds', async () => {
    const r = new Counting('Network');
    let runs = 0;
    let running = 0;
    let overlapped = false;
    (r as { audit?: Reconciler['audit'] }).audit = {
      everyMs: 30,
      run: async (ctx) => {
        runs++;
        overlapped ||= running > 0;
        running++;
        // Slower than the period: the next run must wait for this one.
        await sleep(50);
        running--;
        expect(ctx.cache.get('Network', 'a')?.metadata.name).toBe('a');
        ctx.enqueue('Network', 'a');
      },
    };
    make({ resyncMs: 60_000 }).register(r);
    await store.create(net('a'));
    await manager.start(controller.signal);
    await until(() => runs >= 3 && r.count('a') >= 3, 5000, 'three audits, each followed by a reconcile');
    expect(overlapped).toBe(false);
    controller.abort();
    await manager.stopped;
    const after = runs;
    await sleep(100);
    expect(runs).toBe(after);
  });

  it('rejects duplicate registrations and unknown watched kinds', () => {
    make({ kinds: ['Network'] });
    manager.register(new Counting('Network'));
    expect(() => manager.register(new Counting('Network'))).toThrow(/already registered/);
    expect(() => manager.register(new Counting('VirtualMachine'))).toThrow(/does not cache/);
  });

  it('fails start when a cache cannot sync before the deadline', async () => {
    const broken = new MemoryStore();
    broken.list = async () => { throw new Error('store is down'); };
    manager = new Manager({ store: broken as Store, registry: new Registry(), syncTimeoutMs: 100, backoff: { baseMs: 20 } });
    manager.register(new Counting('Network'));
    await expect(manager.start(controller.signal)).rejects.toMatchObject({ code: 'DeadlineExceeded' });
    await manager.stopped;
  });

  it('stops: waits for the in-flight reconcile and takes no new work', async () => {
    let finished = false;
    const r = new Counting('Network', async () => { await sleep(100); finished = true; return {}; });
    make().register(r);
    await manager.start(controller.signal);
    await store.create(net('a'));
    await until(() => r.count('a') === 1);
    await manager.stop();
    expect(finished).toBe(true);
    await store.create(net('b'));
    await sleep(50);
    expect(r.count('b')).toBe(0);
  });
});

/** An in-process elector the test drives: grant() makes the pending campaign win, lose() reports loss. */
class TestElector implements LeaderElector {
  campaigns = 0;
  private pending: (() => void) | undefined;
  private lostHandlers: ((err?: Error) => void)[] = [];
  campaign(signal: AbortSignal): Promise<void> {
    this.campaigns++;
    return new Promise((resolve, reject) => {
      this.pending = resolve;
      signal.addEventListener('abort', () => reject(new Error('campaign aborted')), { once: true });
    });
  }
  grant(): void { const p = this.pending; this.pending = undefined; p?.(); }
  lose(): void { for (const h of this.lostHandlers) h(new Error('lease lost')); }
  onLost(cb: (err?: Error) => void): void { this.lostHandlers.push(cb); }
}

describe('Manager with leader election', () => {
  it('reconciles only while leading, aborts in-flight work on loss, and resumes when re-elected', async () => {
    const store = new MemoryStore();
    const controller = new AbortController();
    const signals: AbortSignal[] = [];
    const r = new Counting('Network', async (name, ctx) => {
      signals.push(ctx.signal);
      if (name === 'slow') await new Promise<void>((res) => ctx.signal.addEventListener('abort', () => res(), { once: true }));
      return {};
    });
    const manager = new Manager({ store, registry: new Registry(), shutdownDeadlineMs: 2000 });
    manager.register(r);
    const elector = new TestElector();
    try {
      await store.create(net('a'));
      await manager.start(controller.signal, elector);
      // Synced cache, but a follower does not reconcile.
      expect(manager.cache.get('Network', 'a')).toBeDefined();
      await sleep(100);
      expect(manager.leading).toBe(false);
      expect(r.calls).toHaveLength(0);
      await store.create(net('b'));
      await sleep(50);
      expect(r.calls).toHaveLength(0);

      elector.grant();
      await until(() => r.count('a') === 1 && r.count('b') === 1);
      expect(manager.leading).toBe(true);

      await store.create(net('slow'));
      await until(() => r.count('slow') === 1);
      const slowSignal = signals[signals.length - 1];
      expect(slowSignal.aborted).toBe(false);
      elector.lose();
      await until(() => !manager.leading && slowSignal.aborted, 3000, 'workers stopped on loss');
      await until(() => elector.campaigns === 2, 3000, 'campaigning again');
      const count = r.calls.length;
      await store.create(net('c'));
      await sleep(100);
      expect(r.calls.length).toBe(count);

      elector.grant();
      await until(() => r.count('c') === 1, 3000, 'reconciles resumed');
      expect(r.count('a')).toBe(2); // everything is reconciled again on becoming leader
    } finally {
      controller.abort();
      await manager.stopped;
      await store.close();
    }
  });
});
