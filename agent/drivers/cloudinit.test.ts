import { isN0Error } from '../../api/errors';
import {
  hostnameFor, metaDataDocument, networkConfigDocument, parseYaml, renderSeedFiles, toYaml, userDataDocument, validateCloudInitSpec,
} from './cloudinit';
import type { CloudInitSpec, NicSpec } from './types';

const uuid = '8b2e6c52-2d1e-4d7a-9f0a-5c3b1e2d4f60';
const nic = (over: Partial<NicSpec> = {}): NicSpec => ({
  tapName: 'n0tp123456789', bridgeName: 'n0br12345678', hardwareAddress: '52:54:00:12:34:56',
  ipv4Address: '192.168.122.10', ipv4PrefixLength: 24, ipv4Gateway: '192.168.122.1', ...over,
});
const spec = (over: Partial<CloudInitSpec> = {}): CloudInitSpec => ({
  instanceId: uuid, hostname: 'vm1', loginUsername: 'n0user', sshAuthorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk n0@example'],
  nics: [nic()], ...over,
});

function fieldOf(fn: () => unknown): string | undefined {
  try { fn(); } catch (e) {
    expect(isN0Error(e, 'InvalidArgument')).toBe(true);
    return (e as { field?: string }).field;
  }
  throw new Error('expected an InvalidArgumentError');
}

describe('meta-data', () => {
  it('carries the instance id and hostname', () => {
    const files = renderSeedFiles(spec());
    expect(parseYaml(files['meta-data'])).toEqual({ 'instance-id': uuid, 'local-hostname': 'vm1' });
    expect(metaDataDocument(spec({ hostname: 'vm1.example.org' }))['local-hostname']).toBe('vm1.example.org');
  });
});

describe('user-data', () => {
  it('is a #cloud-config creating the login user with keys, sudo and bash, no password', () => {
    const text = renderSeedFiles(spec())['user-data'];
    expect(text.startsWith('#cloud-config\n')).toBe(true);
    expect(parseYaml(text)).toEqual({
      hostname: 'vm1',
      ssh_pwauth: false,
      users: [{
        name: 'n0user', sudo: 'ALL=(ALL) NOPASSWD:ALL', shell: '/bin/bash', lock_passwd: true,
        ssh_authorized_keys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk n0@example'],
      }],
    });
  });

  it('sets a password through chpasswd and allows ssh password login when one is given', () => {
    const doc = parseYaml(renderSeedFiles(spec({ loginPassword: 's3cret' }))['user-data']) as Record<string, any>;
    expect(doc.ssh_pwauth).toBe(true);
    expect(doc.users[0].lock_passwd).toBe(false);
    expect(doc.chpasswd).toEqual({ expire: false, users: [{ name: 'n0user', password: 's3cret', type: 'text' }], list: 'n0user:s3cret' });
  });

  // What controllers send: the facade stores only the hash, and the guest gets only the hash.
  const HASH = '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1';

  it('sets a hashed password as the user\'s passwd (no chpasswd) and allows ssh password login', () => {
    const doc = parseYaml(renderSeedFiles(spec({ loginPasswordHash: HASH }))['user-data']) as Record<string, any>;
    expect(doc.ssh_pwauth).toBe(true);
    expect(doc.users[0]).toMatchObject({ name: 'n0user', lock_passwd: false, passwd: HASH });
    expect(doc.chpasswd).toBeUndefined();
  });

  it('gives a hashed password to the default user when there is no login user (chpasswd takes $6$ as a hash)', () => {
    const doc = userDataDocument(spec({ loginUsername: undefined, loginPasswordHash: HASH }));
    expect(doc).toMatchObject({ password: HASH, chpasswd: { expire: false }, ssh_pwauth: true });
  });

  it('prefers the hash when an older controller also sends the clear password', () => {
    const text = renderSeedFiles(spec({ loginPassword: 'clear-one', loginPasswordHash: HASH }))['user-data'];
    expect(text).not.toContain('clear-one');
    expect((parseYaml(text) as Record<string, any>).users[0].passwd).toBe(HASH);
  });

  it('gives keys and password to the default user when there is no login user', () => {
    const doc = userDataDocument(spec({ loginUsername: undefined, loginPassword: 'pw' }));
    expect(doc.users).toBeUndefined();
    expect(doc.ssh_authorized_keys).toEqual(spec().sshAuthorizedKeys);
    expect(doc).toMatchObject({ password: 'pw', chpasswd: { expire: false }, ssh_pwauth: true });
  });

  it('keeps hostile strings as data: YAML syntax, YAML 1.1 booleans and numbers, comments', () => {
    const hostile = ['yes', 'on', 'null', '~', '1:20', '0x1f', '2001-01-01', 'a # not a comment', '- x', 'k: v', "'\"{}[]&*!|>%@`", '#cloud-config'];
    for (const password of hostile) {
      const doc = parseYaml(renderSeedFiles(spec({ loginPassword: password }))['user-data']) as Record<string, any>;
      expect(doc.chpasswd.users[0].password).toBe(password);
    }
    const keys = ['ssh-rsa AAAA # comment: with colon', 'command="echo #x" ssh-ed25519 AAAA', '& *anchor !tag'];
    const doc = parseYaml(renderSeedFiles(spec({ sshAuthorizedKeys: keys }))['user-data']) as Record<string, any>;
    expect(doc.users[0].ssh_authorized_keys).toEqual(keys);
    expect(Object.keys(doc).sort()).toEqual(['hostname', 'ssh_pwauth', 'users']);
  });

  it('toYaml keeps multi-line strings and keys with # or newlines as data', () => {
    const value = { 'a\nb': 'x\ny', '#key': '#value', 'k: v': [': '] };
    expect(parseYaml(toYaml(value))).toEqual(value);
  });
});

