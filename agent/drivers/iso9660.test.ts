import { buildIso9660, ISO_SECTOR, primaryName } from './iso9660';

const files = [
  { name: 'user-data', data: Buffer.from('#cloud-config\n'), mode: 0o600 },
  { name: 'meta-data', data: Buffer.alloc(ISO_SECTOR + 1, 'm'), mode: 0o644 },
];
const sector = (image: Buffer, lba: number) => image.subarray(lba * ISO_SECTOR, (lba + 1) * ISO_SECTOR);

describe('buildIso9660', () => {
  const image = buildIso9660('cidata', files, new Date(Date.UTC(2026, 11, 2, 4, 5, 6)));

  it('writes the descriptors, the Rock Ridge root and the files where the layout says', () => {
    expect(sector(image, 16).subarray(0, 6)).toEqual(Buffer.from('\x01CD001', 'latin1'));
    expect(sector(image, 16).toString('latin1', 40, 72)).toBe('cidata'.padEnd(32));
    expect(sector(image, 16).toString('latin1', 813, 829)).toBe('2026120204050600');
    expect(sector(image, 17).subarray(0, 6)).toEqual(Buffer.from('\x02CD001', 'latin1'));
    expect(sector(image, 17).toString('latin1', 88, 91)).toBe('%/E');
    expect(Buffer.from(sector(image, 17)).swap16().toString('utf16le', 40, 52)).toBe('cidata');
    expect(sector(image, 18).subarray(0, 7)).toEqual(Buffer.from('\xffCD001\x01', 'latin1'));
    // Volume size: the used sectors and genisoimage's 150 of padding.
    const sectors = image.readUInt32LE(16 * ISO_SECTOR + 80);
    expect(sectors * ISO_SECTOR).toBe(image.length);
    expect(image.readUInt32BE(16 * ISO_SECTOR + 84)).toBe(sectors);
    expect(sectors).toBe(26 + 1 + 2 + 150);
    // SUSP's SP opens the root's "." System Use area (where Linux looks for Rock Ridge).
    const root = sector(image, 23);
    expect(root.toString('latin1', 34, 41)).toBe('SP\x07\x01\xbe\xef\x00');
    expect(sector(image, 24).toString('latin1', 0, 2)).toBe('ER');
    // Primary records sorted by their 8.3 names; the data at each record's extent.
    const names: string[] = [];
    for (let at = root[0] + root[root[0]]; root[at] > 0; at += root[at]) {
      names.push(root.toString('latin1', at + 33, at + 33 + root[at + 32]));
      const extent = root.readUInt32LE(at + 2);
      const size = root.readUInt32LE(at + 10);
      const file = files.find((f) => primaryName(f.name) === names[names.length - 1])!;
      expect(image.subarray(extent * ISO_SECTOR, extent * ISO_SECTOR + size)).toEqual(file.data);
    }
    expect(names).toEqual(['META_DAT.;1', 'USER_DAT.;1']);
  });

  it('names files in 8.3 upper case as genisoimage does', () => {
    expect(primaryName('meta-data')).toBe('META_DAT.;1');
    expect(primaryName('network-config')).toBe('NETWORK_.;1');
    expect(primaryName('vendor.data.json')).toBe('VENDOR_D.JSO;1');
  });

  it('refuses what it does not write correctly, rather than writing it wrongly', () => {
    const ok = { name: 'a', data: Buffer.from('x'), mode: 0o600 };
    expect(() => buildIso9660('ci data', [ok])).toThrow(/volume id/);
    expect(() => buildIso9660('a'.repeat(17), [ok])).toThrow(/volume id/);
    expect(() => buildIso9660('cidata', [])).toThrow(/1-16 files/);
    expect(() => buildIso9660('cidata', [{ ...ok, name: 'dir/file' }])).toThrow(/file name/);
    expect(() => buildIso9660('cidata', [{ ...ok, name: 'Upper' }])).toThrow(/file name/);
    expect(() => buildIso9660('cidata', [{ ...ok, mode: 0o10000 }])).toThrow(/mode/);
    expect(() => buildIso9660('cidata', [ok, { ...ok, name: 'a' }])).toThrow(/collide/);
    expect(() => buildIso9660('cidata', [{ ...ok, name: 'meta-data-1' }, { ...ok, name: 'meta-data-2' }])).toThrow(/collide as META_DAT/);
    const many = Array.from({ length: 16 }, (_, i) => ({ ...ok, name: `${String.fromCharCode(97 + i)}${'x'.repeat(63)}` }));
    expect(() => buildIso9660('cidata', many)).toThrow(/one ISO 9660 directory sector/);
  });
});
