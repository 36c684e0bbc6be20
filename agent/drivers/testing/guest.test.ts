import { FailedPreconditionError } from '../../../api/errors';
import { compareKernelVersions, guestInitScript, GUEST_READY_MARKER, kernelVersionOf, resolveModules } from './guest';

const DEP = [
  'kernel/drivers/virtio/virtio.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz',
  'kernel/drivers/virtio/virtio_ring.ko.xz:',
  'kernel/net/core/failover.ko:',
  'kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko',
  'kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz',
  'kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz',
  'kernel/drivers/a.ko: kernel/drivers/b.ko',
  'kernel/drivers/b.ko: kernel/drivers/a.ko',
  '',
].join('\n');

describe('resolveModules', () => {
  it('orders dependencies first and lists each module once', () => {
    const order = resolveModules(DEP, ['virtio_net', 'virtio_blk']);
    expect(order).toEqual([
      'kernel/net/core/failover.ko',
      'kernel/drivers/net/net_failover.ko',
      'kernel/drivers/virtio/virtio_ring.ko.xz',
      'kernel/drivers/virtio/virtio.ko.xz',
      'kernel/drivers/net/virtio_net.ko',
      'kernel/drivers/block/virtio_blk.ko',
    ]);
  });

  it('skips built-in modules and names a missing one', () => {
    expect(resolveModules(DEP, ['virtio_pci'], 'kernel/drivers/virtio/virtio_pci.ko\n')).toEqual([]);
    expect(() => resolveModules(DEP, ['virtio_pci'])).toThrow(FailedPreconditionError);
    expect(() => resolveModules(DEP, ['virtio_pci'])).toThrow(/virtio_pci/);
  });

  it('refuses a dependency cycle', () => {
    expect(() => resolveModules(DEP, ['a'])).toThrow(/cycle/);
  });
});

describe('kernel versions', () => {
  it('reads the version from vmlinuz-<version>', () => {
    expect(kernelVersionOf('/boot/vmlinuz-6.1.0-56-amd64')).toBe('6.1.0-56-amd64');
    expect(() => kernelVersionOf('/boot/bzImage')).toThrow(/vmlinuz/);
  });
  it('sorts numerically, like sort -V', () => {
    const sorted = ['6.1.0-9-amd64', '6.1.0-56-amd64', '5.10.0-30-amd64', '6.10.1-1-amd64'].sort(compareKernelVersions);
    expect(sorted).toEqual(['5.10.0-30-amd64', '6.1.0-9-amd64', '6.1.0-56-amd64', '6.10.1-1-amd64']);
  });
});

describe('guestInitScript', () => {
  it('prints the marker after networking and before the console shell', () => {
    const s = guestInitScript();
    expect(s.startsWith('#!/bin/busybox sh\n')).toBe(true);
    expect(s.indexOf(`echo ${GUEST_READY_MARKER}`)).toBeGreaterThan(s.indexOf('ip addr add'));
    expect(s.indexOf('setsid cttyhack sh')).toBeGreaterThan(s.indexOf(`echo ${GUEST_READY_MARKER}`));
    expect(s).toContain('n0ip=*)');
    expect(s).toMatch(/acpid -f -c \/etc\/acpi -l \/tmp\/acpid.log/);
  });
});
