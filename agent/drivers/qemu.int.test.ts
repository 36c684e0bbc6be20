// Boots the busybox test guest under real QEMU (with the accelerator the probe chose) and drives its whole lifecycle through
// QemuDriver: serial console, QMP state, pause/resume, reboots, re-adoption by a second driver,
// crash detection, ACPI and hard shutdown, destroy.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FailedPreconditionError, NotFoundError } from '../../api/errors';
import { AgentPaths } from '../paths';
import { isOurQemu, QemuDriver } from './qemu';
import { QmpClient } from './qmp';
import { buildTestGuest, GUEST_READY_MARKER, type TestGuest } from './testing/guest';
import { SerialConsole } from './testing/serial';
import type { VmLaunchSpec } from './types';

jest.setTimeout(240_000);

const MiB = 1024 * 1024;
const BOOT_TIMEOUT = 90_000;

let tmp: string;
let paths: AgentPaths;
let driver: QemuDriver;
let guest: TestGuest;
const pids = new Set<number>();
const consoles: SerialConsole[] = [];
const clients: QmpClient[] = [];

function spec(name: string): VmLaunchSpec {
  return {
    name,
    uuid: randomUUID(),
    vcpus: 1,
    memoryBytes: 256 * MiB,
    disks: [],
    nics: [],
    kernel: guest.kernel,
    initrd: guest.initrd,
    kernelArgs: `${guest.cmdline} n0hostname=${name}`,
  };
}

async function openConsole(socket: string): Promise<SerialConsole> {
  const c = await SerialConsole.connect(socket, 10_000);
  consoles.push(c);
  return c;
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'n0-qemu-'));
  paths = new AgentPaths(tmp);
  driver = new QemuDriver({ paths });
  guest = await buildTestGuest();
});

