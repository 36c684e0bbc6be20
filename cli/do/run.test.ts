import { parseDagYaml, validateDag } from './dag';
import { runDag, type TaskStatus } from './run';
import { PlainRenderer, RateMeter, formatBytes, formatDuration, formatProgress, liveLine, plainLine } from './render';

const dagOf = (yaml: string) => validateDag(parseDagYaml(yaml)).dag;
const t = (name: string, deps: string[] = [], ignore = false) =>
  `${name}:\n  type: Network\n  action: GetNetwork\n  args: {name: ${name.toLowerCase()}}\n  depends_on: [${deps.join(', ')}]\n  ignore_error: ${ignore}\n`;

/** A caller whose calls finish when the test says so, recording the order of starts. */
function controllable() {
  const started: string[] = [];
  const pending = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const call = (task: { name: string }) => new Promise((resolve, reject) => { started.push(task.name); pending.set(task.name, { resolve, reject }); });
  const tick = () => new Promise((r) => setImmediate(r));
  return { started, call, tick, finish: (n: string) => pending.get(n)!.resolve({ name: n }), fail: (n: string, m: string) => pending.get(n)!.reject(new Error(m)) };
}

describe('runDag', () => {
  it('starts tasks as soon as their own dependencies are done, not level by level', async () => {
    const c = controllable();
    const run = runDag(dagOf(t('A') + t('B') + t('C', ['A']) + t('D', ['B'])), c.call);
    await c.tick();
    expect(c.started).toEqual(['A', 'B']);
    c.finish('A');
    await c.tick();
    expect(c.started).toEqual(['A', 'B', 'C']); // C runs while B is still running
    c.finish('C'); c.finish('B');
    await c.tick();
    c.finish('D');
    const { ok, statuses } = await run;
    expect(ok).toBe(true);
    expect([...statuses.values()].map((s) => s.state)).toEqual(['done', 'done', 'done', 'done']);
    expect(statuses.get('D')!.result).toEqual({ name: 'D' });
  });

  it('skips everything downstream of a failure, but not past an ignored failure', async () => {
    const c = controllable();
    const run = runDag(dagOf(t('A') + t('B', [], true) + t('C', ['A']) + t('D', ['C']) + t('E', ['B'])), c.call);
    await c.tick();
    c.fail('A', 'NOT_FOUND: Network "a" not found');
    c.fail('B', 'UNAVAILABLE: down');
    await c.tick();
    c.finish('E');
    const { ok, statuses } = await run;
    expect(ok).toBe(false);
    expect(Object.fromEntries([...statuses].map(([n, s]) => [n, [s.state, s.error ?? s.reason]]))).toEqual({
      A: ['failed', 'NOT_FOUND: Network "a" not found'],
      B: ['ignored', 'UNAVAILABLE: down'],
      C: ['skipped', 'dependency "A" failed'],
      D: ['skipped', 'dependency "A" failed'],
      E: ['done', undefined],
    });
    expect(c.started).toEqual(['A', 'B', 'E']);
  });

  it('is ok when only ignored tasks fail, and honours the concurrency limit', async () => {
    const c = controllable();
    const run = runDag(dagOf(t('A', [], true) + t('B') + t('C')), c.call, { concurrency: 1 });
    await c.tick();
    expect(c.started).toEqual(['A']);
    c.fail('A', 'x');
    await c.tick();
    expect(c.started).toEqual(['A', 'B']);
    c.finish('B');
    await c.tick();
    c.finish('C');
    expect((await run).ok).toBe(true);
  });

  it('cancels: pending tasks are skipped and the running call sees the abort', async () => {
    const abort = new AbortController();
    let seen: AbortSignal | undefined;
    const run = runDag(dagOf(t('A') + t('B', ['A'])), (_task, ctx) => new Promise((_r, reject) => {
      seen = ctx.signal;
      ctx.signal.addEventListener('abort', () => reject(new Error('CANCELLED: by user')));
    }), { signal: abort.signal });
    await new Promise((r) => setImmediate(r));
    abort.abort();
    const { ok, statuses } = await run;
    expect(seen?.aborted).toBe(true);
    expect(ok).toBe(false);
    expect(statuses.get('A')!.state).toBe('failed');
    expect(statuses.get('B')!.state).toBe('skipped');
  });

  it('reports progress and times through onChange, and a synchronous throw fails the task', async () => {
    let clock = 1000;
    const seen: string[] = [];
    const { statuses } = await runDag(dagOf(t('A') + t('B')), (task, ctx) => {
      if (task.name === 'B') throw new Error('bad');
      ctx.progress({ done: 5, total: 10 });
      clock += 400;
      return Promise.resolve({});
    }, { now: () => clock, onChange: (s) => seen.push(`${s.name}:${s.state}${s.progress ? `:${s.progress.done}` : ''}`) });
    expect(seen).toEqual(expect.arrayContaining(['A:running', 'A:running:5', 'A:done:5', 'B:failed']));
    expect(plainLine(statuses.get('A')!, clock)).toBe('[ok] A 0.4s');
    expect(plainLine(statuses.get('B')!, clock)).toBe('[failed] B: bad');
  });
});

