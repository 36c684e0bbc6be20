// The embedded store's directory lock between real processes: a second process is refused with
// the owner's pid, a kill -9'd owner's lock is taken over, and racing openers get one winner.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataDirInUseError, LOCK_FILE } from './dirlock';
import { openStore } from './index';

const HOLDER = path.join(__dirname, 'testing', 'hold-store.js');
jest.setTimeout(60_000);

interface Holder { child: ChildProcess; ready: Promise<void>; exited: Promise<{ code: number | null; stderr: string }> }

function hold(dir: string): Holder {
  const child = spawn(process.execPath, [HOLDER, dir], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => child.once('close', (code) => resolve({ code, stderr })));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => { if (String(d).includes('ready')) resolve(); });
    void exited.then(({ code, stderr: e }) => reject(new Error(`holder exited (${code}) before it was ready: ${e}`)));
  });
  ready.catch(() => undefined);
  return { child, ready, exited };
}

describe('embedded store: one data directory, one process', () => {
  let dir: string;
  const children: ChildProcess[] = [];
  const track = (h: Holder): Holder => { children.push(h.child); return h; };

  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-dirlock-')); });
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a second process with the owner\'s pid, and frees the directory when the owner closes', async () => {
    const first = track(hold(dir));
    await first.ready;
    const second = track(hold(dir));
    const refused = await second.exited;
    expect(refused).toEqual({ code: 3, stderr: `data dir ${dir} is in use by pid ${first.child.pid}; use etcd for several processes\n` });
    // The same from this process, as a typed error.
    await expect(openStore({ backend: 'embedded', dataDir: dir })).rejects.toEqual(new DataDirInUseError(dir, first.child.pid!));

    first.child.stdin!.end(); // a clean close releases the lock
    expect((await first.exited).code).toBe(0);
    expect(fs.existsSync(path.join(dir, LOCK_FILE))).toBe(false);
    const store = await openStore({ backend: 'embedded', dataDir: dir });
    await store.close();
  });

  it('takes over the lock of an owner killed with SIGKILL', async () => {
    const first = track(hold(dir));
    await first.ready;
    first.child.kill('SIGKILL');
    await first.exited;
    // The dead owner's lock file is still there: it is stale, not in use.
    expect(JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')).pid).toBe(first.child.pid);
    const next = track(hold(dir));
    await next.ready;
    expect(JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')).pid).toBe(next.child.pid);
    next.child.stdin!.end();
    expect((await next.exited).code).toBe(0);
  });

  it('of several processes racing for a stale lock, exactly one wins', async () => {
    const dead = track(hold(dir));
    await dead.ready;
    dead.child.kill('SIGKILL');
    await dead.exited;
    const racers = Array.from({ length: 4 }, () => track(hold(dir)));
    const outcomes = await Promise.all(racers.map((r) => Promise.race([
      r.ready.then(() => 'ready' as const),
      r.exited.then(({ code, stderr }) => ({ code, stderr })),
    ])));
    const winners = outcomes.filter((o) => o === 'ready');
    expect(winners).toHaveLength(1);
    const winnerPid = racers[outcomes.indexOf('ready')].child.pid;
    for (const o of outcomes.filter((x) => x !== 'ready')) {
      expect(o).toEqual({ code: 3, stderr: `data dir ${dir} is in use by pid ${winnerPid}; use etcd for several processes\n` });
    }
  });
});
