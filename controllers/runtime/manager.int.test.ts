// The runtime on the real store backends: embedded (LMDB in a temp dir) and etcd (the shared one
// from hack/test.sh, or our own), plus leader fail-over between two managers on an etcd lease.
import { renderedNode } from '../../api/placement';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { Registry } from 'prom-client';
import { mutate } from '../../api/store/mutate';
import { LmdbBackend } from '../../api/store/embedded';
import { EtcdBackend } from '../../api/store/etcd';
import { KvStore } from '../../api/store/kv';
import { LeaderElection } from '../../api/store/leader';
import type { Store } from '../../api/store/store';
import { startEtcd } from '../../api/store/testing/etcd';
import type { Network, Node } from '../../api/types';
import { NodeReconciler } from '../node';
import { Manager, type LeaderElector } from './manager';
import type { ReconcileContext, ReconcileResult, Reconciler } from './types';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(check: () => Promise<boolean> | boolean, deadlineMs: number, what: string): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what} not met within ${deadlineMs} ms`);
    await sleep(20);
  }
}

async function etcdEndpoint(): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  if (process.env.N0STACK_TEST_ETCD) return { endpoint: process.env.N0STACK_TEST_ETCD, stop: async () => undefined };
  return startEtcd();
}

const net = (name: string, cidr = '10.0.0.0/24'): Network => ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name }, spec: { ipv4_cidr: cidr } });

/** Writes status.observedGeneration, as every real reconciler does; counts calls and concurrency per key. */
class ObservingReconciler implements Reconciler<'Network'> {
  readonly kind = 'Network' as const;
  calls = 0;
  private readonly active = new Map<string, number>();
  maxActive = 0;
  async reconcile(name: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    this.calls++;
    const a = (this.active.get(name) ?? 0) + 1;
    this.active.set(name, a);
    this.maxActive = Math.max(this.maxActive, a);
    try {
      await mutate(ctx.store, 'Network', name, (n) => {
        if (n.status?.observedGeneration === n.metadata.generation) return false;
        n.status = { ...n.status, observedGeneration: n.metadata.generation, state: 'AVAILABLE' };
      }, { subresource: 'status' }).catch((err) => { if (err?.code !== 'NotFound') throw err; });
      return {};
    } finally {
      this.active.set(name, a - 1);
    }
  }
}

const backends: [string, () => Promise<{ store: Store; cleanup: () => Promise<void> }>][] = [
  ['embedded', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-runtime-'));
    const store = new KvStore('embedded', new LmdbBackend(dir), '/n0stack');
    return { store, cleanup: async () => { await store.close(); fs.rmSync(dir, { recursive: true, force: true }); } };
  }],
  ['etcd', async () => {
    const etcd = await etcdEndpoint();
    const store = new KvStore('etcd', new EtcdBackend({ endpoints: [etcd.endpoint] }), `/n0stack-test-${randomBytes(4).toString('hex')}`);
    return { store, cleanup: async () => { await store.close(); await etcd.stop(); } };
  }],
];

describe.each(backends)('Manager on the %s store', (_name, open) => {
  let store: Store;
  let cleanup: () => Promise<void>;
  beforeAll(async () => { ({ store, cleanup } = await open()); }, 60_000);
  afterAll(async () => { await cleanup?.(); }, 30_000);

  it('drives 30 objects to observedGeneration through create and spec updates, one reconcile per key at a time', async () => {
    const controller = new AbortController();
    const r = new ObservingReconciler();
    const manager = new Manager({ store, registry: new Registry(), kinds: ['Network'], workersPerKind: 4 });
    manager.register(r);
    try {
      await manager.start(controller.signal);
      const names = Array.from({ length: 30 }, (_, i) => `rt-${i}`);
      await Promise.all(names.map((n) => store.create(net(n))));
      const allAt = async (gen: number) => (await store.list('Network')).items.filter((n) => names.includes(n.metadata.name) && n.status?.observedGeneration === gen).length === names.length;
      await until(() => allAt(1), 20_000, 'observedGeneration 1 everywhere');
      for (const n of names) {
        const cur = await store.get('Network', n);
        await store.update({ ...cur, spec: { ipv4_cidr: '10.1.0.0/24' } });
      }
      await until(() => allAt(2), 20_000, 'observedGeneration 2 everywhere');
      expect(r.maxActive).toBe(1);
      // Each key: its create, its status write's echo, its update, that status echo — give or take dedupe.
      expect(r.calls).toBeGreaterThanOrEqual(60);
      expect(r.calls).toBeLessThan(30 * 8);
      await Promise.all(names.map((n) => store.delete('Network', n)));
    } finally {
      controller.abort();
      await manager.stopped;
    }
  }, 60_000);

  it('marks a node NotReady when heartbeats stop, with no write but its own', async () => {
    const controller = new AbortController();
    const manager = new Manager({ store, registry: new Registry(), kinds: ['Node', 'NodeLease', 'VirtualMachine', 'BlockStorage', 'Reservation'] });
    manager.register(new NodeReconciler({ heartbeatTimeoutMs: 1000 }));
    const name = `host-${randomBytes(3).toString('hex')}`;
    try {
      await manager.start(controller.signal);
      await store.create<Node>({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Node', metadata: { name }, spec: { cpu_milli_cores: 2000, memory_bytes: 2 ** 31 } });
      const state = async () => (await store.get('Node', name)).status?.state;
      await until(async () => (await state()) === 'NotReady', 10_000, 'NotReady without heartbeat');
      await mutate(store, 'Node', name, (n) => { n.status = { ...n.status, last_heartbeat_time: new Date().toISOString() }; }, { subresource: 'status' });
      await until(async () => (await state()) === 'Ready', 10_000, 'Ready after a heartbeat');
      const t = Date.now();
      await until(async () => (await state()) === 'NotReady', 10_000, 'NotReady after the timeout');
      expect(Date.now() - t).toBeGreaterThanOrEqual(700);
      expect((await renderedNode(store, name)).status?.allocatable).toEqual({ cpu_milli_cores: 2000, memory_bytes: 2 ** 31, storage_bytes: 0 });
      await store.delete('Node', name);
    } finally {
      controller.abort();
      await manager.stopped;
    }
  }, 60_000);
});

describe('Manager leader fail-over on an etcd lease', () => {
  it('only the leader reconciles; the follower takes over when the leader resigns', async () => {
    const etcd = await etcdEndpoint();
    const prefix = `/n0stack-test-${randomBytes(4).toString('hex')}`;
    const store = new KvStore('etcd', new EtcdBackend({ endpoints: [etcd.endpoint] }), prefix);
    const clients = [new Etcd3({ hosts: [etcd.endpoint] }), new Etcd3({ hosts: [etcd.endpoint] })];
    const elections = clients.map((c) => new LeaderElection(c, 'controllers', { ttlSeconds: 2, prefix }));
    const controllers = [new AbortController(), new AbortController()];
    const reconcilers = [new ObservingReconciler(), new ObservingReconciler()];
    const managers = reconcilers.map((r) => {
      const m = new Manager({ store, registry: new Registry(), kinds: ['Network'] });
      m.register(r);
      return m;
    });
    const elector = (i: number): LeaderElector => ({
      campaign: (signal) => elections[i].campaign(`manager-${i}`, { signal }),
      onLost: (cb) => elections[i].onLost(cb),
    });
    try {
      await managers[0].start(controllers[0].signal, elector(0));
      await until(() => managers[0].leading, 10_000, 'manager 0 leads');
      await managers[1].start(controllers[1].signal, elector(1));
      await store.create(net('fo-a'));
      await until(async () => (await store.get('Network', 'fo-a')).status?.observedGeneration === 1, 10_000, 'leader reconciled fo-a');
      await sleep(300);
      expect(managers[1].leading).toBe(false);
      expect(reconcilers[1].calls).toBe(0);

      controllers[0].abort();
      await managers[0].stopped;
      await elections[0].resign();
      await until(() => managers[1].leading, 15_000, 'manager 1 takes over');
      await store.create(net('fo-b'));
      await until(async () => (await store.get('Network', 'fo-b')).status?.observedGeneration === 1, 10_000, 'new leader reconciled fo-b');
      expect(reconcilers[1].calls).toBeGreaterThan(0);
    } finally {
      for (const c of controllers) c.abort();
      await Promise.all(managers.map((m) => m.stopped));
      await Promise.all(elections.map((e) => e.resign().catch(() => undefined)));
      for (const c of clients) c.close();
      await store.close();
      await etcd.stop();
    }
  }, 60_000);
});
