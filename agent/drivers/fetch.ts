// Downloads a disk image over http(s) into a qcow2 file: streamed into a temporary file beside
// the target (hashing as it goes), resumed with a Range request after a dropped connection,
// checked, converted with qemu-img and published under the final name only when complete.
import { createHash, type Hash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { rootCertificates } from 'node:tls';
import { setTimeout as delay } from 'node:timers/promises';
import { FailedPreconditionError, InvalidArgumentError, isN0Error, UnavailableError } from '../../api/errors';
import { logger } from '../../api/log';
import { exists, removeQuietly, requireAbsolutePath, tempPathBeside } from './fsutil';
import { alignSize, DiskExistsError, QemuImgDriver } from './qemuimg';
import type { DiskInfo, FetchDriver, Progress } from './types';

const log = logger('fetch');

/** Parses a user's source URL; only http and https are fetched (never file:, ftp:, data:, ...). */
export function parseSourceUrl(input: unknown, field = 'source_url'): URL {
  if (typeof input !== 'string' || input.length === 0) throw new InvalidArgumentError(`${field} must be a non-empty URL`, field);
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new InvalidArgumentError(`${field} ${JSON.stringify(input)} is not a valid URL`, field);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError(`${field} ${JSON.stringify(input)} must be an http or https URL, not ${url.protocol}`, field);
  }
  return url;
}

export function parseSha256(input: unknown, field = 'source_sha256'): string {
  if (typeof input !== 'string' || !/^[0-9a-fA-F]{64}$/.test(input)) {
    throw new InvalidArgumentError(`${field} must be 64 hexadecimal digits`, field);
  }
  return input.toLowerCase();
}

/** `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`). */
export function parseContentRange(header: string | undefined): { start: number; end: number; total?: number } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header?.trim() ?? '');
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) return undefined;
  return { start, end, ...(m[3] !== '*' ? { total: Number(m[3]) } : {}) };
}

