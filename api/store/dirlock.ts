// An exclusive lock on the embedded store's data directory. LMDB itself lets several processes
// open one environment, but our revisions, watches and durable marks live in the process that
// writes, so a second process would silently miss the first one's events.
//
// The lock is a file holding its owner's pid, process start time and host. It appears atomically
// and complete (written aside, then link(2)ed into place, which fails if it exists), so a reader
// never sees a half-written owner. A lock whose owner is dead (or whose pid now belongs to a
// process that started at another time) is stale and taken over; two processes taking over the
// same stale lock are serialized by a second O_EXCL file, so only one of them wins.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FailedPreconditionError } from '../errors';

export const LOCK_FILE = 'n0stack.lock';
/** A takeover guard older than this was left by a process that died in the middle of one. */
const GUARD_STALE_MS = 10_000;

export class DataDirInUseError extends FailedPreconditionError {
  constructor(readonly dataDir: string, readonly pid: number, detail = '') {
    super(`data dir ${dataDir} is in use by pid ${pid}${detail}; use etcd for several processes`, 'dataDir');
  }
}

interface Owner { pid: number; start: string | null; host: string }

/** The process's start time in clock ticks since boot (/proc/PID/stat field 22), or null if unknown. */
export function processStartTime(pid: number): string | null {
  try { return startTimeOfStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return null; }
}

export function startTimeOfStat(stat: string): string | null {
  // The command name (field 2) may contain spaces and parentheses; count from the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
}

function parseOwner(text: string): Owner | undefined {
  try {
    const o = JSON.parse(text) as Partial<Owner>;
    if (Number.isInteger(o.pid) && (o.pid as number) > 0 && typeof o.host === 'string') return { pid: o.pid as number, start: typeof o.start === 'string' ? o.start : null, host: o.host };
  } catch { /* not ours, or damaged: treated as stale below */ }
  return undefined;
}

/** Whether the lock's owner may still be running. */
export function ownerAlive(owner: Owner): boolean {
  // On a shared filesystem we cannot see another host's processes: assume it is running.
  if (owner.host !== os.hostname()) return true;
  try { process.kill(owner.pid, 0); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: it exists but belongs to someone else.
  }
  const start = processStartTime(owner.pid);
  return owner.start === null || start === null || start === owner.start;
}

const readIfExists = (file: string): string | undefined => {
  try { return fs.readFileSync(file, 'utf8'); } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
};

const sleepSync = (ms: number): void => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms); };

export class DirLock {
  private released = false;
  private constructor(readonly file: string, private readonly record: string) {}

  /** Takes the lock on `dataDir` (which must exist) or throws DataDirInUseError naming the owner. */
  static acquire(dataDir: string): DirLock {
    const file = path.join(dataDir, LOCK_FILE);
    const record = `${JSON.stringify({ pid: process.pid, start: processStartTime(process.pid), host: os.hostname() })}\n`;
    const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
    fs.writeFileSync(aside, record, { mode: 0o600, flag: 'wx' });
    try {
      for (let attempt = 0; attempt < 200; attempt++) {
        try {
          fs.linkSync(aside, file);
          return new DirLock(file, record);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const current = readIfExists(file);
        if (current === undefined) continue; // released in between: try again
        const owner = parseOwner(current);
        if (owner && ownerAlive(owner)) {
          const detail = owner.pid === process.pid ? ' (this process: close the other store first)' : owner.host !== os.hostname() ? ` on host ${owner.host}` : '';
          throw new DataDirInUseError(dataDir, owner.pid, detail);
        }
        DirLock.removeStale(file, current, record);
      }
      throw new Error(`data dir ${dataDir}: could not take ${LOCK_FILE}, it kept changing hands`);
    } finally {
      fs.rmSync(aside, { force: true });
    }
  }

  /** Removes `file` if it still holds `stale`, with at most one process doing so at a time. */
  private static removeStale(file: string, stale: string, record: string): void {
    const guard = `${file}.takeover`;
    try {
      fs.writeFileSync(guard, record, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try { if (Date.now() - fs.statSync(guard).mtimeMs > GUARD_STALE_MS) fs.rmSync(guard, { force: true }); } catch { /* gone already */ }
      sleepSync(10 + Math.random() * 20);
      return;
    }
    try {
      // Someone may have taken over and locked it between our read and our guard.
      if (readIfExists(file) === stale) fs.rmSync(file, { force: true });
    } finally {
      fs.rmSync(guard, { force: true });
    }
  }

  /** Gives the lock up; a lock file that is no longer ours (taken over as stale) is left alone. */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (readIfExists(this.file) === this.record) fs.rmSync(this.file, { force: true });
  }
}
