// File helpers shared by the drivers that produce files (disks, seed ISOs): every result is made
// under a temporary name beside its target and published in one step, so a crash at any line
// leaves either nothing or a complete file under the final name, never a half-made one.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../../api/errors';

/** Validates a file path handed to a driver: absolute, normalized, no control characters. */
export function requireAbsolutePath(p: unknown, field = 'path'): string {
  if (typeof p !== 'string' || p.length === 0) throw new InvalidArgumentError(`${field} must be a non-empty string`, field);
  // Control characters would survive into qemu's image headers and into logs.
  if (/[\x00-\x1f\x7f]/.test(p)) throw new InvalidArgumentError(`${field} ${JSON.stringify(p)} contains control characters`, field);
  if (!path.isAbsolute(p)) throw new InvalidArgumentError(`${field} ${JSON.stringify(p)} must be an absolute path`, field);
  if (path.normalize(p) !== p || p.endsWith('/')) throw new InvalidArgumentError(`${field} ${JSON.stringify(p)} must be a normalized file path`, field);
  return p;
}

/** A fresh name beside `target` (same directory, so same filesystem: link/rename stay atomic). */
export function tempPathBeside(target: string, tag = 'tmp'): string {
  return `${target}.${tag}-${randomBytes(6).toString('hex')}`;
}

/** Is `name` one of our temporary names for `targetBase` (for sweeping leftovers after a crash)? */
export function isTempNameOf(name: string, targetBase: string): boolean {
  if (!name.startsWith(`${targetBase}.`)) return false;
  return /^[a-z]+-[0-9a-f]{12}$/.test(name.slice(targetBase.length + 1));
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

export async function removeQuietly(p: string): Promise<void> {
  await fs.rm(p, { force: true, recursive: true }).catch(() => undefined);
}

/** Flushes a file's data to stable storage, so the name published next never points at holes. */
export async function fsyncFile(p: string): Promise<void> {
  const handle = await fs.open(p, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes a rename/link in `dir` durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    // Some filesystems refuse fsync on directories; the data itself is already synced.
    if (!['EINVAL', 'EISDIR', 'ENOTSUP'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
  } finally {
    await handle.close();
  }
}

export class TargetExistsError extends Error {
  constructor(readonly target: string) {
    super(`${target} already exists`);
    this.name = 'TargetExistsError';
  }
}

/**
 * Publishes `tmp` as `target` unless `target` exists (then throws TargetExistsError and leaves
 * both alone). link(2) fails atomically on an existing name where rename(2) would replace it, so
 * two racing creators cannot overwrite each other's result.
 */
export async function publishNoClobber(tmp: string, target: string): Promise<void> {
  await fsyncFile(tmp);
  try {
    await fs.link(tmp, target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new TargetExistsError(target);
    // Filesystems without hard links: fall back to check-then-rename (a small race window).
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
    if (await exists(target)) throw new TargetExistsError(target);
    await fs.rename(tmp, target);
    await fsyncDir(path.dirname(target));
    return;
  }
  await fs.unlink(tmp);
  await fsyncDir(path.dirname(target));
}

/** Publishes `tmp` as `target`, replacing an older version atomically. */
export async function publishReplace(tmp: string, target: string): Promise<void> {
  await fsyncFile(tmp);
  await fs.rename(tmp, target);
  await fsyncDir(path.dirname(target));
}

/**
 * Removes temporary files (`<name>.<tag>-<12 hex>`) in `dir` older than `olderThanMs`: what a crash
 * mid-operation left behind. Meant for agent start-up; the age guard spares files of operations
 * still running. Returns the removed names.
 */
export async function sweepTempFiles(dir: string, olderThanMs: number, now = Date.now()): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = /^(.+)\.[a-z]+-[0-9a-f]{12}$/.exec(name);
    if (!m || !isTempNameOf(name, m[1])) continue;
    const full = path.join(dir, name);
    const stat = await fs.lstat(full).catch(() => undefined);
    if (!stat?.isFile() || now - stat.mtimeMs < olderThanMs) continue;
    await fs.rm(full, { force: true });
    removed.push(name);
  }
  return removed;
}