describe('network-config', () => {
  it('matches each nic by MAC, names it, and sets addresses and the default route', () => {
    const files = renderSeedFiles(spec({
      nics: [
        nic({ hardwareAddress: '52:54:00:AA:BB:CC', ipv6Address: 'fd00::10', ipv6PrefixLength: 64 }),
        nic({ hardwareAddress: '52:54:00:00:00:02', ipv4Address: '10.0.0.5', ipv4PrefixLength: 16, ipv4Gateway: undefined }),
        nic({ hardwareAddress: '52:54:00:00:00:03', ipv4Address: undefined, ipv4PrefixLength: undefined, ipv4Gateway: undefined }),
      ],
    }));
    expect(parseYaml(files['network-config'])).toEqual({
      version: 2,
      ethernets: {
        eth0: {
          match: { macaddress: '52:54:00:aa:bb:cc' }, 'set-name': 'eth0', dhcp4: false,
          addresses: ['192.168.122.10/24', 'fd00::10/64'], routes: [{ to: '0.0.0.0/0', via: '192.168.122.1' }],
        },
        eth1: { match: { macaddress: '52:54:00:00:00:02' }, 'set-name': 'eth1', dhcp4: false, addresses: ['10.0.0.5/16'] },
        eth2: { match: { macaddress: '52:54:00:00:00:03' }, 'set-name': 'eth2', dhcp4: true },
      },
    });
    // PyYAML (YAML 1.1) reads an unquoted 52:54:00:00:00:02 as a base-60 integer.
    expect(files['network-config']).toContain('macaddress: "52:54:00:00:00:02"');
  });

  it('sets the link MTU the agent found on the nic\'s bridge (1450 behind VXLAN)', () => {
    const files = renderSeedFiles(spec({ nics: [nic({ mtu: 1450 }), nic({ hardwareAddress: '52:54:00:00:00:02' })] }));
    const doc = parseYaml(files['network-config']) as { ethernets: Record<string, Record<string, unknown>> };
    expect(doc.ethernets.eth0.mtu).toBe(1450);
    expect(doc.ethernets.eth1).not.toHaveProperty('mtu');
  });

  it('is an empty v2 config without nics', () => {
    expect(networkConfigDocument(spec({ nics: [] }))).toEqual({ version: 2, ethernets: {} });
  });
});

describe('validateCloudInitSpec', () => {
  it('accepts a full spec', () => {
    expect(() => validateCloudInitSpec(spec({ loginPassword: 'x', hostname: 'a-1.b.c' }))).not.toThrow();
  });
  it('rejects bad values, naming the field', () => {
    expect(fieldOf(() => validateCloudInitSpec(spec({ instanceId: 'a b' })))).toBe('uuid');
    for (const hostname of ['', 'UPPER', 'under_score', 'a..b', '-a', `${'a'.repeat(64)}`, 'a\nb']) {
      expect(fieldOf(() => validateCloudInitSpec(spec({ hostname })))).toBe('hostname');
    }
    for (const loginUsername of ['Root', 'root', '1abc', 'a b', 'a:b', 'a'.repeat(33)]) {
      expect(fieldOf(() => validateCloudInitSpec(spec({ loginUsername })))).toBe('login_username');
    }
    for (const loginPassword of ['', 'a\nroot:x', 'tab\t', 'x'.repeat(257)]) {
      expect(fieldOf(() => validateCloudInitSpec(spec({ loginPassword })))).toBe('login_password');
    }
    for (const loginPasswordHash of ['', 'plain', '$1$abc$def', `$6$abc$${'x'.repeat(85)}`, `$6$abc$${'x'.repeat(86)}\nroot:x`]) {
      expect(fieldOf(() => validateCloudInitSpec(spec({ loginPasswordHash })))).toBe('login_password_hash');
    }
    for (const key of ['', '   ', 'ssh-rsa AAAA\nssh-rsa BBBB', 'ssh-rsa AAAA\r']) {
      expect(fieldOf(() => validateCloudInitSpec(spec({ sshAuthorizedKeys: [key] })))).toBe('ssh_authorized_keys');
    }
    const badNics: Array<Partial<NicSpec>> = [
      { hardwareAddress: '52:54:00:12:34' }, { hardwareAddress: 'zz:54:00:12:34:56' },
      { ipv4Address: '10.0.0.256' }, { ipv4PrefixLength: 33 }, { ipv4PrefixLength: undefined },
      { ipv4Gateway: 'fd00::1' }, { ipv4Address: undefined, ipv4PrefixLength: undefined },
      { ipv6Address: '10.0.0.1', ipv6PrefixLength: 64 }, { ipv6Address: 'fd00::1' },
      { mtu: 67 }, { mtu: 65536 }, { mtu: 1450.5 }, { mtu: '1450' as unknown as number },
    ];
    for (const bad of badNics) expect(fieldOf(() => validateCloudInitSpec(spec({ nics: [nic(bad)] })))).toBe('nics');
    expect(fieldOf(() => validateCloudInitSpec(spec({ nics: [nic(), nic({ hardwareAddress: '52:54:00:12:34:56' })] })))).toBe('nics');
  });
});

describe('hostnameFor', () => {
  it('turns VM names into hostnames', () => {
    expect(hostnameFor('debug_ipv6')).toBe('debug-ipv6');
    expect(hostnameFor('web.example')).toBe('web.example');
    expect(hostnameFor('a'.repeat(100))).toHaveLength(63);
    expect(() => validateCloudInitSpec(spec({ hostname: hostnameFor('_x_') }))).not.toThrow();
  });
});