/** Emits progress at most every `intervalMs`, and always the final state. */
export class ProgressThrottle {
  private last = -Infinity;
  constructor(
    private readonly intervalMs: number,
    private readonly emit: ((p: Progress) => void) | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  update(p: Progress): void {
    const t = this.now();
    if (t - this.last < this.intervalMs) return;
    this.last = t;
    this.emit?.(p);
  }

  final(p: Progress): void {
    this.last = this.now();
    this.emit?.(p);
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REQUESTS = 50;

export interface HttpFetchOptions {
  disk?: QemuImgDriver;
  /** Redirects followed per request (the seed's image hosts redirect to mirrors). */
  maxRedirects?: number;
  /** A connection silent this long (connecting, headers or body) counts as dropped. */
  idleTimeoutMs?: number;
  /** Further requests after a dropped connection, resumed with Range where the server allows. */
  retries?: number;
  retryDelayMs?: number;
  progressIntervalMs?: number;
  /** Extra CA certificates (PEM) trusted for https besides the public ones: private mirrors. */
  extraCaPem?: string[];
}

interface Opened { res: http.IncomingMessage; url: URL }
/** Bytes written so far, and their digest when a sha256 is to be checked (hashing costs as much as the copy). */
interface Received { done: number; hash?: Hash }

const WRITE_BATCH_BYTES = 1024 * 1024;
const IOV_MAX = 1024;
/** Written bytes after which a flush to the disk is started while the download goes on. */
const FLUSH_EVERY_BYTES = 32 * 1024 * 1024;

/**
 * Flushes a file being written in the background, one fdatasync at a time, each once
 * `everyBytes` more were written. The kernel starts writing back only once gigabytes are dirty
 * (or after 30 s), so a download synced only at its end left the disk idle while the network
 * ran and then waited for the whole file to be written; flushed as it goes, the disk works
 * while the network does and the final sync has only the tail to write.
 */
export class BackgroundFlush {
  private flushing?: Promise<void>;
  private flushedTo = 0;
  private failure?: Error;
  constructor(private readonly handle: FileHandle, private readonly everyBytes: number) {}

  /** `done` bytes are written; start a flush if enough are unflushed and none is running. */
  wrote(done: number): void {
    if (this.failure) throw this.failure;
    if (this.flushing || done - this.flushedTo < this.everyBytes) return;
    this.flushing = this.handle.datasync().then(
      () => { this.flushedTo = Math.max(this.flushedTo, done); },
      (err: Error) => { this.failure = err; },
    ).finally(() => { this.flushing = undefined; });
  }

  /** The file was truncated: count from its start again. */
  restart(): void {
    this.flushedTo = 0;
  }

  /** Waits for a running flush; throws what a flush failed with (the final sync must not hide it). */
  async settle(): Promise<void> {
    await this.flushing;
    if (this.failure) throw this.failure;
  }
}

export class HttpFetchDriver implements FetchDriver {
  private readonly disk: QemuImgDriver;
  private readonly maxRedirects: number;
  private readonly idleTimeoutMs: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly progressIntervalMs: number;
  private readonly ca: string[] | undefined;

  constructor(options: HttpFetchOptions = {}) {
    this.disk = options.disk ?? new QemuImgDriver();
    this.maxRedirects = options.maxRedirects ?? 5;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
    this.retries = options.retries ?? 3;
    this.retryDelayMs = options.retryDelayMs ?? 1_000;
    this.progressIntervalMs = options.progressIntervalMs ?? 250;
    this.ca = options.extraCaPem?.length ? [...rootCertificates, ...options.extraCaPem] : undefined;
  }

  async fetch(url: string, path: string, options: {
    virtualSizeBytes: number;
    sha256?: string;
    onProgress?: (p: Progress) => void;
    signal?: AbortSignal;
  }): Promise<DiskInfo> {
    const source = parseSourceUrl(url);
    requireAbsolutePath(path);
    const size = alignSize(options.virtualSizeBytes);
    const sha256 = options.sha256 === undefined ? undefined : parseSha256(options.sha256);
    const { signal } = options;
    signal?.throwIfAborted();

    // A repeated reconcile after a finished fetch: the content cannot be re-checked cheaply, but
    // only a complete download is ever published under this name.
    if (await exists(path)) {
      const info = await this.disk.info(path);
      if (info.format === 'qcow2' && !info.backingFile && info.virtualSize >= size) return info;
      throw new DiskExistsError(path, `it is ${info.format} of ${info.virtualSize} bytes${info.backingFile ? ` on ${info.backingFile}` : ''}`);
    }

    const download = tempPathBeside(path, 'download');
    try {
      const bytes = await this.download(source, download, sha256, options.onProgress, signal);
      // Never let qemu probe beyond these two: other formats (vmdk descriptors, qcow2 backing
      // files, external data files) can make qemu-img read arbitrary host files into the disk.
      const probe = await this.disk.probe(download, 'source_url');
      const format = probe.format === 'qcow2' ? 'qcow2' : 'raw';
      if (format === 'qcow2' && (probe.backingFile !== undefined || probe.dataFile !== undefined)) {
        throw new FailedPreconditionError(`source_url ${source.href} is a qcow2 image that refers to another file (${probe.backingFile ?? probe.dataFile}); only self-contained images can be fetched`, 'source_url');
      }
      options.onProgress?.({ phase: 'convert', bytesDone: 0, bytesTotal: bytes });
      // A self-contained qcow2 is already what we keep: checked and linked into place, not copied.
      const adopted = format === 'qcow2' && await this.disk.adoptQcow2(download, probe, path, size, signal);
      if (!adopted) await this.disk.importImage(download, format, path, size, signal);
      options.onProgress?.({ phase: 'convert', bytesDone: bytes, bytesTotal: bytes });
      // Adopted, the file is the probed one grown to the size asked: no need to ask qemu-img again.
      const info: DiskInfo = adopted
        ? { path, format: 'qcow2', virtualSize: Math.max(size, alignSize(probe.virtualSize, 'source')), actualSize: probe.actualSize }
        : await this.disk.info(path);
      log.info('image fetched', { url: source.href, path, sourceFormat: format, adopted, bytes, virtualSize: info.virtualSize });
      return info;
    } finally {
      await removeQuietly(download);
    }
  }

  /** Streams the body into `file`, retrying and resuming; returns the byte count. */
  private async download(
    source: URL, file: string, sha256: string | undefined,
    onProgress: ((p: Progress) => void) | undefined, signal: AbortSignal | undefined,
  ): Promise<number> {
    const progress = new ProgressThrottle(this.progressIntervalMs, onProgress);
    const handle = await fs.open(file, 'w', 0o600);
    const flusher = new BackgroundFlush(handle, FLUSH_EVERY_BYTES);
    // Shared with receive(), so bytes written before a drop are counted and hashed exactly once.
    const got: Received = { done: 0, hash: sha256 === undefined ? undefined : createHash('sha256') };
    let total = 0;
    // Resume against the URL the redirects led to, and only while the entity is the same one.
    let url = source;
    let validator: string | undefined;
    try {
      // Failures in a row; a resumed request that gained bytes starts the count anew (a long
      // download on a flaky link), and the request total stays bounded for a server that drops
      // every few bytes. A server that cannot resume gets `retries` fresh starts, no more.
      let failures = 0;
      for (let request = 1; ; request++) {
        const before = got.done;
        let resumed = false;
        try {
          const resuming = got.done > 0;
          const headers: Record<string, string> = { 'user-agent': 'n0stack-agent', 'accept-encoding': 'identity' };
          if (resuming) {
            headers['range'] = `bytes=${got.done}-`;
            if (validator) headers['if-range'] = validator;
          }
          const opened = await this.open(url, headers, signal);
          const { res } = opened;
          url = opened.url;
          if (resuming && res.statusCode === 206) {
            const range = parseContentRange(res.headers['content-range']);
            if (!range || range.start !== got.done) {
              res.destroy();
              throw new UnavailableError(`source_url ${url.href} answered the resume at byte ${got.done} with range ${res.headers['content-range'] ?? '(none)'}`);
            }
            if (range.total !== undefined) total = range.total;
            resumed = true;
          } else if (res.statusCode === 200) {
            if (resuming) {
              // The server ignored Range or the file changed (If-Range): start over.
              log.warn('server cannot resume; downloading again from the start', { url: url.href, at: got.done });
              got.done = 0;
              got.hash = sha256 === undefined ? undefined : createHash('sha256');
              await flusher.settle();
              await handle.truncate(0);
              flusher.restart();
            }
            const length = Number(res.headers['content-length']);
            total = Number.isSafeInteger(length) && length >= 0 ? length : 0;
            validator = strongValidator(res.headers);
          } else {
            res.destroy();
            throw statusError(url, res.statusCode ?? 0);
          }
          progress.update({ phase: 'download', bytesDone: got.done, bytesTotal: total });
          await this.receive(res, handle, got, total, progress, flusher);
          if (total > 0 && got.done !== total) {
            throw new UnavailableError(`source_url ${url.href} ended after ${got.done} of ${total} bytes`);
          }
          break;
        } catch (err) {
          if (signal?.aborted) throw signal.reason ?? err;
          failures = resumed && got.done > before ? 1 : failures + 1;
          if (!isRetryable(err) || failures > this.retries || request >= MAX_REQUESTS) {
            if (isN0Error(err)) throw err;
            throw new UnavailableError(`downloading source_url ${url.href} failed after ${request} request(s) at byte ${got.done}: ${(err as Error).message}`);
          }
          log.warn('download interrupted; retrying', { url: url.href, at: got.done, request, error: (err as Error).message });
          await delay(this.retryDelayMs, undefined, { signal });
        }
      }
      progress.final({ phase: 'download', bytesDone: got.done, bytesTotal: total || got.done });
      // What the flushes during the download left: the tail, and the size in the inode.
      await flusher.settle();
      await handle.sync();
    } finally {
      await flusher.settle().catch(() => undefined);
      await handle.close();
    }
    if (sha256 !== undefined) {
      const actual = got.hash!.digest('hex');
      if (actual !== sha256) {
        throw new FailedPreconditionError(`source_sha256 mismatch for ${source.href}: expected ${sha256}, downloaded content has ${actual}`, 'source_sha256');
      }
    }
    return got.done;
  }

  private async receive(res: http.IncomingMessage, handle: FileHandle, got: Received, total: number, progress: ProgressThrottle, flusher: BackgroundFlush): Promise<void> {
    // The socket's chunks (64 KiB) are gathered into batches of WRITE_BATCH_BYTES and written (one pwritev)
    // while the next batch arrives, one write in flight: a write per chunk, awaited before
    // reading on, left the socket idle during every write and the disk idle during every read.
    // Async iteration still applies back-pressure (at most two batches held) and throws when the
    // connection drops before the body ends; bytes received before a drop are written and counted.
    let batch: Buffer[] = [];
    let batchBytes = 0;
    let writing: Promise<void> = Promise.resolve();
    const write = (chunks: Buffer[], bytes: number) => {
      return writevAll(handle, chunks, bytes, got.done).then(() => {
        for (const chunk of chunks) got.hash?.update(chunk);
        got.done += bytes;
        progress.update({ phase: 'download', bytesDone: got.done, bytesTotal: total });
        flusher.wrote(got.done);
      });
    };
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        batch.push(chunk);
        batchBytes += chunk.length;
        if (batchBytes < WRITE_BATCH_BYTES) continue;
        await writing;
        writing = write(batch, batchBytes);
        batch = [];
        batchBytes = 0;
      }
    } finally {
      await writing;
      if (batchBytes > 0) await write(batch, batchBytes);
    }
    // A body cut short while the message still looked complete to the parser.
    if (!res.complete) throw new UnavailableError(`connection closed after ${got.done} bytes`);
  }

  /** GET with redirects followed (each hop validated like the user's URL). */
  private async open(start: URL, headers: Record<string, string>, signal: AbortSignal | undefined): Promise<Opened> {
    let url = start;
    for (let hop = 0; ; hop++) {
      const res = await this.get(url, headers, signal);
      const status = res.statusCode ?? 0;
      if (!REDIRECTS.has(status)) return { res, url };
      res.resume();
      const location = res.headers.location;
      if (!location) throw new FailedPreconditionError(`source_url ${url.href} redirected (HTTP ${status}) without a Location`, 'source_url');
      if (hop >= this.maxRedirects) {
        throw new FailedPreconditionError(`source_url ${start.href} redirected more than ${this.maxRedirects} times`, 'source_url');
      }
      url = parseSourceUrl(new URL(location, url).href, 'source_url');
    }
  }

  private get(url: URL, headers: Record<string, string>, signal: AbortSignal | undefined): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = url.protocol === 'https:'
        ? https.get(url, { headers, signal, ...(this.ca ? { ca: this.ca } : {}) }, resolve)
        : http.get(url, { headers, signal }, resolve);
      req.setTimeout(this.idleTimeoutMs, () => {
        req.destroy(new UnavailableError(`source_url ${url.href}: no data for ${this.idleTimeoutMs} ms`));
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        // A certificate the host does not trust will not become trusted by asking again.
        if (/CERT|SIGNATURE|ALTNAME|ERR_TLS/.test(err.code ?? '')) {
          reject(new FailedPreconditionError(`source_url ${url.href}: TLS certificate not trusted (${err.code}: ${err.message})`, 'source_url'));
        } else {
          reject(err);
        }
      });
    });
  }
}

