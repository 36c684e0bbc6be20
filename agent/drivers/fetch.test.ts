import { isN0Error } from '../../api/errors';
import { BackgroundFlush, parseContentRange, parseSha256, parseSourceUrl, ProgressThrottle } from './fetch';
import type { FileHandle } from 'node:fs/promises';
import type { Progress } from './types';

function thrown(fn: () => unknown): unknown {
  try { fn(); } catch (e) { return e; }
  return undefined;
}

describe('parseSourceUrl', () => {
  it('accepts http and https', () => {
    expect(parseSourceUrl('https://cloud-images.ubuntu.com/bionic/current/x.img').hostname).toBe('cloud-images.ubuntu.com');
    expect(parseSourceUrl('http://127.0.0.1:8080/a.img').port).toBe('8080');
  });
  it('rejects every other scheme and non-URLs, naming source_url', () => {
    for (const bad of ['file:///etc/passwd', 'ftp://h/x', 'data:,x', 'javascript:alert(1)', 'gopher://h', '/etc/passwd', 'x', '', 7]) {
      const err = thrown(() => parseSourceUrl(bad));
      expect(isN0Error(err, 'InvalidArgument')).toBe(true);
      expect((err as { field?: string }).field).toBe('source_url');
      expect((err as Error).message).toMatch(/^source_url/);
    }
  });
});

describe('parseSha256', () => {
  it('normalizes case and rejects anything but 64 hex digits', () => {
    expect(parseSha256('AB'.repeat(32))).toBe('ab'.repeat(32));
    for (const bad of ['ab'.repeat(31), `${'ab'.repeat(32)}0`, 'g'.repeat(64), '', undefined]) {
      const err = thrown(() => parseSha256(bad));
      expect(isN0Error(err, 'InvalidArgument')).toBe(true);
      expect((err as { field?: string }).field).toBe('source_sha256');
    }
  });
});

describe('parseContentRange', () => {
  it('reads start, end and total', () => {
    expect(parseContentRange('bytes 100-199/200')).toEqual({ start: 100, end: 199, total: 200 });
    expect(parseContentRange('bytes 0-9/*')).toEqual({ start: 0, end: 9 });
  });
  it('rejects malformed or inverted ranges', () => {
    for (const bad of [undefined, '', 'bytes */200', 'items 0-1/2', 'bytes 9-0/10', 'bytes 1-2/3, 4-5/6']) {
      expect(parseContentRange(bad)).toBeUndefined();
    }
  });
});

describe('ProgressThrottle', () => {
  it('emits at most once per interval and always the final state', () => {
    let now = 1000;
    const seen: Progress[] = [];
    const t = new ProgressThrottle(250, (p) => seen.push(p), () => now);
    const at = (ms: number, done: number) => { now = ms; t.update({ phase: 'download', bytesDone: done, bytesTotal: 100 }); };
    at(1000, 0);
    at(1100, 10);
    at(1249, 20);
    at(1250, 30);
    at(1400, 40);
    at(1600, 50);
    now = 1601;
    t.final({ phase: 'download', bytesDone: 100, bytesTotal: 100 });
    expect(seen.map((p) => p.bytesDone)).toEqual([0, 30, 50, 100]);
  });
  it('works without a listener', () => {
    expect(() => new ProgressThrottle(250, undefined).final({ phase: 'x', bytesDone: 0, bytesTotal: 0 })).not.toThrow();
  });
});

describe('BackgroundFlush', () => {
  /** A handle whose datasync calls are counted and finished (or failed) by the test. */
  function fakeHandle() {
    const pending: { resolve: () => void; reject: (e: Error) => void }[] = [];
    const handle = { datasync: () => new Promise<void>((resolve, reject) => { pending.push({ resolve, reject }); }) } as unknown as FileHandle;
    return { handle, pending };
  }
  const tick = () => new Promise((r) => setImmediate(r));

  it('starts one flush per `everyBytes` written, never two at once, counting from the last one', async () => {
    const { handle, pending } = fakeHandle();
    const flush = new BackgroundFlush(handle, 100);
    flush.wrote(99);
    expect(pending).toHaveLength(0);
    flush.wrote(100);
    expect(pending).toHaveLength(1);
    flush.wrote(250);
    expect(pending).toHaveLength(1);
    pending[0].resolve();
    await tick();
    flush.wrote(260); // 160 unflushed since 100: a second flush
    expect(pending).toHaveLength(2);
    pending[1].resolve();
    await flush.settle();
    flush.wrote(300); // 40 since 260
    expect(pending).toHaveLength(2);
  });

  it('counts from the start again after restart (the file was truncated)', async () => {
    const { handle, pending } = fakeHandle();
    const flush = new BackgroundFlush(handle, 100);
    flush.wrote(500);
    pending[0].resolve();
    await flush.settle();
    flush.restart();
    flush.wrote(120);
    expect(pending).toHaveLength(2);
  });

  it('reports a failed flush from settle and from the next write', async () => {
    const { handle, pending } = fakeHandle();
    const flush = new BackgroundFlush(handle, 10);
    flush.wrote(10);
    pending[0].reject(new Error('EIO'));
    await expect(flush.settle()).rejects.toThrow('EIO');
    expect(() => flush.wrote(100)).toThrow('EIO');
  });
});
