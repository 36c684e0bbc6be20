// qemu-img: the only code that creates, copies, grows and inspects disk files. Every result is
// built under a temporary name and published with link(2), so a crash never leaves a half-made
// disk under its final name and an existing different disk is never overwritten.
import { promises as fs } from 'node:fs';
import {
  AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError,
} from '../../api/errors';
import { logger } from '../../api/log';
import { CommandError, run } from '../exec';
import {
  exists, publishNoClobber, removeQuietly, requireAbsolutePath, tempPathBeside, TargetExistsError,
} from './fsutil';
import type { DiskDriver, DiskInfo } from './types';

const log = logger('qemu-img');

/** qemu-img rounds sizes up to whole 512-byte sectors; we do it first so comparisons hold. */
export const SECTOR = 512;

/** What `qemu-img info` told beyond DiskInfo, needed to judge untrusted images. */
export interface DiskProbe extends DiskInfo {
  /** qcow2 external data file: an image that names one reads host files outside itself. */
  dataFile?: string;
  /** Image was not closed cleanly (qcow2 lazy refcounts). */
  dirty: boolean;
  /** Encrypted (LUKS or legacy AES): unreadable without a secret we do not have. */
  encrypted: boolean;
}

/** Parses `qemu-img info --output=json` (one image, not --backing-chain). */
export function parseQemuImgInfo(json: string, path: string): DiskProbe {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(json) as Record<string, unknown>;
  } catch {
    throw new Error(`qemu-img info ${path} printed no JSON: ${json.slice(0, 200)}`);
  }
  const format = raw['format'];
  const virtualSize = raw['virtual-size'];
  if (typeof format !== 'string' || typeof virtualSize !== 'number') {
    throw new Error(`qemu-img info ${path}: missing format or virtual-size`);
  }
  const backing = raw['full-backing-filename'] ?? raw['backing-filename'];
  const specific = raw['format-specific'] as { data?: Record<string, unknown> } | undefined;
  const dataFile = specific?.data?.['data-file'];
  return {
    path,
    format,
    virtualSize,
    // A file on a filesystem that cannot tell allocation has no actual-size.
    actualSize: typeof raw['actual-size'] === 'number' ? raw['actual-size'] : 0,
    ...(typeof backing === 'string' ? { backingFile: backing } : {}),
    ...(typeof dataFile === 'string' ? { dataFile } : {}),
    dirty: raw['dirty-flag'] === true,
    encrypted: raw['encrypted'] === true,
  };
}

/** Validates a virtual size and rounds it up to qemu's sector size. */
export function alignSize(bytes: unknown, field = 'limit_bytes'): number {
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new InvalidArgumentError(`${field} must be a positive integer number of bytes, got ${String(bytes)}`, field);
  }
  return Math.ceil(bytes / SECTOR) * SECTOR;
}

/** What an existing disk must look like for a repeated request to be a no-op. */
export interface ExpectedDisk {
  format: string;
  virtualSize: number;
  /** undefined: the disk must have no backing file. */
  backingFile?: string;
}

/** Why `actual` does not satisfy `expected`, or undefined when it does. */
export function diskMismatch(actual: DiskInfo, expected: ExpectedDisk): string | undefined {
  if (actual.format !== expected.format) return `format is ${actual.format}, not ${expected.format}`;
  if (actual.virtualSize !== expected.virtualSize) return `virtual size is ${actual.virtualSize}, not ${expected.virtualSize}`;
  if ((actual.backingFile ?? '') !== (expected.backingFile ?? '')) {
    return `backing file is ${actual.backingFile ?? '(none)'}, not ${expected.backingFile ?? '(none)'}`;
  }
  return undefined;
}

/** qemu's image locking refuses a second writer; say so in words a user acts on. */
function isLockError(err: unknown): boolean {
  return err instanceof CommandError && /Failed to get (shared )?"?\w+"? lock/.test(err.stderr);
}

export class DiskExistsError extends AlreadyExistsError {
  constructor(path: string, reason: string) {
    super('disk', path);
    this.message = `disk ${path} already exists and differs from the request: ${reason}`;
  }
}

export interface QemuImgOptions {
  binary?: string;
  /** Deadline of metadata operations (create, info, resize). */
  timeoutMs?: number;
  /** Deadline of data copies (convert), which scale with the disk's size. */
  copyTimeoutMs?: number;
}

