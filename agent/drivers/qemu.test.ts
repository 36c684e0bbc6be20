import { InvalidArgumentError } from '../../api/errors';
import { buildQemuArgs, failureMessage, interpretRunState, qemuOptValue, runStateFromQmp, validateLaunchSpec } from './qemu';
import type { VmLaunchSpec } from './types';

const MiB = 1024 * 1024;
const base: VmLaunchSpec = {
  name: 'vm1',
  uuid: '0f8fad5b-d9cb-469f-a165-70867728950e',
  vcpus: 2,
  memoryBytes: 512 * MiB,
  disks: ['/data/disks/root.qcow2', '/data/disks/data,1.qcow2'],
  seedIso: '/data/vms/vm1/seed.iso',
  nics: [{ tapName: 'n0tp123456789', bridgeName: 'n0br12345678', hardwareAddress: '52:54:00:AA:bb:01' }],
};

function argAfter(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]] : []));
}

describe('buildQemuArgs', () => {
  const args = buildQemuArgs(base, { dir: '/data/vms/vm1', accelerator: 'tcg', diskCache: 'writeback' });

  it('names the sockets, pidfile and identity from the run dir and spec', () => {
    // A guest panic is a QEMU event and a status, not a silent hang or an exit.
    expect(argAfter(args, '-device')).toContain('pvpanic');
    expect(argAfter(args, '-action')).toEqual(['panic=pause']);
    // The second monitor is the agent's event watch (QEMU serves one client per monitor).
    expect(argAfter(args, '-qmp')).toEqual(['unix:/data/vms/vm1/qmp.sock,server=on,wait=off', 'unix:/data/vms/vm1/events.sock,server=on,wait=off']);
    expect(argAfter(args, '-chardev')).toEqual(['socket,id=serial0,path=/data/vms/vm1/serial.sock,server=on,wait=off']);
    expect(argAfter(args, '-serial')).toEqual(['chardev:serial0']);
    expect(argAfter(args, '-vnc')).toEqual(['unix:/data/vms/vm1/vnc.sock']);
    expect(argAfter(args, '-pidfile')).toEqual(['/data/vms/vm1/qemu.pid']);
    expect(argAfter(args, '-uuid')).toEqual([base.uuid]);
    expect(argAfter(args, '-smp')).toEqual(['2']);
    expect(argAfter(args, '-m')).toEqual(['512']);
    expect(args).toEqual(expect.arrayContaining(['-nodefaults', '-no-user-config']));
    expect(argAfter(args, '-display')).toEqual(['none']);
  });

  it('uses cpu max under TCG and cpu host under KVM', () => {
    expect(argAfter(args, '-machine')).toEqual(['q35,accel=tcg']);
    expect(argAfter(args, '-cpu')).toEqual(['max']);
    const kvm = buildQemuArgs(base, { dir: '/d', accelerator: 'kvm', diskCache: 'none' });
    expect(argAfter(kvm, '-machine')).toEqual(['q35,accel=kvm']);
    expect(argAfter(kvm, '-cpu')).toEqual(['host']);
  });

  it('attaches disks in boot order with escaped commas, the seed ISO as a CD-ROM, and tap nics', () => {
    expect(argAfter(args, '-drive')).toEqual([
      'file=/data/disks/root.qcow2,if=none,id=disk0,format=qcow2,cache=writeback',
      'file=/data/disks/data,,1.qcow2,if=none,id=disk1,format=qcow2,cache=writeback',
      'file=/data/vms/vm1/seed.iso,if=ide,media=cdrom,readonly=on,format=raw',
    ]);
    expect(argAfter(args, '-device')).toEqual([
      'pvpanic',
      'virtio-blk-pci,drive=disk0,bootindex=0',
      'virtio-blk-pci,drive=disk1,bootindex=1',
      'virtio-net-pci,netdev=net0,mac=52:54:00:aa:bb:01',
    ]);
    expect(argAfter(args, '-netdev')).toEqual(['tap,id=net0,ifname=n0tp123456789,script=no,downscript=no']);
    expect(args).not.toContain('-kernel');
  });

  it('boots a kernel directly when one is given, keeping the command line one argument', () => {
    const k = buildQemuArgs({ ...base, disks: [], kernel: '/boot/vmlinuz', initrd: '/tmp/i.cpio', kernelArgs: 'console=ttyS0 n0ip=10.0.0.2/24' },
      { dir: '/d', accelerator: 'tcg', diskCache: 'none' });
    expect(argAfter(k, '-kernel')).toEqual(['/boot/vmlinuz']);
    expect(argAfter(k, '-initrd')).toEqual(['/tmp/i.cpio']);
    expect(argAfter(k, '-append')).toEqual(['console=ttyS0 n0ip=10.0.0.2/24']);
  });
});

