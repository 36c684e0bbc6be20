import { InvalidArgumentError } from '../api/errors';
import type { EnsureBlockStorageRequest, EnsureVmRequest } from './api';
import {
  validateCidr,
  validateConsoleKind,
  validateEnsureBlockStorage,
  validateEnsureNetwork,
  validateEnsureVm,
  validateIp,
  validateMac,
  validateVmAction,
} from './validate';

/** The field an InvalidArgumentError names, or 'no error'. */
function fieldOf(fn: () => unknown): string {
  try {
    fn();
    return 'no error';
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toContain((err as InvalidArgumentError).field!);
    return (err as InvalidArgumentError).field!;
  }
}

describe('validateEnsureBlockStorage', () => {
  const base: EnsureBlockStorageRequest = { name: 'disk1', limitBytes: 1 << 30 };
  test.each<[string, Partial<EnsureBlockStorageRequest>, string]>([
    ['empty disk', {}, 'no error'],
    ['url source', { sourceUrl: 'http://127.0.0.1:8080/img.qcow2', sourceSha256: 'a'.repeat(64) }, 'no error'],
    ['copy source', { copyFrom: 'base' }, 'no error'],
    ['overlay source', { backingFrom: 'base' }, 'no error'],
    ['path traversal name', { name: '../etc/passwd' }, 'name'],
    ['upper case name', { name: 'Disk' }, 'name'],
    ['zero size', { limitBytes: 0 }, 'limit_bytes'],
    ['fractional size', { limitBytes: 1.5 }, 'limit_bytes'],
    ['negative size', { limitBytes: -1 }, 'limit_bytes'],
    ['two sources', { sourceUrl: 'http://x/y', copyFrom: 'base' }, 'source'],
    ['three sources', { sourceUrl: 'http://x/y', copyFrom: 'a', backingFrom: 'b' }, 'source'],
    ['file url', { sourceUrl: 'file:///etc/shadow' }, 'source_url'],
    ['not a url', { sourceUrl: 'nope' }, 'source_url'],
    ['sha without url', { sourceSha256: 'a'.repeat(64) }, 'source_sha256'],
    ['bad sha', { sourceUrl: 'http://x/y', sourceSha256: 'xyz' }, 'source_sha256'],
    ['hostile copy_from', { copyFrom: '../x' }, 'copy_from'],
    ['self backing', { backingFrom: 'disk1' }, 'backing_from'],
  ])('%s', (_, patch, field) => {
    expect(fieldOf(() => validateEnsureBlockStorage({ ...base, ...patch }))).toBe(field);
  });
});

describe('validateEnsureNetwork', () => {
  test.each([
    [{ name: 'net1', segmentId: 100, peers: ['10.0.0.2', 'fd00::2'], gatewayCidr: '192.168.0.1/24' }, 'no error'],
    [{ name: 'net1', segmentId: 0, peers: [], vlanId: 100 }, 'no error'],
    [{ name: 'net1', segmentId: 0, peers: [] }, 'segment_id'],
    [{ name: 'net1', segmentId: 1 << 24, peers: [] }, 'segment_id'],
    [{ name: 'net/1', segmentId: 1, peers: [] }, 'name'],
    [{ name: 'net1', segmentId: 1, peers: ['10.0.0.256'] }, 'peers'],
    [{ name: 'net1', segmentId: 1, peers: ['example.com'] }, 'peers'],
    [{ name: 'net1', segmentId: 1, peers: [], gatewayCidr: '192.168.0.1' }, 'gateway_cidr'],
    [{ name: 'net1', segmentId: 1, peers: [], gatewayCidr: '192.168.0.1/33' }, 'gateway_cidr'],
    [{ name: 'net1', segmentId: 1, peers: [], vlanId: 4095 }, 'vlan_id'],
  ])('%j → %s', (req, field) => {
    expect(fieldOf(() => validateEnsureNetwork(req))).toBe(field);
  });
});

