// Builds real NoCloud seed ISOs (in-process, iso9660.ts) and reads them back with isoinfo and
// blkid beside genisoimage's image of the same files; the files are also parsed by PyYAML, the
// parser cloud-init itself uses, to prove YAML 1.1 reads them as we meant. The guests of
// bootdisk.int.test.ts and e2e/guest.test.ts mount them with Linux's isofs.
import { mkdtempSync, promises as fs, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isN0Error } from '../../api/errors';
import { run } from '../exec';
import { metaDataDocument, networkConfigDocument, NoCloudDriver, parseYaml, renderSeedFiles, userDataDocument } from './cloudinit';
import type { CloudInitSpec } from './types';

jest.setTimeout(30_000);

const spec: CloudInitSpec = {
  instanceId: '8b2e6c52-2d1e-4d7a-9f0a-5c3b1e2d4f60',
  hostname: 'debug-ipv6',
  loginUsername: 'n0user',
  // YAML 1.1 traps and comment characters: all must arrive as the same strings.
  loginPassword: 'yes # 1:20',
  sshAuthorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk n0@example # key: one', 'ssh-rsa AAAAB3NzaC1yc2E on'],
  nics: [
    { tapName: 'n0tp123456789', bridgeName: 'n0br12345678', hardwareAddress: '52:54:00:12:34:56', ipv4Address: '192.168.122.10', ipv4PrefixLength: 24, ipv4Gateway: '192.168.122.1', ipv6Address: 'fd00::10', ipv6PrefixLength: 64 },
    { tapName: 'n0tp987654321', bridgeName: 'n0br87654321', hardwareAddress: '52:54:00:00:00:02' },
  ],
};

