// HttpFetchDriver against a loopback HTTP server (127.0.0.1, ephemeral port) and real qemu-img:
// content is checked with `qemu-img compare` against the served source.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, promises as fs, rmSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { isN0Error } from '../../api/errors';
import { createCa, issueServerCert } from '../../api/pki';
import { run } from '../exec';
import { HttpFetchDriver } from './fetch';
import type { Progress } from './types';

const MiB = 1024 * 1024;
jest.setTimeout(60_000);

interface Served { body: Buffer; ranges: boolean; etag: string }

describe('HttpFetchDriver (loopback HTTP + real qemu-img)', () => {
  let dir: string;
  let server: http.Server;
  let base: string;
  let tlsServer: https.Server;
  let tlsBase: string;
  let caPem: string;
  /** TLS handshakes the server saw fail (a client that distrusts the certificate hangs up). */
  let tlsRefusals = 0;
  const files = new Map<string, Served>();
  /** Every request the server saw: path and Range header. */
  const seen: Array<{ url: string; range?: string }> = [];
  let flakyDrops = 0;
  const timers = new Set<NodeJS.Timeout>();
  const fetcher = new HttpFetchDriver({ retryDelayMs: 20, idleTimeoutMs: 5_000 });
  const p = (name: string) => path.join(dir, name);
  const url = (pathname: string) => `${base}${pathname}`;

  function serve(req: http.IncomingMessage, res: http.ServerResponse, file: Served, options: { dropAfter?: number } = {}) {
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const sameEntity = !req.headers['if-range'] || req.headers['if-range'] === file.etag;
    if (file.ranges && m && sameEntity && Number(m[1]) < file.body.length) {
      start = Number(m[1]);
      res.writeHead(206, {
        'content-length': file.body.length - start, 'content-range': `bytes ${start}-${file.body.length - 1}/${file.body.length}`,
        etag: file.etag, 'accept-ranges': 'bytes',
      });
    } else {
      res.writeHead(200, { 'content-length': file.body.length, etag: file.etag, ...(file.ranges ? { 'accept-ranges': 'bytes' } : {}) });
    }
    const body = file.body.subarray(start);
    if (options.dropAfter === undefined) return res.end(body);
    // Sends part of the promised body, then cuts the connection.
    // FIN rather than RST, so what was sent arrives before the client sees the short body.
    res.write(body.subarray(0, options.dropAfter), () => res.socket?.end());
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'n0-fetch-'));
    // A raw disk with random content and a qcow2 made from it by qemu-img.
    const raw = randomBytes(3 * MiB);
    await fs.writeFile(p('source.raw'), raw);
    await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', p('source.raw'), p('source.qcow2')]);
    // The same qcow2 with a refcount table entry pointing at a data cluster: `qemu-img check` calls it corrupt.
    const corrupt = await fs.readFile(p('source.qcow2'));
    const refcountTable = Number(corrupt.readBigUInt64BE(48));
    corrupt.writeBigUInt64BE(16n * 65536n, refcountTable + 8);
    await fs.writeFile(p('corrupt.qcow2'), corrupt);
    // An ISO (anything not qcow2 is taken as raw).
    await fs.mkdir(p('iso'));
    await fs.writeFile(p('iso/hello.txt'), 'hello from an iso\n');
    await run('genisoimage', ['-quiet', '-output', p('source.iso'), '-volid', 'TESTISO', '-joliet', '-rock', p('iso')]);
    // A qcow2 that tries to pull a host file in through its backing file.
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', p('source.raw'), p('evil.qcow2'), String(3 * MiB)]);
    const etag = (b: Buffer) => `"${createHash('sha256').update(b).digest('hex').slice(0, 16)}"`;
    for (const [name, file, ranges] of [
      ['/raw.img', 'source.raw', true], ['/disk.qcow2', 'source.qcow2', true], ['/seed.iso', 'source.iso', false],
      ['/evil.qcow2', 'evil.qcow2', false], ['/flaky.img', 'source.raw', true], ['/drop.img', 'source.raw', false],
      ['/slow.img', 'source.raw', false], ['/corrupt.qcow2', 'corrupt.qcow2', false],
    ] as const) {
      const body = await fs.readFile(p(file));
      files.set(name, { body, ranges, etag: etag(body) });
    }

    server = http.createServer((req, res) => {
      const pathname = new URL(req.url ?? '/', 'http://x').pathname;
      seen.push({ url: pathname, ...(req.headers.range ? { range: req.headers.range } : {}) });
      const redirects: Record<string, [number, string]> = {
        '/r1': [302, '/r2'], '/r2': [301, `${base}/r3`], '/r3': [307, 'raw.img'],
        '/loop': [302, '/loop'], '/to-file': [302, 'file:///etc/passwd'],
      };
      if (redirects[pathname]) {
        res.writeHead(redirects[pathname][0], { location: redirects[pathname][1] });
        return res.end();
      }
      const file = files.get(pathname);
      if (!file) {
        res.writeHead(404);
        return res.end('not found');
      }
      if (pathname === '/flaky.img' && !req.headers.range && flakyDrops++ === 0) return serve(req, res, file, { dropAfter: MiB + 12345 });
      if (pathname === '/drop.img') return serve(req, res, file, { dropAfter: MiB });
      if (pathname === '/slow.img') {
        // 3 MiB in 48 chunks, one every 25 ms: about 1.2 s, so progress is throttled visibly.
        res.writeHead(200, { 'content-length': file.body.length });
        let offset = 0;
        const tick = () => {
          const chunk = file.body.subarray(offset, offset + 64 * 1024);
          offset += chunk.length;
          if (offset >= file.body.length) return res.end(chunk);
          res.write(chunk);
          const t = setTimeout(tick, 25);
          timers.add(t);
        };
        return tick();
      }
      return serve(req, res, file);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    // The same files over TLS, with a certificate from a private CA.
    const ca = createCa({ commonName: 'fetch test CA' });
    caPem = ca.certPem;
    const cert = issueServerCert(ca, { commonName: '127.0.0.1', ipAddresses: ['127.0.0.1'] });
    tlsServer = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
      seen.push({ url: `tls:${req.url}` });
      const file = files.get(new URL(req.url ?? '/', 'https://x').pathname);
      if (!file) { res.writeHead(404); return res.end(); }
      return serve(req, res, file);
    });
    tlsServer.on('tlsClientError', () => { tlsRefusals++; });
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    tlsBase = `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    for (const t of timers) clearTimeout(t);
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    tlsServer?.closeAllConnections();
    await new Promise((resolve) => tlsServer?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    seen.length = 0;
    await fs.mkdir(p('out'), { recursive: true });
  });
  afterEach(async () => { await fs.rm(p('out'), { recursive: true, force: true }); });

  async function sameContent(source: string, sourceFormat: string, fetched: string) {
    // compare treats the part beyond the smaller image as zeros; exit 0 means identical content.
    const { stdout } = await run('qemu-img', ['compare', '-f', sourceFormat, '-F', 'qcow2', source, fetched]);
    return /Images are identical/.test(stdout);
  }
  const outFiles = () => fs.readdir(p('out'));

  it('fetches a raw image, converts it to qcow2, grows it, and reports monotonic progress', async () => {
    const events: Progress[] = [];
    const info = await fetcher.fetch(url('/raw.img'), p('out/raw.qcow2'), { virtualSizeBytes: 8 * MiB, onProgress: (e) => events.push(e) });
    expect(info).toMatchObject({ path: p('out/raw.qcow2'), format: 'qcow2', virtualSize: 8 * MiB });
    expect(info.backingFile).toBeUndefined();
    expect(await sameContent(p('source.raw'), 'raw', p('out/raw.qcow2'))).toBe(true);
    const download = events.filter((e) => e.phase === 'download');
    expect(download.length).toBeGreaterThanOrEqual(1);
    for (let i = 1; i < download.length; i++) expect(download[i].bytesDone).toBeGreaterThanOrEqual(download[i - 1].bytesDone);
    expect(download.at(-1)).toEqual({ phase: 'download', bytesDone: 3 * MiB, bytesTotal: 3 * MiB });
    expect(events.at(-1)).toEqual({ phase: 'convert', bytesDone: 3 * MiB, bytesTotal: 3 * MiB });
    expect(await outFiles()).toEqual(['raw.qcow2']);

    // Fetching again is a no-op on the finished disk.
    const again = await fetcher.fetch(url('/raw.img'), p('out/raw.qcow2'), { virtualSizeBytes: 8 * MiB });
    expect(again.virtualSize).toBe(8 * MiB);
    expect(seen.filter((s) => s.url === '/raw.img')).toHaveLength(1);
  });

  it('fetches a qcow2 image as qcow2 and never shrinks it below its own size', async () => {
    const info = await fetcher.fetch(url('/disk.qcow2'), p('out/q.qcow2'), { virtualSizeBytes: MiB });
    expect(info).toMatchObject({ format: 'qcow2', virtualSize: 3 * MiB });
    expect(await sameContent(p('source.qcow2'), 'qcow2', p('out/q.qcow2'))).toBe(true);
    expect(await sameContent(p('source.raw'), 'raw', p('out/q.qcow2'))).toBe(true);
  });

  it('keeps a sound self-contained qcow2 byte for byte (no copy), and copies one whose metadata is corrupt', async () => {
    await fetcher.fetch(url('/disk.qcow2'), p('out/kept.qcow2'), { virtualSizeBytes: MiB });
    const digest = async (f: string) => createHash('sha256').update(await fs.readFile(f)).digest('hex');
    expect(await digest(p('out/kept.qcow2'))).toBe(await digest(p('source.qcow2')));
    const info = await fetcher.fetch(url('/corrupt.qcow2'), p('out/rebuilt.qcow2'), { virtualSizeBytes: MiB });
    expect(info).toMatchObject({ format: 'qcow2', virtualSize: 3 * MiB });
    expect(await digest(p('out/rebuilt.qcow2'))).not.toBe(await digest(p('corrupt.qcow2')));
    await run('qemu-img', ['check', '-q', '-f', 'qcow2', p('out/rebuilt.qcow2')]);
    expect(await sameContent(p('source.raw'), 'raw', p('out/rebuilt.qcow2'))).toBe(true);
  });

  it('takes an ISO as raw content', async () => {
    const info = await fetcher.fetch(url('/seed.iso'), p('out/iso.qcow2'), { virtualSizeBytes: MiB });
    expect(info.format).toBe('qcow2');
    expect(await sameContent(p('source.iso'), 'raw', p('out/iso.qcow2'))).toBe(true);
  });

  it('follows up to 5 redirects, including relative ones, and refuses loops and non-http targets', async () => {
    await fetcher.fetch(url('/r1'), p('out/redir.qcow2'), { virtualSizeBytes: MiB });
    expect(await sameContent(p('source.raw'), 'raw', p('out/redir.qcow2'))).toBe(true);
    expect(seen.map((s) => s.url)).toEqual(['/r1', '/r2', '/r3', '/raw.img']);

    const loop = await fetcher.fetch(url('/loop'), p('out/loop.qcow2'), { virtualSizeBytes: MiB }).catch((e) => e);
    expect(isN0Error(loop, 'FailedPrecondition')).toBe(true);
    expect(loop.message).toMatch(/redirected more than 5 times/);
    expect(seen.filter((s) => s.url === '/loop')).toHaveLength(6);

    const toFile = await fetcher.fetch(url('/to-file'), p('out/f.qcow2'), { virtualSizeBytes: MiB }).catch((e) => e);
    expect(isN0Error(toFile, 'InvalidArgument')).toBe(true);
    expect(toFile.field).toBe('source_url');
    expect(await outFiles()).toEqual(['redir.qcow2']);
  });

  it('rejects non-http URLs before any request, naming source_url', async () => {
    for (const bad of ['file:///etc/passwd', 'ftp://127.0.0.1/x.img', 'data:,abc', 'not a url', '']) {
      const err = await fetcher.fetch(bad, p('out/x.qcow2'), { virtualSizeBytes: MiB }).catch((e) => e);
      expect(isN0Error(err, 'InvalidArgument')).toBe(true);
      expect(err.field).toBe('source_url');
    }
    expect(seen).toEqual([]);
  });

  it('fails on 404 without retrying and leaves no file', async () => {
    const err = await fetcher.fetch(url('/missing.img'), p('out/m.qcow2'), { virtualSizeBytes: MiB }).catch((e) => e);
    expect(isN0Error(err, 'FailedPrecondition')).toBe(true);
    expect(err.message).toMatch(/HTTP 404/);
    expect(seen).toHaveLength(1);
    expect(await outFiles()).toEqual([]);
  });

  it('resumes a dropped download with a Range request', async () => {
    const events: Progress[] = [];
    await fetcher.fetch(url('/flaky.img'), p('out/flaky.qcow2'), {
      virtualSizeBytes: MiB, sha256: createHash('sha256').update(files.get('/raw.img')!.body).digest('hex'), onProgress: (e) => events.push(e),
    });
    expect(seen).toHaveLength(2);
    expect(seen[0]).toEqual({ url: '/flaky.img' });
    // Resumed where the first response stopped (as far as it arrived), not from 0.
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(seen[1].range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(MiB + 12345);
    expect(await sameContent(p('source.raw'), 'raw', p('out/flaky.qcow2'))).toBe(true);
    const download = events.filter((e) => e.phase === 'download');
    for (let i = 1; i < download.length; i++) expect(download[i].bytesDone).toBeGreaterThanOrEqual(download[i - 1].bytesDone);
    expect(download.at(-1)?.bytesDone).toBe(3 * MiB);
  });

  it('gives up on a server that keeps dropping and cannot resume, leaving no file', async () => {
    const err = await fetcher.fetch(url('/drop.img'), p('out/d.qcow2'), { virtualSizeBytes: MiB }).catch((e) => e);
    expect(isN0Error(err, 'Unavailable')).toBe(true);
    expect(err.message).toMatch(/drop\.img/);
    // 1 + 3 retries; each retry asked to resume and got the whole file again.
    expect(seen).toHaveLength(4);
    expect(seen.slice(1).every((s) => /^bytes=[1-9]\d*-$/.test(s.range ?? ''))).toBe(true);
    expect(await outFiles()).toEqual([]);
  });

  it('verifies sha256: a wrong digest fails and removes the download, a right one passes', async () => {
    const wrong = 'ab'.repeat(32);
    const err = await fetcher.fetch(url('/raw.img'), p('out/s.qcow2'), { virtualSizeBytes: MiB, sha256: wrong }).catch((e) => e);
    expect(isN0Error(err, 'FailedPrecondition')).toBe(true);
    expect(err.field).toBe('source_sha256');
    expect(err.message).toContain(wrong);
    expect(await outFiles()).toEqual([]);

    const right = createHash('sha256').update(files.get('/disk.qcow2')!.body).digest('hex').toUpperCase();
    await fetcher.fetch(url('/disk.qcow2'), p('out/s.qcow2'), { virtualSizeBytes: MiB, sha256: right });
    expect(await outFiles()).toEqual(['s.qcow2']);

    const malformed = await fetcher.fetch(url('/raw.img'), p('out/t.qcow2'), { virtualSizeBytes: MiB, sha256: 'xyz' }).catch((e) => e);
    expect(isN0Error(malformed, 'InvalidArgument')).toBe(true);
  });

  it('refuses a qcow2 that refers to a file outside itself', async () => {
    const err = await fetcher.fetch(url('/evil.qcow2'), p('out/e.qcow2'), { virtualSizeBytes: MiB }).catch((e) => e);
    expect(isN0Error(err, 'FailedPrecondition')).toBe(true);
    expect(err.message).toMatch(/refers to another file/);
    expect(await outFiles()).toEqual([]);
  });

  it('throttles progress to one event per 250 ms plus the final one', async () => {
    const events: Array<Progress & { at: number }> = [];
    await fetcher.fetch(url('/slow.img'), p('out/slow.qcow2'), { virtualSizeBytes: MiB, onProgress: (e) => events.push({ ...e, at: Date.now() }) });
    const download = events.filter((e) => e.phase === 'download');
    // ~1.2 s of transfer: a handful of events, not one per 64 KiB chunk (48).
    expect(download.length).toBeGreaterThanOrEqual(3);
    expect(download.length).toBeLessThanOrEqual(10);
    for (let i = 1; i < download.length - 1; i++) expect(download[i].at - download[i - 1].at).toBeGreaterThanOrEqual(245);
    for (let i = 1; i < download.length; i++) expect(download[i].bytesDone).toBeGreaterThanOrEqual(download[i - 1].bytesDone);
    expect(download.every((e) => e.bytesTotal === 3 * MiB)).toBe(true);
    expect(download.at(-1)?.bytesDone).toBe(3 * MiB);
  });

  it('stops when aborted and leaves no file', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const err = await fetcher.fetch(url('/slow.img'), p('out/a.qcow2'), {
      virtualSizeBytes: MiB, signal: controller.signal,
      onProgress: (e) => { if (e.bytesDone > 0) controller.abort(); },
    }).catch((e) => e);
    // The signal's own reason (a DOMException named AbortError) comes back, not a wrapped error.
    expect(err).toBe(controller.signal.reason);
    expect(err.name).toBe('AbortError');
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await outFiles()).toEqual([]);
  });

  it('fetches over https when the CA is trusted, and refuses an untrusted certificate without retrying', async () => {
    const untrusted = await fetcher.fetch(`${tlsBase}/raw.img`, p('out/tls.qcow2'), { virtualSizeBytes: MiB }).catch((e) => e);
    expect(isN0Error(untrusted, 'FailedPrecondition')).toBe(true);
    expect(untrusted.message).toMatch(/certificate not trusted/);
    expect(await outFiles()).toEqual([]);
    await new Promise((r) => setTimeout(r, 100));
    expect(tlsRefusals).toBe(1);

    const trusting = new HttpFetchDriver({ extraCaPem: [caPem], retryDelayMs: 20 });
    await trusting.fetch(`${tlsBase}/disk.qcow2`, p('out/tls.qcow2'), { virtualSizeBytes: MiB });
    expect(await sameContent(p('source.qcow2'), 'qcow2', p('out/tls.qcow2'))).toBe(true);
    expect(seen).toEqual([{ url: 'tls:/disk.qcow2' }]);
  });

  it('refuses to replace a different existing file', async () => {
    await fs.writeFile(p('out/taken.qcow2'), 'not a disk');
    const err = await fetcher.fetch(url('/raw.img'), p('out/taken.qcow2'), { virtualSizeBytes: MiB }).catch((e) => e);
    expect(isN0Error(err, 'AlreadyExists')).toBe(true);
    expect(await fs.readFile(p('out/taken.qcow2'), 'utf8')).toBe('not a disk');
    expect(seen).toEqual([]);
  });
});