describe('validateEnsureVm', () => {
  const base: EnsureVmRequest = {
    name: 'vm1',
    uuid: '0b0e4a3e-6d5f-4a57-9c3a-5b8c2f1e9d00',
    vcpus: 1,
    memoryBytes: 256 * 1024 * 1024,
    blockStorageNames: ['disk1'],
    nics: [{ networkName: 'net1', hardwareAddress: '52:54:00:12:34:56', ipv4Address: '10.0.0.5', ipv4PrefixLength: 24, ipv4Gateway: '10.0.0.1' }],
    sshAuthorizedKeys: ['ssh-ed25519 AAAA user@host'],
    loginUsername: 'n0user',
    runState: 'RUNNING',
  };
  test.each<[string, Partial<EnsureVmRequest>, string]>([
    ['valid', {}, 'no error'],
    ['kernel boot', { kernel: '/boot/vmlinuz', initrd: '/tmp/initrd.cpio', kernelArgs: 'console=ttyS0' }, 'no error'],
    ['bad name', { name: 'vm 1' }, 'name'],
    ['bad uuid', { uuid: 'not-a-uuid' }, 'uuid'],
    ['zero vcpus', { vcpus: 0 }, 'vcpus'],
    ['zero memory', { memoryBytes: 0 }, 'memory_bytes'],
    ['memory not in MiB', { memoryBytes: 256 * 1024 * 1024 + 1 }, 'memory_bytes'],
    ['hostile disk name', { blockStorageNames: ['../../etc/passwd'] }, 'block_storage_names'],
    ['repeated disk', { blockStorageNames: ['a', 'a'] }, 'block_storage_names'],
    ['bad MAC', { nics: [{ networkName: 'net1', hardwareAddress: '52:54:00:12:34' }] }, 'nics[0].hardware_address'],
    ['multicast MAC', { nics: [{ networkName: 'net1', hardwareAddress: '01:00:5e:00:00:01' }] }, 'nics[0].hardware_address'],
    ['bad network name', { nics: [{ networkName: 'Net', hardwareAddress: '52:54:00:12:34:56' }] }, 'nics[0].network_name'],
    ['v6 as v4', { nics: [{ networkName: 'n', hardwareAddress: '52:54:00:12:34:56', ipv4Address: 'fd00::1' }] }, 'nics[0].ipv4_address'],
    ['bad prefix', { nics: [{ networkName: 'n', hardwareAddress: '52:54:00:12:34:56', ipv4PrefixLength: 33 }] }, 'nics[0].ipv4_prefix_length'],
    ['bad v6', { nics: [{ networkName: 'n', hardwareAddress: '52:54:00:12:34:56', ipv6Address: '10.0.0.1' }] }, 'nics[0].ipv6_address'],
    ['duplicate MAC', { nics: [{ networkName: 'a', hardwareAddress: '52:54:00:12:34:56' }, { networkName: 'b', hardwareAddress: '52:54:00:12:34:56' }] }, 'nics'],
    ['bad user', { loginUsername: 'root;rm' }, 'login_username'],
    ['newline in key', { sshAuthorizedKeys: ['ssh-rsa AAA\nruncmd'] }, 'ssh_authorized_keys'],
    ['bad run state', { runState: 'STOPPED' as never }, 'run_state'],
    ['relative kernel', { kernel: 'vmlinuz' }, 'kernel'],
    ['comma in kernel path', { kernel: '/tmp/a,b' }, 'kernel'],
    ['initrd without kernel', { initrd: '/tmp/initrd' }, 'initrd'],
    ['kernel args with newline', { kernel: '/boot/k', kernelArgs: 'a\nb' }, 'kernel_args'],
  ])('%s', (_, patch, field) => {
    expect(fieldOf(() => validateEnsureVm({ ...base, ...patch }))).toBe(field);
  });
});

test('small validators', () => {
  expect(validateMac('52:54:00:AB:cd:ef', 'f')).toBe('52:54:00:AB:cd:ef');
  expect(fieldOf(() => validateMac('52-54-00-ab-cd-ef', 'mac'))).toBe('mac');
  expect(validateIp('::1', 'ip')).toBe('::1');
  expect(fieldOf(() => validateIp('::1', 'ip', 4))).toBe('ip');
  expect(validateCidr('fd00::1/64', 'c')).toBe('fd00::1/64');
  expect(fieldOf(() => validateCidr('10.0.0.1/24/1', 'c'))).toBe('c');
  expect(fieldOf(() => validateVmAction('vm', 'EXPLODE' as never))).toBe('action');
  expect(fieldOf(() => validateVmAction('VM', 'BOOT'))).toBe('name');
  expect(validateConsoleKind('vnc')).toBe('vnc');
  expect(fieldOf(() => validateConsoleKind('spice'))).toBe('kind');
});
