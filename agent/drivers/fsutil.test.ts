import { mkdtempSync, promises as fs, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isN0Error } from '../../api/errors';
import {
  isTempNameOf, publishNoClobber, publishReplace, requireAbsolutePath, sweepTempFiles, tempPathBeside, TargetExistsError,
} from './fsutil';

describe('requireAbsolutePath', () => {
  it('accepts normalized absolute paths', () => {
    expect(requireAbsolutePath('/var/lib/n0stack/disks/a.qcow2')).toBe('/var/lib/n0stack/disks/a.qcow2');
  });
  it('rejects relative, unnormalized, control-character and empty paths, naming the field', () => {
    for (const bad of ['a.qcow2', '/a/../b', '/a//b', '/a/./b', '/a/', '/a\nb', '/a\0b', '', 42]) {
      let err: unknown;
      try { requireAbsolutePath(bad, 'backing_block_storage'); } catch (e) { err = e; }
      expect(isN0Error(err, 'InvalidArgument')).toBe(true);
      expect((err as { field?: string }).field).toBe('backing_block_storage');
    }
  });
});

describe('temp names', () => {
  it('are beside the target and recognisable', () => {
    const t = tempPathBeside('/d/a.qcow2', 'download');
    expect(path.dirname(t)).toBe('/d');
    expect(isTempNameOf(path.basename(t), 'a.qcow2')).toBe(true);
    expect(isTempNameOf('a.qcow2', 'a.qcow2')).toBe(false);
    expect(isTempNameOf('a.qcow2.tmp-xyz', 'a.qcow2')).toBe(false);
    expect(tempPathBeside('/d/a')).not.toBe(tempPathBeside('/d/a'));
  });
});

describe('publish', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(path.join(os.tmpdir(), 'n0-fsutil-')); });
  afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

  it('publishNoClobber moves the file into place and never replaces an existing one', async () => {
    const target = path.join(dir, 'x');
    await fs.writeFile(`${target}.tmp-1`, 'one');
    await publishNoClobber(`${target}.tmp-1`, target);
    expect(await fs.readFile(target, 'utf8')).toBe('one');
    expect(await fs.readdir(dir)).toEqual(['x']);

    await fs.writeFile(`${target}.tmp-2`, 'two');
    await expect(publishNoClobber(`${target}.tmp-2`, target)).rejects.toBeInstanceOf(TargetExistsError);
    expect(await fs.readFile(target, 'utf8')).toBe('one');
  });

  it('publishReplace replaces atomically', async () => {
    const target = path.join(dir, 'y');
    await fs.writeFile(target, 'old');
    await fs.writeFile(`${target}.tmp-1`, 'new');
    await publishReplace(`${target}.tmp-1`, target);
    expect(await fs.readFile(target, 'utf8')).toBe('new');
    expect(await fs.readdir(dir)).toEqual(['y']);
  });

  it('sweepTempFiles removes old leftovers only, never finished files or young temp files', async () => {
    const old = tempPathBeside(path.join(dir, 'a.qcow2'));
    const young = tempPathBeside(path.join(dir, 'b.qcow2'), 'download');
    for (const f of [old, young, path.join(dir, 'a.qcow2'), path.join(dir, 'c.qcow2.tmp-notours')]) await fs.writeFile(f, 'x');
    const past = new Date(Date.now() - 3600_000);
    await fs.utimes(old, past, past);
    await fs.utimes(path.join(dir, 'a.qcow2'), past, past);
    expect(await sweepTempFiles(dir, 600_000)).toEqual([path.basename(old)]);
    expect((await fs.readdir(dir)).sort()).toEqual(['a.qcow2', path.basename(young), 'c.qcow2.tmp-notours'].sort());
    expect(await sweepTempFiles(path.join(dir, 'missing'), 0)).toEqual([]);
  });
});
