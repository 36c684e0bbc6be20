import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataDirInUseError, DirLock, LOCK_FILE, ownerAlive, processStartTime, startTimeOfStat } from './dirlock';

describe('DirLock', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-dirlock-unit-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const writeOwner = (owner: object): void => fs.writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify(owner));
  const ownerPid = (): number => JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')).pid;

  it('refuses a second lock in the same process, naming it, and leaves no files behind after release', () => {
    const lock = DirLock.acquire(dir);
    expect(() => DirLock.acquire(dir)).toThrow(new DataDirInUseError(dir, process.pid, ' (this process: close the other store first)'));
    lock.release();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('takes over a lock whose pid no longer exists', () => {
    writeOwner({ pid: 2 ** 22 + 12345, start: '1', host: os.hostname() }); // above Linux's pid_max
    const lock = DirLock.acquire(dir);
    expect(ownerPid()).toBe(process.pid);
    lock.release();
  });

  it('takes over a lock whose pid was reused by a process that started at another time', () => {
    writeOwner({ pid: process.pid, start: '1', host: os.hostname() });
    expect(ownerAlive({ pid: process.pid, start: '1', host: os.hostname() })).toBe(false);
    DirLock.acquire(dir).release();
  });

  it('takes over a damaged lock file, and treats another host\'s lock as held', () => {
    fs.writeFileSync(path.join(dir, LOCK_FILE), 'not json');
    DirLock.acquire(dir).release();
    writeOwner({ pid: 1, start: null, host: 'elsewhere.example' });
    expect(() => DirLock.acquire(dir)).toThrow('data dir ' + dir + ' is in use by pid 1 on host elsewhere.example; use etcd for several processes');
  });

  it('a released lock that was taken over meanwhile is not removed', () => {
    const lock = DirLock.acquire(dir);
    writeOwner({ pid: 1, start: null, host: os.hostname() });
    lock.release();
    expect(ownerPid()).toBe(1);
  });

  it('reads a process start time even when its name has spaces and parentheses', () => {
    const stat = '4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1234 56 18446744073709551615';
    expect(startTimeOfStat(stat)).toBe('987654');
    expect(processStartTime(process.pid)).toMatch(/^\d+$/);
    expect(processStartTime(2 ** 22 + 12345)).toBeNull();
  });
});