describe('qemuOptValue', () => {
  it('doubles commas', () => expect(qemuOptValue('a,b,,c')).toBe('a,,b,,,,c'));
});

describe('validateLaunchSpec', () => {
  const bad = (patch: Partial<VmLaunchSpec>, field: string): void => {
    let err: unknown;
    try { validateLaunchSpec({ ...base, ...patch }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe(field);
  };

  it('accepts a good spec', () => expect(() => validateLaunchSpec(base)).not.toThrow());
  it('rejects hostile names, uuids and sizes', () => {
    bad({ name: '../etc' }, 'name');
    bad({ uuid: 'not-a-uuid' }, 'uuid');
    bad({ vcpus: 0 }, 'vcpus');
    bad({ memoryBytes: 512 * MiB + 1 }, 'memory_bytes');
  });
  it('rejects relative or unnormalized paths', () => {
    bad({ disks: ['disk.qcow2'] }, 'disks[0]');
    bad({ disks: ['/a/../b.qcow2'] }, 'disks[0]');
    bad({ seedIso: 'seed.iso' }, 'seed_iso');
    bad({ kernel: undefined, initrd: '/i' }, 'initrd');
  });
  it('rejects bad nics and a VM with nothing to boot', () => {
    bad({ nics: [{ ...base.nics[0], tapName: 'tap,evil' }] }, 'nics[0].tap_name');
    bad({ nics: [{ ...base.nics[0], hardwareAddress: '52:54:00' }] }, 'nics[0].hardware_address');
    bad({ nics: [base.nics[0], base.nics[0]] }, 'nics');
    bad({ disks: [] }, 'disks');
    bad({ kernelArgs: 'a\nb', kernel: '/k' }, 'kernel_args');
  });
});

describe('run state', () => {
  it('maps QMP statuses', () => {
    expect(runStateFromQmp('running')).toBe('running');
    expect(runStateFromQmp('paused')).toBe('paused');
    expect(runStateFromQmp('shutdown')).toBe('shutdown');
    expect(runStateFromQmp('guest-panicked')).toBe('crashed');
    expect(runStateFromQmp('something-new')).toBe('unknown');
  });

  const dead = { processAlive: false, pidfilePresent: false, stopRequested: false, terminatedBySignal: false };
  it('reports a live process by its QMP status, or unknown when QMP is silent', () => {
    expect(interpretRunState({ ...dead, processAlive: true, pidfilePresent: true, qmpStatus: 'paused' })).toBe('paused');
    expect(interpretRunState({ ...dead, processAlive: true, pidfilePresent: true })).toBe('unknown');
  });
  it('tells a crash (pidfile left behind, or killed by a signal) from a clean exit', () => {
    expect(interpretRunState({ ...dead, pidfilePresent: true })).toBe('crashed');
    expect(interpretRunState({ ...dead, terminatedBySignal: true })).toBe('crashed');
    expect(interpretRunState(dead)).toBe('shutdown');
    expect(interpretRunState({ ...dead, pidfilePresent: true, stopRequested: true })).toBe('shutdown');
  });
  it('reports a start that failed as crashed until the VM is asked to stay off, and a guest stopped by KVM as crashed', () => {
    expect(interpretRunState({ ...dead, startFailed: true })).toBe('crashed');
    expect(interpretRunState({ ...dead, startFailed: true, stopRequested: true })).toBe('shutdown');
    expect(interpretRunState({ ...dead, processAlive: true, qmpStatus: 'internal-error' })).toBe('crashed');
  });
  it('words a failure with QEMU\'s last lines', () => {
    expect(failureMessage({ processAlive: true, qmpStatus: 'internal-error', logTail: 'a\nKVM internal error. Suberror: 1\nemulation failure' }))
      .toBe('the guest stopped with status internal-error: a | KVM internal error. Suberror: 1 | emulation failure');
    expect(failureMessage({ processAlive: false, logTail: '' })).toMatch(/QEMU exited without its orderly shutdown .*its log is empty/);
  });
});