afterAll(() => {
  for (const c of consoles) c.close();
  for (const c of clients) c.close();
  for (const pid of pids) {
    if (isOurQemu(pid, path.join(tmp, 'vms', 'guest1')) || isOurQemu(pid, path.join(tmp, 'vms', 'bad'))) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('accelerator', () => {
  it('is kvm or tcg, and tcg without /dev/kvm', async () => {
    const accel = await driver.accelerator();
    expect(['kvm', 'tcg']).toContain(accel);
    if (!fs.existsSync('/dev/kvm')) {
      expect(accel).toBe('tcg');
      expect((await driver.probeAccelerator()).reason).toMatch(/\/dev\/kvm is absent/);
    }
  });
});

describe('a test guest through its lifecycle', () => {
  const name = 'guest1';
  let pid: number;
  let serial: SerialConsole;

  it('refuses a spec whose files are missing, and reports QEMU start failures with its log', async () => {
    await expect(driver.start({ ...spec('bad'), kernel: path.join(tmp, 'no-kernel') })).rejects.toThrow(FailedPreconditionError);
    const notQcow = path.join(tmp, 'not-a-qcow2');
    fs.writeFileSync(notQcow, 'plain text');
    const err = await driver.start({ ...spec('bad'), disks: [notQcow] }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as Error).message).toMatch(/qcow2/i);
    expect((await driver.state('bad'))?.runState).not.toBe('running');
    await driver.destroy('bad');
    expect(fs.existsSync(paths.vmDir('bad'))).toBe(false);
  });

  it('boots to the ready marker on the serial console', async () => {
    const t0 = Date.now();
    const st = await driver.start(spec(name));
    expect(st.pid).toBeDefined();
    pid = st.pid!;
    pids.add(pid);
    const tQmp = Date.now() - t0;
    serial = await openConsole(st.serialSocket);
    await serial.waitFor(GUEST_READY_MARKER, BOOT_TIMEOUT);
    console.log(`${await driver.accelerator()}: spawn -> QMP ready ${tQmp} ms; spawn -> ${GUEST_READY_MARKER} ${Date.now() - t0} ms`);

    const dir = paths.vmDir(name);
    const stored = JSON.parse(fs.readFileSync(path.join(dir, 'spec.json'), 'utf8'));
    expect(stored.spec.name).toBe(name);
    expect(stored.accelerator).toBe(await driver.accelerator());
    expect(Number(fs.readFileSync(path.join(dir, 'qemu.pid'), 'utf8'))).toBe(pid);
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toEqual(expect.arrayContaining(['-uuid', stored.spec.uuid, '-m', '256', '-smp', '1']));
    // Its own process group: the agent's exit does not take the VM with it.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
    expect(pgrp).toBe(pid);
  });

  it('answers a command typed into the serial console', async () => {
    const from = serial.mark;
    serial.write('echo N0$((6*7))OK\n');
    await serial.waitFor(/N042OK\r?\n/, 20_000, from);
  });

  it('is running by pid and QMP, and start is idempotent', async () => {
    const st = await driver.state(name);
    expect(st).toMatchObject({ name, pid, runState: 'running', qmpStatus: 'running', accelerator: await driver.accelerator() });
    expect(fs.existsSync(st!.qmpSocket)).toBe(true);
    expect(fs.existsSync(st!.vncSocket)).toBe(true);
    const again = await driver.start(spec(name));
    expect(again.pid).toBe(pid);
  });

  it('pauses and resumes', async () => {
    await driver.pause(name);
    expect(await driver.state(name)).toMatchObject({ runState: 'paused', qmpStatus: 'paused' });
    await driver.resume(name);
    expect(await driver.state(name)).toMatchObject({ runState: 'running', qmpStatus: 'running' });
  });

  it('emits QMP events to a connected client', async () => {
    const qmp = await QmpClient.connect((await driver.state(name))!.qmpSocket);
    clients.push(qmp);
    const stopped = qmp.waitForEvent('STOP', 5_000);
    await qmp.execute('stop');
    await stopped;
    const resumed = qmp.waitForEvent('RESUME', 5_000);
    await qmp.execute('cont');
    await resumed;
    await expect(qmp.execute('no-such-command')).rejects.toThrow(/CommandNotFound/);
    qmp.close();
  });

  it('hard reboot boots the guest again', async () => {
    const from = serial.mark;
    const t0 = Date.now();
    await driver.reboot(name, { hard: true });
    await serial.waitFor(GUEST_READY_MARKER, BOOT_TIMEOUT, from);
    console.log(`${await driver.accelerator()}: system_reset -> ${GUEST_READY_MARKER} ${Date.now() - t0} ms`);
    expect((await driver.state(name))?.pid).toBe(pid);
  });

  it('soft reboot (ctrl-alt-delete) makes the guest reboot itself', async () => {
    const from = serial.mark;
    await driver.reboot(name, { hard: false });
    // The guest kernel's own restart line (printed even with `quiet`); the boot after it is the
    // same as after system_reset, so the suite does not wait for it a second time.
    await serial.waitFor('reboot: Restarting system', 20_000, from);
    expect((await driver.state(name))?.pid).toBe(pid);
  });

  it('a second driver instance re-adopts the running VM', async () => {
    const second = new QemuDriver({ paths });
    expect(await second.state(name)).toMatchObject({ pid, runState: 'running' });
    const listed = await second.list();
    expect(listed.map((s) => [s.name, s.pid])).toEqual([[name, pid]]);
    await second.pause(name);
    expect((await driver.state(name))?.runState).toBe('paused');
    await second.resume(name);
    expect((await second.state(name))?.runState).toBe('running');
  });

  it('reports crashed after kill -9, and starts again', async () => {
    process.kill(pid, 'SIGKILL');
    const deadline = Date.now() + 5_000;
    while (isOurQemu(pid, paths.vmDir(name)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const st = await driver.state(name);
    expect(st).toMatchObject({ runState: 'crashed', pid: undefined });
    expect((await driver.list()).find((s) => s.name === name)?.runState).toBe('crashed');
    await expect(driver.pause(name)).rejects.toThrow(FailedPreconditionError);

    serial.close();
    const restarted = await driver.start(spec(name));
    expect(restarted.pid).not.toBe(pid);
    pid = restarted.pid!;
    pids.add(pid);
    serial = await openConsole(restarted.serialSocket);
    await serial.waitFor(GUEST_READY_MARKER, BOOT_TIMEOUT);
  });

  it('reports a guest kernel panic as crashed at once (pvpanic, GUEST_PANICKED), telling subscribers', async () => {
    const notified: number[] = [];
    const unsubscribe = driver.subscribe((n) => { if (n === name) notified.push(Date.now()); });
    try {
      // The event monitor connects in the background; give it a moment before the panic.
      await new Promise((r) => setTimeout(r, 500));
      const t0 = Date.now();
      serial.write('echo c > /proc/sysrq-trigger\n');
      let st = await driver.state(name);
      while (st?.runState !== 'crashed' && Date.now() - t0 < 20_000) {
        await new Promise((r) => setTimeout(r, 50));
        st = await driver.state(name);
      }
      console.log(`${await driver.accelerator()}: sysrq panic -> crashed ${Date.now() - t0} ms, first event after ${notified.length ? notified[0] - t0 : '-'} ms: ${st?.failure?.message.slice(0, 120)}`);
      expect(st).toMatchObject({ runState: 'crashed', qmpStatus: 'guest-panicked', pid });
      expect(st?.failure?.message).toMatch(/the guest stopped with status guest-panicked/);
      expect(notified.length).toBeGreaterThan(0);
    } finally {
      unsubscribe();
    }
    // A panicked guest's QEMU lives on; it must go before the VM starts again.
    await driver.shutdown(name, { hard: true });
    serial.close();
    const restarted = await driver.start(spec(name));
    pid = restarted.pid!;
    pids.add(pid);
    serial = await openConsole(restarted.serialSocket);
    await serial.waitFor(GUEST_READY_MARKER, BOOT_TIMEOUT);
  });

  it('soft shutdown powers the guest off through ACPI, and reports shutdown', async () => {
    const t0 = Date.now();
    await driver.shutdown(name, { hard: false, timeoutMs: 30_000 });
    expect(isOurQemu(pid, paths.vmDir(name))).toBe(false);
    // The guest's power-button handler ran and the kernel powered off: ACPI, not the quit fallback.
    await serial.waitFor('n0guest: power button, powering off', 2_000);
    await serial.waitFor('reboot: Power down', 2_000);
    expect(Date.now() - t0).toBeLessThan(30_000);
    console.log(`${await driver.accelerator()}: ACPI powerdown -> QEMU exit ${Date.now() - t0} ms`);
    expect(await driver.state(name)).toMatchObject({ runState: 'shutdown', pid: undefined });
    await driver.shutdown(name, { hard: false });
  });

  it('hard shutdown ends the process; destroy removes the run dir', async () => {
    serial.close();
    const st = await driver.start(spec(name));
    pid = st.pid!;
    pids.add(pid);
    await driver.shutdown(name, { hard: true });
    expect(isOurQemu(pid, paths.vmDir(name))).toBe(false);
    expect((await driver.state(name))?.runState).toBe('shutdown');
    await driver.destroy(name);
    expect(fs.existsSync(paths.vmDir(name))).toBe(false);
    expect(await driver.state(name)).toBeUndefined();
    expect(await driver.list()).toEqual([]);
    await expect(driver.pause(name)).rejects.toThrow(NotFoundError);
  });
});
