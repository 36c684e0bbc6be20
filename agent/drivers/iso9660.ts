// A writer of the one kind of ISO 9660 image the agent makes: a cloud-init NoCloud seed, a few
// small files in the root directory, with Joliet and Rock Ridge names as `genisoimage -joliet
// -rock` writes them. Made in the agent's own process: genisoimage took 10 ms alone but over a
// second at p50 in a burst of 20 VMs, a process spawned while the guests kept both cores busy.
// Only what such a seed needs is written (no subdirectories, no boot record, no large files);
// anything else is refused rather than written wrongly. Layout, in 2048-byte sectors:
//   0-15 system area (zeros), 16 primary volume descriptor, 17 Joliet supplementary volume
//   descriptor, 18 terminator, 19-22 path tables (primary L/M, Joliet L/M), 23 primary root
//   directory with Rock Ridge entries, 24 its continuation area (the Rock Ridge ER entry),
//   25 Joliet root directory, then the files, then 150 sectors of padding.
// ECMA-119 (ISO 9660), the Joliet specification (UCS-2 level 3) and IEEE P1282/P1281 (Rock
// Ridge 1.09 and SUSP 1.09) define every byte; the tests read the images back with isoinfo
// beside genisoimage's, and the e2e guests mount them.

export const ISO_SECTOR = 2048;

export interface IsoFile {
  /** The name readers see through Rock Ridge and Joliet: 1-64 of [a-z0-9._-]. */
  name: string;
  data: Buffer;
  /** Permission bits (Rock Ridge), e.g. 0o600. */
  mode: number;
}

const NAME = /^[a-z0-9._-]{1,64}$/;
const VOLUME_ID = /^[A-Za-z0-9_]{1,16}$/;
/** Past the last file, as genisoimage pads: read-ahead beyond the data finds zeros, not an error. */
const PAD_SECTORS = 150;
const FIRST_FILE_SECTOR = 26;
const LBA = { pvd: 16, svd: 17, terminator: 18, pathL: 19, pathM: 20, jPathL: 21, jPathM: 22, root: 23, continuation: 24, jRoot: 25 } as const;

const ER_ID = 'RRIP_1991A';
const ER_DESCRIPTOR = 'THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS';
const ER_SOURCE = 'PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.';

function both16(b: Buffer, at: number, v: number): void {
  b.writeUInt16LE(v, at);
  b.writeUInt16BE(v, at + 2);
}

function both32(b: Buffer, at: number, v: number): void {
  b.writeUInt32LE(v, at);
  b.writeUInt32BE(v, at + 4);
}

/** UCS-2 big-endian, what Joliet stores. */
function ucs2(text: string): Buffer {
  const b = Buffer.alloc(text.length * 2);
  for (let i = 0; i < text.length; i++) b.writeUInt16BE(text.charCodeAt(i), i * 2);
  return b;
}

/** `text` left-aligned in `length` bytes, padded with spaces (UCS-2 spaces for Joliet). */
function field(text: string, length: number, joliet: boolean): Buffer {
  if (!joliet) return Buffer.from(text.padEnd(length, ' ').slice(0, length), 'latin1');
  const b = Buffer.alloc(length);
  ucs2(text.padEnd(Math.floor(length / 2), ' ').slice(0, Math.floor(length / 2))).copy(b);
  return b;
}

/** The 7-byte recording date of a directory record (UTC). */
function recordDate(d: Date): Buffer {
  return Buffer.from([d.getUTCFullYear() - 1900, d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), 0]);
}

/** The 17-byte date of a volume descriptor: 16 digits and the zone (UTC); `undefined` is "not specified". */
function volumeDate(d: Date | undefined): Buffer {
  const b = Buffer.alloc(17);
  if (!d) {
    b.write('0000000000000000', 0, 'latin1');
    return b;
  }
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  b.write(`${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}${p(Math.floor(d.getUTCMilliseconds() / 10))}`, 0, 'latin1');
  return b;
}

interface RecordInput { extent: number; size: number; directory: boolean; id: Buffer; date: Buffer; systemUse?: Buffer }