describe('NoCloudDriver (isoinfo, blkid, genisoimage)', () => {
  let dir: string;
  /** Where the ISOs go, apart from the test's own scratch files. */
  let out: string;
  const driver = new NoCloudDriver();
  beforeEach(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'n0-seed-test-'));
    out = path.join(dir, 'out');
    await fs.mkdir(out);
  });
  afterEach(() => { rmSync(dir, { recursive: true, force: true }); });

  async function readIsoFile(iso: string, name: string, extension: '-J' | '-R'): Promise<string> {
    return (await run('isoinfo', ['-i', iso, extension, '-x', `/${name}`])).stdout;
  }
  async function pyYaml(text: string): Promise<unknown> {
    const file = path.join(dir, `py-${Math.random().toString(16).slice(2)}.yaml`);
    await fs.writeFile(file, text);
    const script = 'import json, sys, yaml\nprint(json.dumps(yaml.safe_load(open(sys.argv[1]))))';
    return JSON.parse((await run('/usr/bin/python3', ['-c', script, file])).stdout);
  }

  it('builds a cidata ISO whose files parse back to what was rendered', async () => {
    const iso = path.join(out, 'seed.iso');
    await driver.buildSeedIso(iso, spec);

    const { stdout: description } = await run('isoinfo', ['-d', '-i', iso]);
    expect(description).toMatch(/^Volume id: cidata$/m);
    expect(description).toMatch(/Joliet/);
    expect(description).toMatch(/Rock Ridge/);
    const { stdout: listing } = await run('isoinfo', ['-i', iso, '-R', '-f']);
    expect(listing.split('\n').filter(Boolean).sort()).toEqual(['/meta-data', '/network-config', '/user-data']);

    const expected = {
      'meta-data': metaDataDocument(spec), 'user-data': userDataDocument(spec), 'network-config': networkConfigDocument(spec),
    };
    for (const [name, doc] of Object.entries(expected)) {
      const joliet = await readIsoFile(iso, name, '-J');
      expect(await readIsoFile(iso, name, '-R')).toBe(joliet);
      expect(parseYaml(joliet)).toEqual(doc);
      expect(await pyYaml(joliet)).toEqual(doc);
    }
    const userData = await readIsoFile(iso, 'user-data', '-J');
    expect(userData.split('\n')[0]).toBe('#cloud-config');
    expect(userData).toContain('sudo: ALL=(ALL) NOPASSWD:ALL');
    const network = (await pyYaml(await readIsoFile(iso, 'network-config', '-J'))) as any;
    expect(network.ethernets.eth0.match.macaddress).toBe('52:54:00:12:34:56');
    expect(network.ethernets.eth0.addresses).toEqual(['192.168.122.10/24', 'fd00::10/64']);
    expect(network.ethernets.eth1).toEqual({ match: { macaddress: '52:54:00:00:00:02' }, 'set-name': 'eth1', dhcp4: true });

    // The password is inside: root only. No temp files are left beside it.
    expect((await fs.stat(iso)).mode & 0o777).toBe(0o600);
    expect(await fs.readdir(out)).toEqual(['seed.iso']);
  });

  it('replaces an older seed atomically when the spec changes', async () => {
    const iso = path.join(out, 'seed.iso');
    await driver.buildSeedIso(iso, spec);
    const before = await fs.stat(iso);
    await driver.buildSeedIso(iso, { ...spec, hostname: 'renamed', loginPassword: undefined });
    expect((await fs.stat(iso)).ino).not.toBe(before.ino);
    expect(parseYaml(await readIsoFile(iso, 'meta-data', '-J'))).toEqual({ 'instance-id': spec.instanceId, 'local-hostname': 'renamed' });
    expect(parseYaml(await readIsoFile(iso, 'user-data', '-J'))).not.toHaveProperty('chpasswd');
    expect(await fs.readdir(out)).toEqual(['seed.iso']);
  });

  it('reads back through isoinfo and blkid as genisoimage -joliet -rock\'s image of the same files does', async () => {
    const iso = path.join(out, 'seed.iso');
    await driver.buildSeedIso(iso, spec);
    const files = renderSeedFiles(spec);
    const staged = path.join(dir, 'staged');
    await fs.mkdir(staged);
    for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(staged, name), text, { mode: 0o600 });
    const theirs = path.join(dir, 'genisoimage.iso');
    await run('genisoimage', ['-quiet', '-output', theirs, '-volid', 'cidata', '-joliet', '-rock', ...Object.keys(files).map((n) => path.join(staged, n))]);

    // Listings without the columns that must differ (dates, sector numbers).
    const listing = async (image: string, extension: string[]) => (await run('isoinfo', ['-i', image, ...extension, '-l'])).stdout
      .split('\n').filter((l) => /^[d-]/.test(l)).map((l) => l.replace(/ +[A-Z][a-z]{2} +\d+ \d{4} \[ *\d+ (\d+)\]/, ' [$1]'));
    for (const extension of [['-R'], ['-J'], []]) {
      const mine = await listing(iso, extension);
      expect(mine).toEqual(await listing(theirs, extension));
      expect(mine.length).toBe(5);
    }
    expect((await listing(iso, ['-R'])).filter((l) => l.startsWith('-'))).toEqual([
      expect.stringMatching(/^-rw------- +1 +0 +0 +\d+ \[00\] +meta-data $/),
      expect.stringMatching(/^-rw------- +1 +0 +0 +\d+ \[00\] +network-config $/),
      expect.stringMatching(/^-rw------- +1 +0 +0 +\d+ \[00\] +user-data $/),
    ]);
    // The plain ISO 9660 names and contents too, for a reader with neither extension.
    for (const [name, primary] of [['meta-data', 'META_DAT.;1'], ['user-data', 'USER_DAT.;1'], ['network-config', 'NETWORK_.;1']] as const) {
      const plain = (await run('isoinfo', ['-i', iso, '-x', `/${primary}`])).stdout;
      expect(plain).toBe(files[name]);
      expect(plain).toBe((await run('isoinfo', ['-i', theirs, '-x', `/${primary}`])).stdout);
    }
    const description = async (image: string) => (await run('isoinfo', ['-d', '-i', image])).stdout.split('\n').filter((l) => !/^(Application id|Volume size is)/.test(l));
    expect(await description(iso)).toEqual(await description(theirs));
    // What cloud-init's ds-identify asks: blkid's label and type (the Joliet label counts there too).
    const probe = async (image: string) => (await run('blkid', ['-p', '-o', 'export', image])).stdout.split('\n').filter((l) => /^(LABEL|TYPE|VERSION|BLOCK_SIZE)=/.test(l)).sort();
    expect(await probe(iso)).toEqual(['BLOCK_SIZE=2048', 'LABEL=cidata', 'TYPE=iso9660', 'VERSION=Joliet\\ Extension']);
    expect(await probe(iso)).toEqual(await probe(theirs));
  });

  it('refuses an invalid spec before writing anything, and leaves nothing when the write fails', async () => {
    const iso = path.join(out, 'seed.iso');
    const err = await driver.buildSeedIso(iso, { ...spec, sshAuthorizedKeys: ['ssh-rsa A\nssh-rsa B'] }).catch((e) => e);
    expect(isN0Error(err, 'InvalidArgument')).toBe(true);
    expect(err.field).toBe('ssh_authorized_keys');
    expect(await fs.readdir(out)).toEqual([]);
    // A directory in the way: the rename fails, and no temporary file stays beside it.
    await fs.mkdir(iso);
    await fs.writeFile(path.join(iso, 'x'), 'x');
    await expect(driver.buildSeedIso(iso, spec)).rejects.toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(await fs.readdir(out)).toEqual(['seed.iso']);
    expect(isN0Error(await driver.buildSeedIso('seed.iso', spec).catch((e) => e), 'InvalidArgument')).toBe(true);
  });
});
