// Real qemu-img in a temp dir: every disk operation, checked by reading the files back with
// qemu-img itself (info, compare) and qemu-io (writes a pattern at known offsets).
import { mkdtempSync, promises as fs, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isN0Error } from '../../api/errors';
import { CommandError, run } from '../exec';
import { QemuImgDriver } from './qemuimg';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
jest.setTimeout(60_000);

describe('QemuImgDriver (real qemu-img)', () => {
  let dir: string;
  const disk = new QemuImgDriver();
  const p = (name: string) => path.join(dir, name);

  beforeEach(() => { dir = mkdtempSync(path.join(os.tmpdir(), 'n0-qemuimg-')); });
  afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

  /** Writes byte `pattern` at `offset` through qemu-io, so the image format is respected. */
  async function writePattern(file: string, pattern: number, offset: number, length: number) {
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -P ${pattern} ${offset} ${length}`, file]);
  }
  async function readPattern(file: string, pattern: number, offset: number, length: number) {
    // qemu-io reports a mismatch with "Pattern verification failed" on stdout and, in 7.x, exit 1.
    return run('qemu-io', ['-f', 'qcow2', '-r', '-c', `read -P ${pattern} ${offset} ${length}`, file]).then(
      (r) => !/verification failed/i.test(r.stdout),
      (e: unknown) => { if (e instanceof CommandError && e.exitCode === 1) return false; throw e; },
    );
  }
  async function leftovers() {
    return (await fs.readdir(dir)).filter((n) => n.includes('.tmp-'));
  }

  it('creates a qcow2 disk of the requested size and reports it with info', async () => {
    await disk.create(p('a.qcow2'), 10 * MiB);
    const info = await disk.info(p('a.qcow2'));
    expect(info).toMatchObject({ path: p('a.qcow2'), format: 'qcow2', virtualSize: 10 * MiB });
    expect(info.backingFile).toBeUndefined();
    expect(info.actualSize).toBeGreaterThan(0);
    expect(info.actualSize).toBeLessThan(MiB);
    expect(await leftovers()).toEqual([]);
  });

  it('rounds a size up to whole sectors, and a repeat with the same request is a no-op', async () => {
    await disk.create(p('odd.qcow2'), 1000);
    expect((await disk.info(p('odd.qcow2'))).virtualSize).toBe(1024);
    const before = await fs.stat(p('odd.qcow2'));
    await disk.create(p('odd.qcow2'), 1000);
    const after = await fs.stat(p('odd.qcow2'));
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeMs).toBe(before.mtimeMs);
  });

  it('refuses to overwrite an existing different disk or a non-disk file', async () => {
    await disk.create(p('b.qcow2'), 4 * MiB);
    await writePattern(p('b.qcow2'), 0x5a, 0, 64 * 1024);
    const err = await disk.create(p('b.qcow2'), 8 * MiB).catch((e) => e);
    expect(isN0Error(err, 'AlreadyExists')).toBe(true);
    expect(err.message).toMatch(/virtual size is 4194304, not 8388608/);
    expect(await readPattern(p('b.qcow2'), 0x5a, 0, 64 * 1024)).toBe(true);

    await fs.writeFile(p('notes.txt'), 'not a disk');
    const err2 = await disk.create(p('notes.txt'), 4 * MiB).catch((e) => e);
    expect(isN0Error(err2, 'AlreadyExists')).toBe(true);
    expect(await fs.readFile(p('notes.txt'), 'utf8')).toBe('not a disk');
    expect(await leftovers()).toEqual([]);
  });

  it('makes copy-on-write overlays in constant time on a 1 MiB and a 1 GiB backing disk', async () => {
    // The big base is preallocated so it really holds 1 GiB on disk, plus known data.
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'preallocation=falloc', p('big.qcow2'), String(GiB)]);
    await disk.create(p('small.qcow2'), MiB);
    for (const base of ['big.qcow2', 'small.qcow2']) await writePattern(p(base), 0xab, 0, 256 * 1024);
    await writePattern(p('big.qcow2'), 0xcd, GiB - MiB, MiB);
    expect((await disk.info(p('big.qcow2'))).actualSize).toBeGreaterThanOrEqual(GiB);

    const timings: Record<string, number> = {};
    for (const [base, size] of [['small.qcow2', 2 * MiB], ['big.qcow2', 2 * GiB]] as const) {
      const overlay = p(`over-${base}`);
      const started = process.hrtime.bigint();
      await disk.createOverlay(overlay, p(base), size);
      timings[base] = Number(process.hrtime.bigint() - started) / 1e6;
      const info = await disk.info(overlay);
      expect(info).toMatchObject({ format: 'qcow2', virtualSize: size, backingFile: p(base) });
      expect(info.actualSize).toBeLessThan(MiB);
      expect(await readPattern(overlay, 0xab, 0, 256 * 1024)).toBe(true);
      expect(await readPattern(overlay, 0xee, 0, 4096)).toBe(false);
    }
    expect(await readPattern(p('over-big.qcow2'), 0xcd, GiB - MiB, MiB)).toBe(true);
    // Same content as the base over the base's extent (compare treats the larger overlay's tail as zeros).
    await expect(run('qemu-img', ['compare', '-q', p('small.qcow2'), p('over-small.qcow2')])).resolves.toBeDefined();
    // Writing to the overlay leaves the base untouched.
    await writePattern(p('over-small.qcow2'), 0x11, 0, 4096);
    expect(await readPattern(p('small.qcow2'), 0xab, 0, 4096)).toBe(true);
    // qemu-img create costs tens of ms (hundreds on a loaded machine); the ratio is the real check.
    expect(timings['big.qcow2']).toBeLessThan(3000);
    expect(timings['big.qcow2']).toBeLessThan(timings['small.qcow2'] * 5 + 200);
    process.stdout.write(`overlay create: 1 MiB base ${timings['small.qcow2'].toFixed(0)} ms, 1 GiB base ${timings['big.qcow2'].toFixed(0)} ms\n`);

    // Idempotent, and refuses a different backing or a size below the backing's.
    await disk.createOverlay(p('over-small.qcow2'), p('small.qcow2'), 2 * MiB);
    const wrongBacking = await disk.createOverlay(p('over-small.qcow2'), p('big.qcow2'), 2 * GiB).catch((e) => e);
    expect(isN0Error(wrongBacking, 'AlreadyExists')).toBe(true);
    const tooSmall = await disk.createOverlay(p('over2.qcow2'), p('big.qcow2'), MiB).catch((e) => e);
    expect(isN0Error(tooSmall, 'InvalidArgument')).toBe(true);
    expect(tooSmall.field).toBe('limit_bytes');
    const missing = await disk.createOverlay(p('over3.qcow2'), p('nope.qcow2'), MiB).catch((e) => e);
    expect(isN0Error(missing, 'NotFound')).toBe(true);
    const relative = await disk.createOverlay(p('over4.qcow2'), 'small.qcow2', MiB).catch((e) => e);
    expect(isN0Error(relative, 'InvalidArgument')).toBe(true);
    expect(relative.field).toBe('backing_block_storage');
    expect(await leftovers()).toEqual([]);
  });

  it('copies a disk into an independent, flattened qcow2 and grows it when asked', async () => {
    await disk.create(p('src.qcow2'), 4 * MiB);
    await writePattern(p('src.qcow2'), 0x42, MiB, 128 * 1024);
    await disk.createOverlay(p('src-over.qcow2'), p('src.qcow2'), 4 * MiB);
    await writePattern(p('src-over.qcow2'), 0x43, 2 * MiB, 4096);

    await disk.copy(p('src-over.qcow2'), p('copy.qcow2'));
    const same = await disk.info(p('copy.qcow2'));
    expect(same).toMatchObject({ format: 'qcow2', virtualSize: 4 * MiB });
    expect(same.backingFile).toBeUndefined();
    await expect(run('qemu-img', ['compare', '-q', p('src-over.qcow2'), p('copy.qcow2')])).resolves.toBeDefined();

    await disk.copy(p('src.qcow2'), p('grown.qcow2'), 16 * MiB);
    expect((await disk.info(p('grown.qcow2'))).virtualSize).toBe(16 * MiB);
    expect(await readPattern(p('grown.qcow2'), 0x42, MiB, 128 * 1024)).toBe(true);
    // The copy is independent: the source can go away.
    await fs.rm(p('src.qcow2'));
    expect(await readPattern(p('grown.qcow2'), 0x42, MiB, 128 * 1024)).toBe(true);

    // Repeat is a no-op; a size below the source's is the source's size.
    await disk.copy(p('src-over.qcow2'), p('copy.qcow2'), MiB);
    expect(isN0Error(await disk.copy(p('missing.qcow2'), p('x.qcow2')).catch((e) => e), 'NotFound')).toBe(true);
    expect(await leftovers()).toEqual([]);
  });

  it('grows a disk, keeps its data, and refuses to shrink', async () => {
    await disk.create(p('r.qcow2'), 4 * MiB);
    await writePattern(p('r.qcow2'), 0x77, 3 * MiB, 4096);
    await disk.resize(p('r.qcow2'), 64 * MiB);
    expect((await disk.info(p('r.qcow2'))).virtualSize).toBe(64 * MiB);
    expect(await readPattern(p('r.qcow2'), 0x77, 3 * MiB, 4096)).toBe(true);
    await disk.resize(p('r.qcow2'), 64 * MiB);

    const err = await disk.resize(p('r.qcow2'), 8 * MiB).catch((e) => e);
    expect(isN0Error(err, 'InvalidArgument')).toBe(true);
    expect(err.field).toBe('limit_bytes');
    expect(err.message).toMatch(/only grow/);
    expect((await disk.info(p('r.qcow2'))).virtualSize).toBe(64 * MiB);
    expect(isN0Error(await disk.resize(p('gone.qcow2'), MiB).catch((e) => e), 'NotFound')).toBe(true);
  });

  it('rejects invalid sizes and paths before running anything', async () => {
    for (const size of [0, -1, 1.5, Number.NaN, 2 ** 60]) {
      const err = await disk.create(p('bad.qcow2'), size).catch((e) => e);
      expect(isN0Error(err, 'InvalidArgument')).toBe(true);
    }
    for (const bad of ['rel.qcow2', `${dir}/../x.qcow2`, `${dir}/a\nb.qcow2`]) {
      expect(isN0Error(await disk.create(bad, MiB).catch((e) => e), 'InvalidArgument')).toBe(true);
    }
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it('removes its temporary file when qemu-img fails', async () => {
    const failing = new QemuImgDriver({ binary: 'false' });
    await expect(failing.create(p('f.qcow2'), MiB)).rejects.toThrow(/false create/);
    expect(await fs.readdir(dir)).toEqual([]);
  });
});
