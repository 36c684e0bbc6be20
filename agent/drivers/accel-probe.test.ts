import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { FailedPreconditionError } from '../../api/errors';
import { bootProbeArgs, chooseAccelerator, describeProbe, parseAcceleratorChoice, probeBootImage, probeStage, PROBE_GUEST_BASE64, PROBE_MARKER, type BootProbeResult, type BootProbeTarget } from './accel-probe';

describe('the probe guest', () => {
  const image = probeBootImage();
  it('is a BIOS boot sector padded to 1 MiB, carrying the marker', () => {
    expect(image.length).toBe(1024 * 1024);
    expect(image[510]).toBe(0x55);
    expect(image[511]).toBe(0xaa);
    expect(image.subarray(0, 512).toString('latin1')).toContain(`\n${PROBE_MARKER}\n`);
  });
  it('is what hack/build-probe-guest.sh assembles from probe-guest.S (binutils)', () => {
    const built = execFileSync(path.join(__dirname, '../../hack/build-probe-guest.sh'), { encoding: 'utf8' }).trim();
    expect(built).toBe(PROBE_GUEST_BASE64);
  });
  it('says how far a guest that stopped got', () => {
    expect(probeStage('')).toBe('started');
    expect(probeStage('1234')).toBe('32 MiB of memory touched');
    expect(probeStage('12345\nN0STACK-PROBE-OK\n')).toBe('50 million loop iterations');
  });
  it('boots with the machine type and CPU model VMs get', () => {
    const args = bootProbeArgs({ accel: 'kvm', cpu: 'host' }, '/tmp/p');
    expect(args.slice(0, 4)).toEqual(['-machine', 'q35,accel=kvm', '-cpu', 'host']);
    expect(args).toContain('isa-debug-exit,iobase=0xf4,iosize=0x04');
    expect(args).toContain('file,id=serial0,path=/tmp/p/serial.log');
  });
});

describe('parseAcceleratorChoice', () => {
  it('takes auto|kvm|tcg in any case, auto when unset, and names the field otherwise', () => {
    expect(parseAcceleratorChoice(undefined)).toBe('auto');
    expect(parseAcceleratorChoice('KVM')).toBe('kvm');
    expect(parseAcceleratorChoice('tcg')).toBe('tcg');
    expect(() => parseAcceleratorChoice('hvf', '--accelerator')).toThrow(/--accelerator must be one of auto\|kvm\|tcg, got "hvf"/);
  });
});