describe('rendering', () => {
  const status = (over: Partial<TaskStatus>): TaskStatus => ({
    name: 'FetchISO', state: 'running', startedAt: 0,
    task: { name: 'FetchISO', type: 'BlockStorage', action: 'FetchBlockStorage', args: {}, depends_on: [], ignore_error: false }, ...over,
  });

  it('formats durations, sizes, progress with rate and ETA', () => {
    expect(formatDuration(412)).toBe('0.4s');
    expect(formatDuration(125_000)).toBe('2m05s');
    expect(formatDuration(3_720_000)).toBe('1h02m');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(10737418240)).toBe('10.0 GiB');
    expect(formatProgress({ done: 256 * 2 ** 20, total: 2 ** 30, rate: 16 * 2 ** 20 })).toBe('256 MiB / 1.00 GiB 25% 16.0 MiB/s ETA 48.0s');
    expect(formatProgress({ done: 2 ** 20, total: 0 })).toBe('1.00 MiB');
    expect(formatProgress({ done: 2 ** 20, total: 2 ** 21, phase: 'download' })).toBe('download 1.00 MiB / 2.00 MiB 50%');
  });

  it('smooths the rate from samples', () => {
    const meter = new RateMeter();
    expect(meter.sample(0, 0)).toBeUndefined();
    expect(meter.sample(1000, 1000)).toBe(1000);
    expect(meter.sample(2000, 4000)).toBeCloseTo(0.7 * 1000 + 0.3 * 3000);
  });

  it('plain lines for every state', () => {
    expect(plainLine(status({ state: 'ignored', error: 'NOT_FOUND: x', endedAt: 5 }), 9)).toBe('[ignored] FetchISO: NOT_FOUND: x (ignore_error)');
    expect(plainLine(status({ state: 'skipped', reason: 'dependency "A" failed', startedAt: undefined }), 9)).toBe('[skipped] FetchISO: dependency "A" failed');
    expect(plainLine(status({ progress: { done: 1024, total: 2048 } }), 9)).toBe('[running] FetchISO 1.00 KiB / 2.00 KiB 50%');
  });

  it('a running task\'s live line shows what the object it waits on says, unless bytes are moving', () => {
    const line = liveLine(status({ message: 'StartFailed: starting again in 2 s: QEMU exited' }), 2000, 200, false);
    expect(line).toMatch(/^\u25b6 FetchISO \(BlockStorage.FetchBlockStorage\) .* StartFailed: starting again in 2 s: QEMU exited$/);
    expect(liveLine(status({ message: 'x', progress: { done: 1024, total: 2048 } }), 2000, 200, false)).toMatch(/1.00 KiB \/ 2.00 KiB 50%/);
  });

  it('live lines never exceed the terminal width', () => {
    const line = liveLine(status({ state: 'failed', error: 'x'.repeat(200), endedAt: 1500 }), 2000, 60, false);
    expect(line).toHaveLength(60);
    expect(line.startsWith('\u2716 FetchISO (BlockStorage.FetchBlockStorage) 1.5s xxx')).toBe(true);
  });

  it('the plain renderer prints starts and ends, the first progress, phase changes, 10-point moves after 1 s, else every 5 s', () => {
    let out = '';
    let now = 0;
    const r = new PlainRenderer({ write: (s: string) => { out += s; return true; } } as NodeJS.WritableStream, () => now);
    const s = status({});
    r.update(s);
    r.update(s);
    s.progress = { done: 10, total: 1000, phase: 'download' }; now = 1000; r.update(s);
    s.progress = { done: 300, total: 1000, phase: 'download' }; now = 1500; r.update(s); // moved, but within 1 s
    s.progress = { done: 350, total: 1000, phase: 'download' }; now = 2100; r.update(s); // moved 34 points after 1.1 s
    s.progress = { done: 360, total: 1000, phase: 'download' }; now = 4000; r.update(s); // 1 point: waits for 5 s
    s.progress = { done: 370, total: 1000, phase: 'download' }; now = 7100; r.update(s);
    s.progress = { done: 0, total: 1000, phase: 'convert' }; now = 7200; r.update(s);
    s.progress = { done: 1000, total: 1000, phase: 'convert' }; now = 7300; r.update(s);
    s.state = 'done'; s.endedAt = 7300; r.update(s);
    expect(out.split('\n')).toEqual([
      '[running] FetchISO',
      '[running] FetchISO download 10 B / 1000 B 1%',
      '[running] FetchISO download 350 B / 1000 B 35%',
      '[running] FetchISO download 370 B / 1000 B 37%',
      '[running] FetchISO convert 0 B / 1000 B 0%',
      '[ok] FetchISO 7.3s',
      '',
    ]);
  });
});