/** One directory record (ECMA-119 9.1); the System Use area starts at an even offset. */
function directoryRecord(r: RecordInput): Buffer {
  const padId = r.id.length % 2 === 0 ? 1 : 0;
  const su = r.systemUse ?? Buffer.alloc(0);
  let length = 33 + r.id.length + padId + su.length;
  length += length % 2;
  if (length > 255) throw new Error(`an ISO 9660 directory record of ${length} bytes is longer than 255`);
  const b = Buffer.alloc(length);
  b[0] = length;
  both32(b, 2, r.extent);
  both32(b, 10, r.size);
  r.date.copy(b, 18);
  b[25] = r.directory ? 2 : 0;
  both16(b, 28, 1);
  b[32] = r.id.length;
  r.id.copy(b, 33);
  su.copy(b, 33 + r.id.length + padId);
  return b;
}

/** A SUSP entry: signature, length, version 1, body. */
function susp(signature: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(signature, 'latin1'), Buffer.from([4 + body.length, 1]), body]);
}

/** Rock Ridge PX (RRIP 1.09: mode, links, uid, gid), owned by root. */
function px(mode: number, links: number): Buffer {
  const b = Buffer.alloc(32);
  both32(b, 0, mode);
  both32(b, 8, links);
  return susp('PX', b);
}

/** RR: which Rock Ridge entries follow (PX = 1, NM = 8). */
function rr(flags: number): Buffer {
  return susp('RR', Buffer.from([flags]));
}

function extensionReference(): Buffer {
  const [id, des, src] = [ER_ID, ER_DESCRIPTOR, ER_SOURCE].map((s) => Buffer.from(s, 'latin1'));
  return susp('ER', Buffer.concat([Buffer.from([id.length, des.length, src.length, 1]), id, des, src]));
}

/**
 * The primary (8.3, upper-case) identifier genisoimage gives a name: "meta-data" is
 * "META_DAT.;1", "network-config" "NETWORK_.;1". Readers with Rock Ridge or Joliet never see it.
 */
export function primaryName(name: string): string {
  const dot = name.lastIndexOf('.');
  const [base, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot + 1)] : [name, ''];
  const clean = (s: string, n: number) => s.toUpperCase().replace(/[^A-Z0-9_]/g, '_').slice(0, n);
  return `${clean(base, 8)}.${clean(ext, 3)};1`;
}

function pathTable(rootExtent: number, bigEndian: boolean): Buffer {
  const b = Buffer.alloc(10);
  b[0] = 1; // the root's identifier is one byte (0x00)
  if (bigEndian) b.writeUInt32BE(rootExtent, 2); else b.writeUInt32LE(rootExtent, 2);
  if (bigEndian) b.writeUInt16BE(1, 6); else b.writeUInt16LE(1, 6);
  return b;
}

function volumeDescriptor(type: 1 | 2, o: { volumeId: string; sectors: number; pathL: number; pathM: number; root: number; date: Date }): Buffer {
  const joliet = type === 2;
  const b = Buffer.alloc(ISO_SECTOR);
  b[0] = type;
  b.write('CD001', 1, 'latin1');
  b[6] = 1;
  field('LINUX', 32, joliet).copy(b, 8);
  field(o.volumeId, 32, joliet).copy(b, 40);
  both32(b, 80, o.sectors);
  if (joliet) b.write('%/E', 88, 'latin1'); // UCS-2 level 3
  both16(b, 120, 1);
  both16(b, 124, 1);
  both16(b, 128, ISO_SECTOR);
  both32(b, 132, 10);
  b.writeUInt32LE(o.pathL, 140);
  b.writeUInt32BE(o.pathM, 148);
  directoryRecord({ extent: o.root, size: ISO_SECTOR, directory: true, id: Buffer.from([0]), date: recordDate(o.date) }).copy(b, 156);
  for (const [at, length, text] of [[190, 128, ''], [318, 128, ''], [446, 128, ''], [574, 128, 'N0STACK'], [702, 37, ''], [739, 37, ''], [776, 37, '']] as const) {
    field(text, length, joliet).copy(b, at);
  }
  volumeDate(o.date).copy(b, 813);
  volumeDate(o.date).copy(b, 830);
  volumeDate(undefined).copy(b, 847);
  volumeDate(undefined).copy(b, 864);
  b[881] = 1;
  return b;
}

/** Records laid into one directory sector; they never cross it. */
function directorySector(records: Buffer[]): Buffer {
  const b = Buffer.alloc(ISO_SECTOR);
  let at = 0;
  for (const r of records) {
    if (at + r.length > ISO_SECTOR) throw new Error('the files do not fit in one ISO 9660 directory sector');
    r.copy(b, at);
    at += r.length;
  }
  return b;
}

