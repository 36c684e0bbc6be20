import { isN0Error } from '../../api/errors';
import { alignSize, diskMismatch, parseQemuImgInfo } from './qemuimg';

describe('parseQemuImgInfo', () => {
  it('reads an overlay with its absolute backing file', () => {
    const json = JSON.stringify({
      'backing-filename-format': 'qcow2', 'virtual-size': 20971520, filename: 'ov.qcow2', format: 'qcow2',
      'actual-size': 200704, 'full-backing-filename': '/d/base.qcow2', 'backing-filename': 'base.qcow2', 'dirty-flag': false,
      'format-specific': { type: 'qcow2', data: { compat: '1.1' } },
    });
    expect(parseQemuImgInfo(json, '/d/ov.qcow2')).toEqual({
      path: '/d/ov.qcow2', format: 'qcow2', virtualSize: 20971520, actualSize: 200704, backingFile: '/d/base.qcow2', dirty: false, encrypted: false,
    });
  });
  it('exposes an external data file, which makes an image unsafe to import', () => {
    const json = JSON.stringify({ format: 'qcow2', 'virtual-size': 1048576, 'format-specific': { type: 'qcow2', data: { 'data-file': '/etc/shadow' } } });
    expect(parseQemuImgInfo(json, '/x').dataFile).toBe('/etc/shadow');
  });
  it('treats a missing actual-size as 0 and rejects output without format or size', () => {
    expect(parseQemuImgInfo('{"format":"raw","virtual-size":512}', '/r').actualSize).toBe(0);
    expect(() => parseQemuImgInfo('{"format":"raw"}', '/r')).toThrow(/virtual-size/);
    expect(() => parseQemuImgInfo('qemu-img: oops', '/r')).toThrow(/no JSON/);
  });
});

describe('alignSize', () => {
  it('rounds up to 512-byte sectors', () => {
    expect(alignSize(1)).toBe(512);
    expect(alignSize(512)).toBe(512);
    expect(alignSize(1000)).toBe(1024);
    expect(alignSize(10 * 1024 ** 3)).toBe(10 * 1024 ** 3);
  });
  it('rejects what is not a positive safe integer, naming the field', () => {
    for (const bad of [0, -512, 1.5, Number.NaN, Infinity, 2 ** 53, '1024', undefined]) {
      let err: unknown;
      try { alignSize(bad); } catch (e) { err = e; }
      expect(isN0Error(err, 'InvalidArgument')).toBe(true);
      expect((err as Error).message).toMatch(/^limit_bytes/);
    }
  });
});

describe('diskMismatch', () => {
  const disk = { path: '/d', format: 'qcow2', virtualSize: 1024, actualSize: 1 };
  it('accepts an equal disk and names the first difference otherwise', () => {
    expect(diskMismatch(disk, { format: 'qcow2', virtualSize: 1024 })).toBeUndefined();
    expect(diskMismatch(disk, { format: 'raw', virtualSize: 1024 })).toMatch(/format is qcow2/);
    expect(diskMismatch(disk, { format: 'qcow2', virtualSize: 2048 })).toMatch(/virtual size is 1024, not 2048/);
    expect(diskMismatch(disk, { format: 'qcow2', virtualSize: 1024, backingFile: '/b' })).toMatch(/backing file is \(none\), not \/b/);
    expect(diskMismatch({ ...disk, backingFile: '/b' }, { format: 'qcow2', virtualSize: 1024 })).toMatch(/backing file is \/b/);
  });
});
