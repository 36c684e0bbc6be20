// Builds real NoCloud seed ISOs with genisoimage and reads them back with isoinfo; the files are
// also parsed by PyYAML, the parser cloud-init itself uses, to prove YAML 1.1 reads them as we meant.
import { mkdtempSync, promises as fs, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isN0Error } from '../../api/errors';
import { run } from '../exec';
import { metaDataDocument, networkConfigDocument, NoCloudDriver, parseYaml, userDataDocument } from './cloudinit';
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

describe('NoCloudDriver (real genisoimage + isoinfo)', () => {
  let dir: string;
  /** Where the ISOs go, apart from the test's own scratch files. */
  let out: string;
  /** genisoimage's staging dirs, which must be gone after every build. */
  let scratch: string;
  let driver: NoCloudDriver;
  beforeEach(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'n0-seed-test-'));
    out = path.join(dir, 'out');
    scratch = path.join(dir, 'scratch');
    await fs.mkdir(out);
    await fs.mkdir(scratch);
    driver = new NoCloudDriver({ scratchDir: scratch });
  });
  afterEach(async () => { expect(await fs.readdir(scratch)).toEqual([]); });
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

  it('refuses an invalid spec before writing anything, and cleans up when genisoimage fails', async () => {
    const iso = path.join(out, 'seed.iso');
    const err = await driver.buildSeedIso(iso, { ...spec, sshAuthorizedKeys: ['ssh-rsa A\nssh-rsa B'] }).catch((e) => e);
    expect(isN0Error(err, 'InvalidArgument')).toBe(true);
    expect(err.field).toBe('ssh_authorized_keys');
    await expect(new NoCloudDriver({ binary: 'false', scratchDir: scratch }).buildSeedIso(iso, spec)).rejects.toThrow(/false -quiet -output/);
    expect(await fs.readdir(out)).toEqual([]);
    expect(isN0Error(await driver.buildSeedIso('seed.iso', spec).catch((e) => e), 'InvalidArgument')).toBe(true);
  });
});