export class QemuImgDriver implements DiskDriver {
  private readonly binary: string;
  private readonly timeoutMs: number;
  private readonly copyTimeoutMs: number;

  constructor(options: QemuImgOptions = {}) {
    this.binary = options.binary ?? 'qemu-img';
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.copyTimeoutMs = options.copyTimeoutMs ?? 6 * 3600_000;
  }

  async create(path: string, virtualSizeBytes: number): Promise<void> {
    requireAbsolutePath(path);
    const size = alignSize(virtualSizeBytes);
    await this.produce(path, { format: 'qcow2', virtualSize: size }, async (tmp) => {
      await this.qemuImg(['create', '-q', '-f', 'qcow2', tmp, String(size)]);
    });
  }

  async createOverlay(path: string, backingPath: string, virtualSizeBytes: number): Promise<void> {
    requireAbsolutePath(path);
    // The overlay records the backing path verbatim; an absolute one keeps it valid wherever the
    // overlay is opened from.
    requireAbsolutePath(backingPath, 'backing_block_storage');
    if (backingPath === path) throw new InvalidArgumentError(`a disk cannot be its own backing file: ${path}`, 'backing_block_storage');
    const size = alignSize(virtualSizeBytes);
    const backing = await this.info(backingPath, 'backing_block_storage');
    if (backing.format !== 'qcow2' && backing.format !== 'raw') {
      throw new FailedPreconditionError(`backing disk ${backingPath} has format ${backing.format}; only qcow2 or raw can back an overlay`, 'backing_block_storage');
    }
    if (size < backing.virtualSize) {
      throw new InvalidArgumentError(`limit_bytes ${size} is smaller than the backing disk's ${backing.virtualSize} bytes`, 'limit_bytes');
    }
    await this.produce(path, { format: 'qcow2', virtualSize: size, backingFile: backingPath }, async (tmp) => {
      // Only metadata is written: the time does not depend on the backing file's size.
      await this.qemuImg(['create', '-q', '-f', 'qcow2', '-F', backing.format, '-b', backingPath, tmp, String(size)]);
    });
  }

  async copy(sourcePath: string, path: string, virtualSizeBytes?: number): Promise<void> {
    requireAbsolutePath(path);
    requireAbsolutePath(sourcePath, 'source_block_storage');
    if (sourcePath === path) throw new InvalidArgumentError(`cannot copy ${path} onto itself`, 'source_block_storage');
    const source = await this.info(sourcePath, 'source_block_storage');
    await this.importImage(sourcePath, source.format, path, virtualSizeBytes);
  }

  /**
   * Converts `sourcePath` (read as `sourceFormat`, never probed) into an independent qcow2 at
   * `path`, grown to `virtualSizeBytes` when that is larger. A backing chain is flattened.
   */
  async importImage(sourcePath: string, sourceFormat: string, path: string, virtualSizeBytes?: number, signal?: AbortSignal): Promise<void> {
    requireAbsolutePath(path);
    requireAbsolutePath(sourcePath, 'source');
    if (!/^[a-z0-9]+$/.test(sourceFormat)) throw new InvalidArgumentError(`source format ${JSON.stringify(sourceFormat)} is invalid`, 'format');
    const requested = virtualSizeBytes === undefined ? 0 : alignSize(virtualSizeBytes);
    const sourceInfo = await this.probe(sourcePath, 'source', sourceFormat);
    const size = Math.max(requested, alignSize(sourceInfo.virtualSize, 'source'));
    await this.produce(path, { format: 'qcow2', virtualSize: size }, async (tmp) => {
      try {
        await this.qemuImg(['convert', '-q', '-f', sourceFormat, '-O', 'qcow2', sourcePath, tmp], { timeoutMs: this.copyTimeoutMs, signal });
      } catch (err) {
        if (isLockError(err)) throw new FailedPreconditionError(`disk ${sourcePath} is in use by a running VM; stop it before copying`, 'source_block_storage');
        throw err;
      }
      if (size > sourceInfo.virtualSize) await this.qemuImg(['resize', '-q', '-f', 'qcow2', tmp, String(size)], { signal });
    });
  }

