// The accelerator probe against real QEMU on whatever this machine is, and against a stand-in
// QEMU that breaks with KVM the three ways hosts do (abort on -cpu host, KVM internal error, hang).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AgentPaths } from '../paths';
import { bootProbe, chooseAccelerator, describeProbe } from './accel-probe';
import { QemuDriver } from './qemu';
import { installStandInQemu, type StandInKvm, type StandInQemu } from './testing/standin-qemu';

jest.setTimeout(120_000);

const REAL = 'qemu-system-x86_64';
let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'n0-probe-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('this host: the probe says which kind of host it is', async () => {
  const probe = await chooseAccelerator({ choice: 'auto', binary: REAL, kvmDevice: '/dev/kvm', timeoutMs: 10_000 });
  // The line CI output shows, so a run says which kind of host it was.
  console.log(describeProbe(probe));
  expect(['kvm', 'tcg']).toContain(probe.accelerator);
  if (!fs.existsSync('/dev/kvm')) expect(probe).toMatchObject({ accelerator: 'tcg', kvm: 'absent' });
  if (probe.accelerator === 'kvm') expect(probe).toMatchObject({ cpuModel: 'host', kvm: 'works' });
  else expect(probe.reason).toMatch(/using TCG -cpu (max|qemu64)/);
});

test('TCG boots the probe guest, and a deadline too short for it is a timeout', async () => {
  const ok = await bootProbe(REAL, { accel: 'tcg', cpu: 'max' }, 10_000);
  expect(ok).toMatchObject({ ok: true, outcome: 'booted' });
  console.log(`probe guest under TCG: ${ok.ms} ms`);
  const late = await bootProbe(REAL, { accel: 'tcg', cpu: 'max' }, 1);
  expect(late).toMatchObject({ ok: false, outcome: 'timeout' });
});

describe.each<[StandInKvm, RegExp, string]>([
  ['abort', /failed to set MSR 0x10a to 0x69/, 'KvmAborted'],
  ['internal-error', /KVM internal error/, 'KvmInternalError'],
  ['hang', /did not finish within 3000 ms \(it got as far as: started\)/, 'KvmTimeout'],
])('a host whose KVM breaks by %s', (mode, said, conditionReason) => {
  const savedPath = process.env.PATH;
  let standIn: StandInQemu;
  // The stand-in is first on PATH, as it would be for the agent; /dev/null stands for a present /dev/kvm.
  beforeAll(() => { standIn = installStandInQemu({ kvm: mode }); process.env.PATH = standIn.path; });
  afterAll(() => { process.env.PATH = savedPath; standIn?.remove(); });

  it('falls back to TCG, saying why, within its deadline', async () => {
    const driver = new QemuDriver({ paths: new AgentPaths(path.join(tmp, mode)), kvmDevice: '/dev/null', kvmProbeTimeoutMs: 3_000 });
    const probe = await driver.probeAccelerator();
    console.log(`stand-in KVM ${mode}: ${describeProbe(probe)}`);
    expect(probe).toMatchObject({ accelerator: 'tcg', cpuModel: 'max', kvm: 'broken', conditionReason });
    expect(probe.reason).toMatch(said);
    expect(probe.probeMs).toBeLessThan(3_000 + 10_000);
  });

  it('--accelerator kvm is a start-up error naming the probe\'s output', async () => {
    const driver = new QemuDriver({ paths: new AgentPaths(path.join(tmp, `${mode}-forced`)), kvmDevice: '/dev/null', kvmProbeTimeoutMs: 3_000, accelerator: 'kvm' });
    await expect(driver.accelerator()).rejects.toThrow(new RegExp(`accelerator kvm was requested but the KVM probe failed .*${said.source}`));
  });
});

describe('a restarted agent on a host whose KVM hangs', () => {
  const savedPath = process.env.PATH;
  let standIn: StandInQemu;
  beforeAll(() => { standIn = installStandInQemu({ kvm: 'hang' }); process.env.PATH = standIn.path; });
  afterAll(() => { process.env.PATH = savedPath; standIn?.remove(); });

  /** A QemuDriver from a fresh copy of the module: nothing remembered in memory, as after a restart. */
  function restartedDriver(cacheFile: string): QemuDriver {
    let Fresh: typeof QemuDriver | undefined;
    jest.isolateModules(() => { Fresh = (jest.requireActual('./qemu') as typeof import('./qemu')).QemuDriver; });
    return new Fresh!({ paths: new AgentPaths(path.join(tmp, 'restarted')), kvmDevice: '/dev/null', kvmProbeTimeoutMs: 3_000, probeCacheFile: cacheFile });
  }

  it('reuses this boot\'s verdict instead of waiting out the probe again; SIGHUP\'s reprobe and a new QEMU binary probe afresh', async () => {
    const cacheFile = path.join(tmp, 'restarted', 'accel-probe.json');
    const first = await restartedDriver(cacheFile).probeAccelerator();
    expect(first).toMatchObject({ accelerator: 'tcg', kvm: 'broken', conditionReason: 'KvmTimeout' });
    expect(first.probeMs).toBeGreaterThanOrEqual(3_000);
    expect(fs.existsSync(cacheFile)).toBe(true);

    const started = Date.now();
    const again = await restartedDriver(cacheFile).probeAccelerator();
    const tookMs = Date.now() - started;
    console.log(`restarted agent: verdict in ${tookMs} ms (first probe ${first.probeMs} ms): ${describeProbe(again)}`);
    expect(again).toMatchObject({ accelerator: 'tcg', cpuModel: first.cpuModel, kvm: 'broken', conditionReason: 'KvmTimeout', probeMs: 0 });
    expect(again.reason).toMatch(/this boot's probe of .*; SIGHUP probes again/);
    expect(tookMs).toBeLessThan(1_000);

    const reprobed = await restartedDriver(cacheFile).reprobe();
    expect(reprobed.probeMs).toBeGreaterThanOrEqual(3_000);
    expect(reprobed.reason).not.toMatch(/this boot's probe/);

    // Another QEMU (an upgrade replaces the binary): the remembered verdict does not apply to it.
    const binary = path.join(standIn.dir, 'qemu-system-x86_64');
    const later = new Date(Date.now() + 5_000);
    fs.utimesSync(binary, later, later);
    const upgraded = await restartedDriver(cacheFile).probeAccelerator();
    expect(upgraded.probeMs).toBeGreaterThanOrEqual(3_000);
  });
});