describe('runDag with failFast (the original n0cli\'s behaviour)', () => {
  it('starts no new task after the first failure, lets running ones finish, and skips the rest', async () => {
    const c = controllable();
    const run = runDag(dagOf(t('A') + t('B') + t('C') + t('D', ['B'])), c.call, { concurrency: 2, failFast: true });
    await c.tick();
    expect(c.started).toEqual(['A', 'B']);
    c.fail('A', 'NOT_FOUND: no');
    await c.tick();
    expect(c.started).toEqual(['A', 'B']); // without failFast, C would start here
    c.finish('B');
    const { ok, statuses } = await run;
    expect(ok).toBe(false);
    expect(Object.fromEntries([...statuses].map(([n, s]) => [n, [s.state, s.error ?? s.reason]]))).toEqual({
      A: ['failed', 'NOT_FOUND: no'],
      B: ['done', undefined],
      C: ['skipped', '--fail-fast: task "A" failed'],
      D: ['skipped', '--fail-fast: task "A" failed'],
    });
  });

  it('an ignored failure does not stop the run', async () => {
    const c = controllable();
    const run = runDag(dagOf(t('A', [], true) + t('B')), c.call, { concurrency: 1, failFast: true });
    await c.tick();
    c.fail('A', 'UNAVAILABLE: down');
    await c.tick();
    expect(c.started).toEqual(['A', 'B']);
    c.finish('B');
    expect((await run).ok).toBe(true);
  });

  it('without failFast, independent tasks still run after a failure (the default)', async () => {
    const c = controllable();
    const run = runDag(dagOf(t('A') + t('B')), c.call, { concurrency: 1 });
    await c.tick();
    c.fail('A', 'NOT_FOUND: no');
    await c.tick();
    expect(c.started).toEqual(['A', 'B']);
    c.finish('B');
    expect((await run).statuses.get('B')!.state).toBe('done');
  });
});