  /**
   * Publishes `sourcePath`, a qcow2 that refers to no other file, as `path` without copying its
   * data (what importImage's convert would do, at the cost of writing every byte once more):
   * `qemu-img check` reads all its metadata first; then it is grown to the size asked and linked
   * into place, synced. `sourcePath` is consumed. False (nothing done) for an image that needs
   * the copy: dirty, encrypted, not such a qcow2, or one whose metadata check finds corrupt (the
   * copy rebuilds its metadata from what reads back, as before there was this shortcut).
   */
  async adoptQcow2(sourcePath: string, probe: DiskProbe, path: string, virtualSizeBytes: number, signal?: AbortSignal): Promise<boolean> {
    requireAbsolutePath(path);
    if (probe.format !== 'qcow2' || probe.backingFile !== undefined || probe.dataFile !== undefined || probe.dirty || probe.encrypted) return false;
    const size = Math.max(alignSize(virtualSizeBytes), alignSize(probe.virtualSize, 'source'));
    try {
      await this.qemuImg(['check', '-q', '-f', 'qcow2', sourcePath], { timeoutMs: this.copyTimeoutMs, signal });
    } catch (err) {
      // Exit 3: leaked clusters only, space lost inside the image but nothing wrong with its data.
      if (err instanceof CommandError && err.exitCode === 2) return false;
      if (!(err instanceof CommandError && err.exitCode === 3)) throw err;
    }
    if (size > probe.virtualSize) await this.qemuImg(['resize', '-q', '-f', 'qcow2', sourcePath, String(size)], { signal });
    await publishNoClobber(sourcePath, path);
    return true;
  }

  async resize(path: string, virtualSizeBytes: number): Promise<void> {
    requireAbsolutePath(path);
    const size = alignSize(virtualSizeBytes);
    const current = await this.info(path);
    if (size < current.virtualSize) {
      throw new InvalidArgumentError(`limit_bytes ${size} is smaller than the disk's current ${current.virtualSize} bytes; disks only grow`, 'limit_bytes');
    }
    if (size === current.virtualSize) return;
    try {
      await this.qemuImg(['resize', '-q', '-f', current.format, path, String(size)]);
    } catch (err) {
      if (isLockError(err)) throw new FailedPreconditionError(`disk ${path} is in use by a running VM; it cannot be resized offline`, 'limit_bytes');
      throw err;
    }
    log.info('disk grown', { path, from: current.virtualSize, to: size });
  }

  async info(path: string, field = 'path'): Promise<DiskInfo> {
    const { dataFile: _dataFile, dirty: _dirty, encrypted: _encrypted, ...info } = await this.probe(path, field);
    return info;
  }

  /**
   * `qemu-img info` with --force-share (works on disks a running VM holds). With `format` given
   * the file is read as that format instead of being probed.
   */
  async probe(path: string, field = 'path', format?: string): Promise<DiskProbe> {
    requireAbsolutePath(path, field);
    if (!(await exists(path))) throw new NotFoundError('disk', path);
    const args = ['info', '-U', '--output=json', ...(format ? ['-f', format] : []), path];
    const { stdout } = await this.qemuImg(args);
    return parseQemuImgInfo(stdout, path);
  }

  /**
   * Makes `path` with `make(tmp)` unless it exists. An existing disk that matches `expected` is
   * success (a repeated reconcile); a different one is never touched.
   */
  private async produce(path: string, expected: ExpectedDisk, make: (tmp: string) => Promise<void>): Promise<void> {
    if (await this.matchesExisting(path, expected)) return;
    const tmp = tempPathBeside(path);
    try {
      await make(tmp);
      await publishNoClobber(tmp, path);
    } catch (err) {
      if (err instanceof TargetExistsError) {
        // Someone made it while we worked: fine if it is what we would have made.
        if (await this.matchesExisting(path, expected)) return;
      }
      throw err;
    } finally {
      await removeQuietly(tmp);
    }
    log.debug('disk created', { path, ...expected });
  }

  private async matchesExisting(path: string, expected: ExpectedDisk): Promise<boolean> {
    if (!(await exists(path))) return false;
    const stat = await fs.lstat(path);
    if (!stat.isFile()) throw new DiskExistsError(path, 'it is not a regular file');
    const reason = diskMismatch(await this.info(path), expected);
    if (reason) throw new DiskExistsError(path, reason);
    return true;
  }

  private qemuImg(args: string[], options: { timeoutMs?: number; signal?: AbortSignal } = {}) {
    return run(this.binary, args, { timeoutMs: options.timeoutMs ?? this.timeoutMs, signal: options.signal });
  }
}