/** The socket's chunks in one pwritev, not copied into one buffer first (a copy of every byte). */
async function writevAll(handle: FileHandle, chunks: Buffer[], bytes: number, position: number): Promise<void> {
  // pwritev takes at most IOV_MAX (1024) pieces: a server that sends tiny chunks gets one copy.
  const { bytesWritten } = await handle.writev(chunks.length > IOV_MAX ? [Buffer.concat(chunks)] : chunks, position);
  if (bytesWritten === bytes) return;
  // A short write (a signal, a full disk about to say so): the rest one piece at a time.
  const rest = Buffer.concat(chunks).subarray(bytesWritten);
  let offset = 0;
  while (offset < rest.length) {
    const written = (await handle.write(rest, offset, rest.length - offset, position + bytesWritten + offset)).bytesWritten;
    if (written === 0) throw new Error(`writing at byte ${position + bytesWritten + offset} wrote nothing`);
    offset += written;
  }
}

/** ETag (strong only) or Last-Modified: what If-Range may carry to detect a changed file. */
function strongValidator(headers: http.IncomingHttpHeaders): string | undefined {
  const etag = headers.etag;
  if (etag && !etag.startsWith('W/')) return etag;
  return headers['last-modified'];
}

function statusError(url: URL, status: number): Error {
  const message = `source_url ${url.href} answered HTTP ${status}${http.STATUS_CODES[status] ? ` ${http.STATUS_CODES[status]}` : ''}`;
  // 5xx and 429 are the server's trouble and may pass; other answers will not change on retry.
  if (status >= 500 || status === 429 || status === 408) return new UnavailableError(message);
  return new FailedPreconditionError(message, 'source_url');
}

function isRetryable(err: unknown): boolean {
  if (isN0Error(err)) return err.code === 'Unavailable';
  return true;
}