describe('chooseAccelerator', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0-accel-'));
  const device = path.join(dir, 'kvm');
  fs.writeFileSync(device, '');
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A boot probe answering from a table, recording what was tried. */
  function fakeBoot(results: Record<string, BootProbeResult>) {
    const tried: string[] = [];
    const boot = async (_binary: string, t: BootProbeTarget): Promise<BootProbeResult> => {
      const key = `${t.accel}/${t.cpu}`;
      tried.push(key);
      return results[key] ?? { ok: true, outcome: 'booted', reason: 'booted', ms: 5 };
    };
    return { boot, tried };
  }
  const msrAbort: BootProbeResult = { ok: false, outcome: 'aborted', reason: 'QEMU exited (SIGABRT) before the probe guest booted: error: failed to set MSR 0x10a to 0x69', ms: 40 };

  it('uses KVM with -cpu host when the probe guest boots with it', async () => {
    const { boot, tried } = fakeBoot({});
    const p = await chooseAccelerator({ choice: 'auto', binary: 'q', kvmDevice: device, timeoutMs: 1000, boot });
    expect(p).toMatchObject({ accelerator: 'kvm', cpuModel: 'host', kvm: 'works', conditionReason: 'KvmBooted' });
    expect(tried).toEqual(['kvm/host']);
  });
  it('falls back to TCG -cpu max when KVM aborts, and says why with QEMU\'s words', async () => {
    const { boot, tried } = fakeBoot({ 'kvm/host': msrAbort });
    const p = await chooseAccelerator({ choice: 'auto', binary: 'q', kvmDevice: device, timeoutMs: 1000, boot });
    expect(p).toMatchObject({ accelerator: 'tcg', cpuModel: 'max', kvm: 'broken', conditionReason: 'KvmAborted' });
    expect(p.reason).toMatch(/KVM probe failed \(aborted\): .*failed to set MSR 0x10a.*; using TCG -cpu max/);
    expect(tried).toEqual(['kvm/host', 'tcg/max']);
    expect(describeProbe(p)).toMatch(/^accelerator probe: KVM present but broken: using tcg \(-cpu max\)/);
  });
  it('tells a KVM internal error and a hang apart', async () => {
    const internal = await chooseAccelerator({ choice: 'auto', binary: 'q', kvmDevice: device, timeoutMs: 1000, boot: fakeBoot({ 'kvm/host': { ok: false, outcome: 'internal-error', reason: 'KVM internal error. Suberror: 1', ms: 9 } }).boot });
    expect(internal.conditionReason).toBe('KvmInternalError');
    const hang = await chooseAccelerator({ choice: 'auto', binary: 'q', kvmDevice: device, timeoutMs: 1000, boot: fakeBoot({ 'kvm/host': { ok: false, outcome: 'timeout', reason: 'the probe guest did not finish within 1000 ms (it got as far as: 32 MiB of memory touched)', ms: 1000 } }).boot });
    expect(hang.conditionReason).toBe('KvmTimeout');
  });
  it('takes the next TCG CPU model when max does not boot', async () => {
    const { boot } = fakeBoot({ 'kvm/host': msrAbort, 'tcg/max': { ok: false, outcome: 'aborted', reason: 'no max', ms: 1 } });
    expect(await chooseAccelerator({ choice: 'auto', binary: 'q', kvmDevice: device, timeoutMs: 1000, boot })).toMatchObject({ accelerator: 'tcg', cpuModel: 'qemu64' });
  });
  it('does not try KVM without its device', async () => {
    const { boot, tried } = fakeBoot({});
    const p = await chooseAccelerator({ choice: 'auto', binary: 'q', kvmDevice: path.join(dir, 'absent'), timeoutMs: 1000, boot });
    expect(p).toMatchObject({ accelerator: 'tcg', kvm: 'absent', conditionReason: 'KvmAbsent' });
    expect(p.reason).toMatch(/absent is absent; using TCG/);
    expect(tried).toEqual(['tcg/max']);
  });
  it('--accelerator kvm on a host where the probe fails is an error naming the probe\'s output', async () => {
    const err = await chooseAccelerator({ choice: 'kvm', binary: 'q', kvmDevice: device, timeoutMs: 1000, boot: fakeBoot({ 'kvm/host': msrAbort }).boot }).catch((e) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect(err.message).toMatch(/accelerator kvm was requested but the KVM probe failed \(aborted\): .*MSR 0x10a/);
    await expect(chooseAccelerator({ choice: 'kvm', binary: 'q', kvmDevice: path.join(dir, 'absent'), timeoutMs: 1000, boot: fakeBoot({}).boot })).rejects.toThrow(/is absent/);
  });
  it('--accelerator tcg never tries KVM', async () => {
    const { boot, tried } = fakeBoot({});
    const p = await chooseAccelerator({ choice: 'tcg', binary: 'q', kvmDevice: device, timeoutMs: 1000, boot });
    expect(p).toMatchObject({ accelerator: 'tcg', kvm: 'not-tried', conditionReason: 'TcgForced' });
    expect(tried).toEqual(['tcg/max']);
  });
  it('says so when nothing boots at all', async () => {
    const fail: BootProbeResult = { ok: false, outcome: 'cannot-run', reason: 'cannot run q: ENOENT', ms: 1 };
    await expect(chooseAccelerator({ choice: 'auto', binary: 'q', kvmDevice: device, timeoutMs: 1000, boot: fakeBoot({ 'kvm/host': fail, 'tcg/max': fail, 'tcg/qemu64': fail }).boot }))
      .rejects.toThrow(/no accelerator boots on this host: kvm: cannot run q: ENOENT; -cpu max: .*; -cpu qemu64/);
  });
});
