import { InvalidArgumentError } from '../../../api/errors';
import {
  BOOTDISK_MODULES, bootDiskInitScript, buildTestBootDisk, CLOUDINIT_DONE_MARKER, NET_CONFIGURED_MARKER, syslinuxConfig, validateKernelArgs,
} from './bootdisk';
import { GUEST_MODULES, GUEST_READY_MARKER, resolveModules } from './guest';

// The seed-reading part of a Debian 6.1 modules.dep, trimmed.
const DEP = [
  'kernel/drivers/scsi/scsi_common.ko:',
  'kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko',
  'kernel/drivers/cdrom/cdrom.ko:',
  'kernel/drivers/scsi/sr_mod.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko kernel/drivers/cdrom/cdrom.ko',
  'kernel/drivers/ata/libata.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko',
  'kernel/drivers/ata/libahci.ko: kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko',
  'kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko',
  'kernel/fs/isofs/isofs.ko.xz: kernel/drivers/cdrom/cdrom.ko',
  '',
].join('\n');

describe('BOOTDISK_MODULES', () => {
  it('keeps the test guest modules and adds the AHCI CD-ROM and ISO 9660 ones', () => {
    expect(BOOTDISK_MODULES.slice(0, GUEST_MODULES.length)).toEqual([...GUEST_MODULES]);
    expect(BOOTDISK_MODULES).toEqual(expect.arrayContaining(['ahci', 'sr_mod', 'isofs']));
  });

  it('resolves to a load order with the CD-ROM stack under sr_mod and isofs', () => {
    const order = resolveModules(DEP, ['ahci', 'sr_mod', 'isofs']);
    const at = (m: string): number => order.findIndex((f) => f.includes(`/${m}.ko`));
    expect(order).toHaveLength(8);
    expect(at('scsi_mod')).toBeLessThan(at('libata'));
    expect(at('libahci')).toBeLessThan(at('ahci'));
    expect(at('cdrom')).toBeLessThan(at('sr_mod'));
    expect(at('cdrom')).toBeLessThan(at('isofs'));
  });
});

describe('syslinuxConfig', () => {
  it('starts with SERIAL and boots the kernel and initramfs at once with the given command line', () => {
    const lines = syslinuxConfig('console=ttyS0 quiet').split('\n');
    expect(lines[0]).toBe('SERIAL 0 115200');
    expect(lines).toEqual(expect.arrayContaining(['DEFAULT linux', 'PROMPT 0', 'TIMEOUT 1', 'LABEL linux', '  KERNEL /vmlinuz', '  INITRD /initrd.img', '  APPEND console=ttyS0 quiet']));
  });

  it('refuses command lines that could add config lines or odd characters', () => {
    for (const bad of ['a\nKERNEL /x', 'a"b', 'a;b', 'a$b', 'a\tb']) {
      expect(() => syslinuxConfig(bad)).toThrow(InvalidArgumentError);
    }
    expect(validateKernelArgs('loglevel=7 printk.time=1 n0x=a,b:c/d+e')).toBe('loglevel=7 printk.time=1 n0x=a,b:c/d+e');
  });
});

describe('bootDiskInitScript', () => {
  const script = bootDiskInitScript();

  it('prints the markers in order: ready, network, cloud-init done, then keeps a shell', () => {
    const ready = script.indexOf(`echo ${GUEST_READY_MARKER}`);
    const net = script.indexOf(`echo "${NET_CONFIGURED_MARKER} $a"`);
    const done = script.indexOf(`echo ${CLOUDINIT_DONE_MARKER}`);
    const shell = script.indexOf('setsid cttyhack sh -l');
    expect(ready).toBeGreaterThan(0);
    expect(net).toBeGreaterThan(ready);
    expect(done).toBeGreaterThan(net);
    expect(shell).toBeGreaterThan(done);
  });

  it('finds the seed by its ISO volume id, mounts it read-only and bounds every wait', () => {
    expect(script).toContain('skip=32808 count=32');
    expect(script).toContain('[ "$label" = cidata ]');
    expect(script).toContain('mount -t iso9660 -o ro "$seed" /mnt/cidata');
    // Every while loop has a counter limit.
    const loops = script.split('\n').filter((l) => /^\s*while \[/.test(l));
    expect(loops.length).toBeGreaterThanOrEqual(3);
    for (const l of loops) expect(l).toMatch(/\$i -lt \d+/);
  });

  it('applies meta-data and network-config with busybox tools only, and serves the hostname', () => {
    expect(script).toContain('awk -f /etc/n0boot/network-config.awk');
    expect(script).toContain('awk -f /etc/n0boot/meta-data.awk /mnt/cidata/meta-data');
    expect(script).toContain('ip route add default via "$gw" dev "$dev"');
    expect(script).toContain('httpd -p 80 -h /www');
    expect(script).toContain('acpid -f -c /etc/acpi');
  });
});

describe('buildTestBootDisk option checks (before any tool runs)', () => {
  it('names the bad option', async () => {
    await expect(buildTestBootDisk({ cacheDir: 'relative/dir' })).rejects.toMatchObject({ field: 'cacheDir' });
    await expect(buildTestBootDisk({ cacheDir: '/tmp/../etc' })).rejects.toMatchObject({ field: 'cacheDir' });
    await expect(buildTestBootDisk({ sizeMiB: 8 })).rejects.toMatchObject({ field: 'sizeMiB' });
    await expect(buildTestBootDisk({ kernelArgs: 'x\nKERNEL /etc/passwd' })).rejects.toMatchObject({ field: 'kernelArgs' });
  });
});
