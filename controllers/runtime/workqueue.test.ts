import { Registry } from 'prom-client';
import { backoffDelay, WorkQueue, type Outcome } from './workqueue';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` holds; fails after the deadline instead of hanging. */
async function until(check: () => boolean, deadlineMs = 5000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`condition not met within ${deadlineMs} ms`);
    await sleep(5);
  }
}

describe('backoffDelay', () => {
  it('doubles from 200 ms up to 60 s', () => {
    expect([0, 1, 2, 3, 4].map((n) => backoffDelay(n))).toEqual([200, 400, 800, 1600, 3200]);
    expect(backoffDelay(8)).toBe(51_200);
    expect(backoffDelay(9)).toBe(60_000);
    expect(backoffDelay(1000)).toBe(60_000);
  });
});

describe('WorkQueue', () => {
  const queues: WorkQueue[] = [];
  afterEach(async () => { await Promise.all(queues.splice(0).map((q) => q.shutdown({ deadlineMs: 1000, abort: true }))); });
  function queue(handler: (key: string, signal: AbortSignal) => Promise<Outcome>, extra: Partial<ConstructorParameters<typeof WorkQueue>[0]> = {}): WorkQueue {
    const q = new WorkQueue({ kind: 'Test', handler, registry: new Registry(), ...extra });
    queues.push(q);
    return q;
  }

  it('processes a key added many times before a worker is free once', async () => {
    const calls: string[] = [];
    const q = queue(async (key) => { calls.push(key); return { result: 'success' }; });
    for (let i = 0; i < 10; i++) { q.add('a'); q.add('b'); }
    expect(q.length).toBe(2);
    q.start();
    await until(() => calls.length === 2);
    await sleep(30);
    expect(calls.sort()).toEqual(['a', 'b']);
  });

  it('re-processes a key added while in flight exactly once after, never concurrently', async () => {
    let active = 0;
    let maxActive = 0;
    let calls = 0;
    let release!: () => void;
    const q = queue(async () => {
      active++; maxActive = Math.max(maxActive, active); calls++;
      if (calls === 1) await new Promise<void>((r) => { release = r; });
      active--;
      return { result: 'success' };
    }, { workers: 4 });
    q.start();
    q.add('k');
    await until(() => calls === 1);
    for (let i = 0; i < 50; i++) q.add('k');
    expect(q.length).toBe(0); // it waits in the dirty set, not in the queue, while in flight
    await sleep(20);
    expect(calls).toBe(1);
    release();
    await until(() => calls === 2);
    await sleep(30);
    expect(calls).toBe(2);
    expect(maxActive).toBe(1);
  });

  it('backs off exponentially per key and resets on success', async () => {
    const times: number[] = [];
    let fail = 4;
    const q = queue(async () => {
      times.push(Date.now());
      return fail-- > 0 ? { result: 'error', error: new Error('boom') } : { result: 'success' };
    }, { backoff: { baseMs: 40, factor: 2, maxMs: 200 } });
    q.start();
    q.add('k');
    await until(() => times.length === 5);
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    // 40, 80, 160, 200 (capped): each at least the delay, and clearly growing.
    expect(gaps[0]).toBeGreaterThanOrEqual(38);
    expect(gaps[1]).toBeGreaterThanOrEqual(78);
    expect(gaps[2]).toBeGreaterThanOrEqual(158);
    expect(gaps[3]).toBeGreaterThanOrEqual(198);
    expect(gaps[3]).toBeLessThan(400);
    expect(q.failureCount('k')).toBe(0);
  });

  it('does not retry terminal errors and schedules requeueAfter', async () => {
    const calls: Record<string, number[]> = { t: [], r: [] };
    const start = Date.now();
    const q = queue(async (key) => {
      calls[key].push(Date.now() - start);
      if (key === 't') return { result: 'terminal', error: new Error('bad spec') };
      return calls.r.length < 3 ? { result: 'requeue', afterMs: 50 } : { result: 'success' };
    });
    q.start();
    q.add('t'); q.add('r');
    await until(() => calls.r.length === 3);
    await sleep(150);
    expect(calls.t).toHaveLength(1);
    expect(calls.r).toHaveLength(3);
    expect(calls.r[2] - calls.r[1]).toBeGreaterThanOrEqual(48);
    expect(q.scheduled).toBe(0);
    expect(q.failureCount('t')).toBe(0);
  });

  it('keeps the earliest of several delayed turns', async () => {
    const calls: number[] = [];
    const start = Date.now();
    const q = queue(async () => { calls.push(Date.now() - start); return { result: 'success' }; });
    q.start();
    q.addAfter('k', 1000);
    q.addAfter('k', 40);
    q.addAfter('k', 500);
    expect(q.scheduled).toBe(1);
    await until(() => calls.length === 1);
    expect(calls[0]).toBeGreaterThanOrEqual(38);
    expect(calls[0]).toBeLessThan(400);
    expect(q.scheduled).toBe(0); // the processed turn superseded the rest
  });

  it('runs N workers in parallel for different keys', async () => {
    let active = 0;
    let maxActive = 0;
    let done = 0;
    const q = queue(async () => { active++; maxActive = Math.max(maxActive, active); await sleep(40); active--; done++; return { result: 'success' }; }, { workers: 3 });
    for (let i = 0; i < 9; i++) q.add(`k${i}`);
    q.start();
    await until(() => done === 9);
    expect(maxActive).toBe(3);
  });

  it('treats a throwing handler as an error with back-off', async () => {
    let calls = 0;
    const q = queue(async () => { calls++; throw new Error('thrown'); }, { backoff: { baseMs: 10_000 } });
    q.start();
    q.add('k');
    await until(() => calls === 1);
    await until(() => q.failureCount('k') === 1);
    expect(q.scheduled).toBe(1);
  });

  it('waits for in-flight work on shutdown, and aborts it past the deadline', async () => {
    let finished = false;
    const q1 = queue(async () => { await sleep(60); finished = true; return { result: 'success' }; });
    q1.start(); q1.add('k');
    await until(() => q1.inFlight === 1);
    q1.addAfter('later', 10);
    expect(await q1.shutdown({ deadlineMs: 2000 })).toBe(true);
    expect(finished).toBe(true);
    expect(q1.scheduled).toBe(0);
    q1.add('ignored');
    expect(q1.length).toBe(0);

    let aborted = false;
    const q2 = queue((_key, signal) => new Promise<Outcome>((resolve) => {
      signal.addEventListener('abort', () => { aborted = true; resolve({ result: 'error', error: signal.reason }); });
    }));
    q2.start(); q2.add('stuck');
    await until(() => q2.inFlight === 1);
    const t = Date.now();
    expect(await q2.shutdown({ deadlineMs: 80 })).toBe(false);
    expect(Date.now() - t).toBeGreaterThanOrEqual(75);
    expect(aborted).toBe(true);
  });

  it('reports depth and reconcile duration to the registry it is given', async () => {
    const registry = new Registry();
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const q = queue(async (key) => { await gate; return key === 'bad' ? { result: 'error', error: new Error('x') } : { result: 'success' }; }, { registry, workers: 1, kind: 'VirtualMachine', backoff: { baseMs: 60_000 } });
    q.add('a'); q.add('b'); q.add('bad');
    const depth = async () => (await registry.getSingleMetric('n0stack_controller_queue_depth')!.get()).values.find((v) => v.labels.kind === 'VirtualMachine')?.value;
    expect(await depth()).toBe(3);
    q.start();
    await until(() => q.inFlight === 1);
    expect(await depth()).toBe(2);
    release();
    await until(() => q.length === 0 && q.inFlight === 0 && q.failureCount('bad') === 1);
    expect(await depth()).toBe(0);
    const hist = await registry.getSingleMetric('n0stack_controller_reconcile_duration_seconds')!.get();
    const count = (result: string) => hist.values.find((v) => (v as { metricName?: string }).metricName?.endsWith('_count') && v.labels.kind === 'VirtualMachine' && v.labels.result === result)?.value;
    expect(count('success')).toBe(2);
    expect(count('error')).toBe(1);
    // A second queue on the same registry shares the metrics instead of failing to register.
    expect(() => new WorkQueue({ kind: 'Node', handler: async () => ({ result: 'success' }), registry })).not.toThrow();
  });
});