/** The image of `files` in a root directory, labelled `volumeId` (what blkid and cloud-init see). */
export function buildIso9660(volumeId: string, files: readonly IsoFile[], date: Date = new Date()): Buffer {
  if (!VOLUME_ID.test(volumeId)) throw new Error(`ISO volume id ${JSON.stringify(volumeId)} must be 1-16 of [A-Za-z0-9_]`);
  if (files.length === 0 || files.length > 16) throw new Error('an ISO seed holds 1-16 files');
  const primary = new Set<string>();
  for (const f of files) {
    if (!NAME.test(f.name)) throw new Error(`ISO file name ${JSON.stringify(f.name)} must be 1-64 of [a-z0-9._-]`);
    if (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o7777) throw new Error(`ISO file mode ${f.mode} is not a permission mode`);
    const p = primaryName(f.name);
    if (primary.has(p)) throw new Error(`ISO file names collide as ${p}`);
    primary.add(p);
  }
  const date7 = recordDate(date);
  let next = FIRST_FILE_SECTOR;
  const placed = files.map((f) => {
    const extent = next;
    next += Math.ceil(f.data.length / ISO_SECTOR);
    return { ...f, extent, primary: primaryName(f.name) };
  });
  const sectors = next + PAD_SECTORS;

  // Primary root: "." carries SUSP's SP (Rock Ridge is looked for there) and a CE pointing at the
  // ER entry, which is too long for the record itself.
  const dirPx = px(0o40555, 2);
  const er = extensionReference();
  const ce = Buffer.alloc(24);
  both32(ce, 0, LBA.continuation);
  both32(ce, 8, 0);
  both32(ce, 16, er.length);
  const self = Buffer.concat([susp('SP', Buffer.from([0xbe, 0xef, 0])), rr(1), dirPx, susp('CE', ce)]);
  const byPrimary = [...placed].sort((a, b) => (a.primary < b.primary ? -1 : a.primary > b.primary ? 1 : 0));
  const root = directorySector([
    directoryRecord({ extent: LBA.root, size: ISO_SECTOR, directory: true, id: Buffer.from([0]), date: date7, systemUse: self }),
    directoryRecord({ extent: LBA.root, size: ISO_SECTOR, directory: true, id: Buffer.from([1]), date: date7, systemUse: Buffer.concat([rr(1), dirPx]) }),
    ...byPrimary.map((f) => directoryRecord({
      extent: f.extent, size: f.data.length, directory: false, id: Buffer.from(f.primary, 'latin1'), date: date7,
      systemUse: Buffer.concat([rr(1 | 8), susp('NM', Buffer.concat([Buffer.from([0]), Buffer.from(f.name, 'latin1')])), px(0o100000 | f.mode, 1)]),
    })),
  ]);
  // Joliet names sort by their UCS-2 code units; ours are ASCII, so by the name itself.
  const byName = [...placed].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const jRoot = directorySector([
    directoryRecord({ extent: LBA.jRoot, size: ISO_SECTOR, directory: true, id: Buffer.from([0]), date: date7 }),
    directoryRecord({ extent: LBA.jRoot, size: ISO_SECTOR, directory: true, id: Buffer.from([1]), date: date7 }),
    ...byName.map((f) => directoryRecord({ extent: f.extent, size: f.data.length, directory: false, id: ucs2(f.name), date: date7 })),
  ]);

  const image = Buffer.alloc(sectors * ISO_SECTOR);
  const put = (lba: number, data: Buffer) => data.copy(image, lba * ISO_SECTOR);
  put(LBA.pvd, volumeDescriptor(1, { volumeId, sectors, pathL: LBA.pathL, pathM: LBA.pathM, root: LBA.root, date }));
  put(LBA.svd, volumeDescriptor(2, { volumeId, sectors, pathL: LBA.jPathL, pathM: LBA.jPathM, root: LBA.jRoot, date }));
  const terminator = Buffer.alloc(7);
  terminator[0] = 255;
  terminator.write('CD001', 1, 'latin1');
  terminator[6] = 1;
  put(LBA.terminator, terminator);
  put(LBA.pathL, pathTable(LBA.root, false));
  put(LBA.pathM, pathTable(LBA.root, true));
  put(LBA.jPathL, pathTable(LBA.jRoot, false));
  put(LBA.jPathM, pathTable(LBA.jRoot, true));
  put(LBA.root, root);
  put(LBA.continuation, er);
  put(LBA.jRoot, jRoot);
  for (const f of placed) put(f.extent, f.data);
  return image;
}
