import { Registry } from 'prom-client';
import type { Node } from '../api/types';
import { getCondition } from '../api/conditions';
import { NodeReconciler, readiness } from './node';
import { renewLease } from '../api/lease';
import { Manager } from './runtime/manager';
import { MemoryStore } from './runtime/testing/memory-store';
import type { ReconcileContext } from './runtime/types';

const GiB = 2 ** 30;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(check: () => Promise<boolean> | boolean, deadlineMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what} not met within ${deadlineMs} ms`);
    await sleep(10);
  }
}
const iso = (d: Date) => d.toISOString();

const node = (name: string): Node => ({
  apiVersion: 'n0stack.io/v1alpha1', kind: 'Node', metadata: { name },
  spec: { cpu_milli_cores: 4000, memory_bytes: 8 * GiB, storage_bytes: 100 * GiB, address: '10.0.0.1' },
});

async function heartbeat(store: MemoryStore, name: string, at: Date, extra: Partial<NonNullable<Node['status']>> = {}): Promise<Node> {
  const cur = await store.get('Node', name);
  return store.update({ ...cur, status: { ...cur.status, last_heartbeat_time: iso(at), ...extra } }, { subresource: 'status' });
}

describe('readiness', () => {
  const now = new Date('2024-01-01T00:01:00Z');
  it('is Ready within the timeout and says when to look again', () => {
    expect(readiness('2024-01-01T00:00:50Z', now, 20_000)).toEqual({ ready: true, reason: 'HeartbeatFresh', message: 'the node agent reports heartbeats (timeout 20s)', recheckAfterMs: 10_050 });
  });
  it('is NotReady past the timeout, or without a heartbeat', () => {
    expect(readiness('2024-01-01T00:00:30Z', now, 20_000)).toMatchObject({ ready: false, reason: 'HeartbeatTimeout', message: 'no agent heartbeat since 2024-01-01T00:00:30Z (timeout 20s)' });
    expect(readiness(undefined, now, 20_000)).toMatchObject({ ready: false, reason: 'NoHeartbeat' });
    expect(readiness('yesterday', now, 20_000)).toMatchObject({ ready: false, reason: 'NoHeartbeat', message: expect.stringContaining('not a timestamp') });
  });
  it('caps trust in a heartbeat from the future at one timeout', () => {
    expect(readiness('2024-01-01T01:00:00Z', now, 20_000).recheckAfterMs).toBe(20_050);
  });
});

describe('NodeReconciler', () => {
  let store: MemoryStore;
  beforeEach(() => { store = new MemoryStore(); });
  afterEach(() => store.close());
  const ctx = (): ReconcileContext => ({ store, cache: { get: () => undefined, list: () => [], byIndex: () => [] }, signal: new AbortController().signal, enqueue: () => undefined });

  it('reads nothing from the store when the cached node already says what it would write', async () => {
    const clock = new Date('2024-01-01T00:01:00Z');
    const r = new NodeReconciler({ now: () => clock });
    await store.create(node('vm-host1'));
    await heartbeat(store, 'vm-host1', new Date('2024-01-01T00:00:55Z'));
    await r.reconcile('vm-host1', ctx());
    const settled = await store.get('Node', 'vm-host1');
    let gets = 0;
    const counting = new Proxy(store, { get: (t, p, rcv) => (p === 'get' ? (...a: [never, string]) => { gets++; return t.get(...a); } : Reflect.get(t, p, rcv)) });
    const cache = (n: typeof settled) => ({ get: () => n as never, list: () => [], byIndex: () => [] });
    expect(await r.reconcile('vm-host1', { ...ctx(), store: counting, cache: cache(settled) })).toEqual({ requeueAfterMs: 15_050 });
    expect(gets).toBe(0);
    // A cached copy that lags (a readiness it has not seen published) goes through the store.
    const stale = structuredClone(settled);
    stale.status!.state = 'NotReady';
    await r.reconcile('vm-host1', { ...ctx(), store: counting, cache: cache(stale) });
    expect(gets).toBe(1);
    expect((await store.get('Node', 'vm-host1')).metadata.resourceVersion).toBe(settled.metadata.resourceVersion);
  });

  it('writes Ready and the condition, never allocatable (rendered on read); writes nothing when nothing changed', async () => {
    let clock = new Date('2024-01-01T00:01:00Z');
    const r = new NodeReconciler({ now: () => clock });
    await store.create(node('vm-host1'));
    await heartbeat(store, 'vm-host1', new Date('2024-01-01T00:00:55Z'));
    expect(await r.reconcile('vm-host1', ctx())).toEqual({ requeueAfterMs: 15_050 });
    const n1 = await store.get('Node', 'vm-host1');
    expect(n1.status).toMatchObject({ state: 'Ready', observedGeneration: 1 });
    expect(n1.status?.allocatable).toBeUndefined();
    expect(getCondition(n1.status?.conditions, 'Ready')).toMatchObject({ status: 'True', reason: 'HeartbeatFresh', lastTransitionTime: '2024-01-01T00:01:00Z', observedGeneration: 1 });

    clock = new Date('2024-01-01T00:01:05Z');
    await r.reconcile('vm-host1', ctx());
    expect((await store.get('Node', 'vm-host1')).metadata.resourceVersion).toBe(n1.metadata.resourceVersion);

    clock = new Date('2024-01-01T00:01:30Z');
    expect(await r.reconcile('vm-host1', ctx())).toEqual({});
    const n2 = await store.get('Node', 'vm-host1');
    expect(n2.status?.state).toBe('NotReady');
    expect(getCondition(n2.status?.conditions, 'Ready')).toMatchObject({ status: 'False', reason: 'HeartbeatTimeout', lastTransitionTime: '2024-01-01T00:01:30Z' });
  });

  it('treats a node that never reported as NotReady and a missing node as done', async () => {
    const r = new NodeReconciler();
    await store.create(node('fresh'));
    expect(await r.reconcile('fresh', ctx())).toEqual({});
    expect((await store.get('Node', 'fresh')).status).toMatchObject({ state: 'NotReady', conditions: [expect.objectContaining({ reason: 'NoHeartbeat' })] });
    expect(await r.reconcile('nonexistent', ctx())).toEqual({});
  });

  /** A manager running the Node reconciler (400 ms timeout) over vm-host1 while `run` runs. */
  async function underManager(run: () => Promise<void>): Promise<void> {
    const controller = new AbortController();
    const manager = new Manager({ store, registry: new Registry(), kinds: ['Node', 'NodeLease', 'VirtualMachine', 'BlockStorage', 'Reservation'] });
    manager.register(new NodeReconciler({ heartbeatTimeoutMs: 400 }));
    try {
      await store.create(node('vm-host1'));
      await manager.start(controller.signal);
      await run();
    } finally {
      controller.abort();
      await manager.stopped;
    }
  }

  it('under the manager: Ready on heartbeat, NotReady after the timeout without any write, Ready again', () => underManager(async () => {
    const state = async () => (await store.get('Node', 'vm-host1')).status?.state;
    await until(async () => (await state()) === 'NotReady', 3000, 'NotReady before any heartbeat');
    await heartbeat(store, 'vm-host1', new Date());
    await until(async () => (await state()) === 'Ready', 3000, 'Ready after a heartbeat');
    const readyAt = Date.now();
    await until(async () => (await state()) === 'NotReady', 3000, 'NotReady after the timeout');
    const took = Date.now() - readyAt;
    expect(took).toBeGreaterThanOrEqual(300);
    expect(took).toBeLessThan(1500);
    await heartbeat(store, 'vm-host1', new Date());
    await until(async () => (await state()) === 'Ready', 3000, 'Ready again');
  }));

  it('under the manager: lease renewals keep a node Ready without writing the Node; NotReady within the same timeout when they stop', () => underManager(async () => {
    const current = () => store.get('Node', 'vm-host1');
    await until(async () => (await current()).status?.state === 'NotReady', 3000, 'NotReady before any lease');
    await renewLease(store, 'vm-host1');
    await until(async () => (await current()).status?.state === 'Ready', 3000, 'Ready after the first renewal');
    const ready = await current();
    // Ten renewals over 1 s, past two timeouts: Ready throughout, and the Node is never written.
    for (let i = 0; i < 10; i++) {
      await sleep(100);
      await renewLease(store, 'vm-host1');
      expect((await current()).status?.state).toBe('Ready');
    }
    expect((await current()).metadata.resourceVersion).toBe(ready.metadata.resourceVersion);
    const lastRenewal = Date.now();
    await until(async () => (await current()).status?.state === 'NotReady', 3000, 'NotReady after renewals stop');
    const took = Date.now() - lastRenewal;
    expect(took).toBeGreaterThanOrEqual(300);
    expect(took).toBeLessThan(1500);
    expect(getCondition((await current()).status?.conditions, 'Ready')).toMatchObject({ status: 'False', reason: 'HeartbeatTimeout' });
  }));
});
