// qemu-system-x86_64 driver. Each VM is one detached QEMU process that outlives the agent; all the
// driver knows about it lives in the VM's run directory (pidfile, QMP/serial/VNC sockets, spec.json,
// log), so a restarted agent re-adopts running VMs by reading that directory and asking QMP.
//
// Telling a crash from a clean stop after the process is gone: QEMU removes its pidfile when it
// exits through its orderly path (guest poweroff, QMP quit, SIGTERM) and leaves it behind when it
// is killed or dies. A `stop-requested` marker records that the agent asked for the stop.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DeadlineExceededError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../api/errors';
import { logger } from '../../api/log';
import { validateName } from '../../api/names';
import type { AgentPaths } from '../paths';
import { QmpClient, withQmp } from './qmp';
import { chooseAccelerator, describeProbe, type AcceleratorChoice, type AcceleratorProbe } from './accel-probe';
import { probeCacheKey, readProbeCache, writeProbeCache } from './probe-cache';
import { VmStartFailedError, type Accelerator, type NicSpec, type VmDriver, type VmFailure, type VmLaunchSpec, type VmRunState, type VmState } from './types';

const log = logger('qemu');

export const RUN_FILES = {
  pidfile: 'qemu.pid',
  qmp: 'qmp.sock',
  /** A second QMP monitor that the agent keeps open for events (STOP, GUEST_PANICKED, ...). */
  events: 'events.sock',
  serial: 'serial.sock',
  vnc: 'vnc.sock',
  log: 'qemu.log',
  spec: 'spec.json',
  stopRequested: 'stop-requested',
  /** Why the last start failed ({startedAt, message}); removed by the next start. */
  startFailed: 'start-failed.json',
} as const;

const MiB = 1024 * 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

export type DiskCache = 'none' | 'writeback';

/** Checks every field that reaches QEMU's command line; throws InvalidArgumentError naming it. */
export function validateLaunchSpec(spec: VmLaunchSpec): void {
  validateName(spec.name, 'name');
  if (typeof spec.uuid !== 'string' || !UUID.test(spec.uuid)) throw new InvalidArgumentError(`uuid ${JSON.stringify(spec.uuid)} is not a UUID`, 'uuid');
  if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1 || spec.vcpus > 255) throw new InvalidArgumentError(`vcpus ${spec.vcpus} must be an integer 1-255`, 'vcpus');
  if (!Number.isInteger(spec.memoryBytes) || spec.memoryBytes < 16 * MiB || spec.memoryBytes % MiB !== 0) {
    throw new InvalidArgumentError(`memoryBytes ${spec.memoryBytes} must be a whole number of MiB, at least 16 MiB`, 'memory_bytes');
  }
  const checkPath = (p: unknown, field: string): void => {
    if (typeof p !== 'string' || !path.isAbsolute(p) || p.includes('\0') || path.normalize(p) !== p) {
      throw new InvalidArgumentError(`${field} ${JSON.stringify(p)} must be a normalized absolute path`, field);
    }
  };
  spec.disks.forEach((d, i) => checkPath(d, `disks[${i}]`));
  if (spec.seedIso !== undefined) checkPath(spec.seedIso, 'seed_iso');
  if (spec.kernel !== undefined) checkPath(spec.kernel, 'kernel');
  if (spec.initrd !== undefined) checkPath(spec.initrd, 'initrd');
  if (spec.initrd !== undefined && spec.kernel === undefined) throw new InvalidArgumentError('initrd needs a kernel', 'initrd');
  if (spec.kernelArgs !== undefined && (spec.kernelArgs.includes('\0') || spec.kernelArgs.includes('\n'))) {
    throw new InvalidArgumentError('kernelArgs must be one line', 'kernel_args');
  }
  if (!spec.disks.length && !spec.kernel) throw new InvalidArgumentError('a VM needs at least one disk or a kernel to boot', 'disks');
  spec.nics.forEach((nic, i) => {
    if (!IFNAME.test(nic.tapName)) throw new InvalidArgumentError(`nics[${i}].tapName ${JSON.stringify(nic.tapName)} is not an interface name`, `nics[${i}].tap_name`);
    if (!MAC.test(nic.hardwareAddress)) throw new InvalidArgumentError(`nics[${i}].hardwareAddress ${JSON.stringify(nic.hardwareAddress)} is not a MAC address`, `nics[${i}].hardware_address`);
  });
  const taps = new Set(spec.nics.map((n) => n.tapName));
  if (taps.size !== spec.nics.length) throw new InvalidArgumentError('two nics use the same tap', 'nics');
}

/** QEMU's option syntax splits on ',', and ',,' is a literal comma. */
export function qemuOptValue(value: string): string {
  return value.replace(/,/g, ',,');
}

export interface QemuArgsOptions {
  dir: string;
  accelerator: Accelerator;
  /** The `-cpu` model the accelerator probe found to boot (default: host on kvm, max on tcg). */
  cpuModel?: string;
  diskCache: DiskCache;
  machine?: 'q35' | 'pc';
}

/** The full argument vector (without the binary) for one VM. */
export function buildQemuArgs(spec: VmLaunchSpec, o: QemuArgsOptions): string[] {
  const file = (f: string): string => path.join(o.dir, f);
  const args = [
    '-name', `${qemuOptValue(spec.name)},process=n0stack-${qemuOptValue(spec.name)}`,
    '-uuid', spec.uuid,
    '-nodefaults', '-no-user-config',
    '-machine', `${o.machine ?? 'q35'},accel=${o.accelerator}`,
    '-cpu', o.cpuModel ?? (o.accelerator === 'kvm' ? 'host' : 'max'),
    '-smp', String(spec.vcpus),
    '-m', String(spec.memoryBytes / MiB),
    '-display', 'none',
    '-vga', 'std',
    '-vnc', `unix:${qemuOptValue(file(RUN_FILES.vnc))}`,
    '-pidfile', file(RUN_FILES.pidfile),
    '-qmp', `unix:${qemuOptValue(file(RUN_FILES.qmp))},server=on,wait=off`,
    '-qmp', `unix:${qemuOptValue(file(RUN_FILES.events))},server=on,wait=off`,
    '-chardev', `socket,id=serial0,path=${qemuOptValue(file(RUN_FILES.serial))},server=on,wait=off`,
    '-serial', 'chardev:serial0',
    // A guest kernel that panics tells QEMU (pvpanic, which Linux binds through ACPI) and stays
    // stopped as guest-panicked, so the VM is reported GuestCrashed instead of looking shut down.
    '-device', 'pvpanic',
    '-action', 'panic=pause',
  ];
  // A direct kernel boot claims bootindex 0 for its option ROM (linuxboot); disks follow it.
  const firstBootIndex = spec.kernel ? 1 : 0;
  spec.disks.forEach((disk, i) => {
    // -device (rather than if=virtio) so the disks' order is the firmware's boot order.
    args.push(
      '-drive', `file=${qemuOptValue(disk)},if=none,id=disk${i},format=qcow2,cache=${o.diskCache}`,
      '-device', `virtio-blk-pci,drive=disk${i},bootindex=${firstBootIndex + i}`,
    );
  });
  if (spec.seedIso) args.push('-drive', `file=${qemuOptValue(spec.seedIso)},if=ide,media=cdrom,readonly=on,format=raw`);
  spec.nics.forEach((nic: NicSpec, i) => {
    args.push(
      '-netdev', `tap,id=net${i},ifname=${nic.tapName},script=no,downscript=no`,
      '-device', `virtio-net-pci,netdev=net${i},mac=${nic.hardwareAddress.toLowerCase()}`,
    );
  });
  if (spec.kernel) args.push('-kernel', spec.kernel);
  if (spec.initrd) args.push('-initrd', spec.initrd);
  if (spec.kernelArgs !== undefined) args.push('-append', spec.kernelArgs);
  return args;
}

/** QMP query-status → our run state. */
export function runStateFromQmp(status: string): VmRunState {
  switch (status) {
    case 'running':
      return 'running';
    case 'shutdown':
      return 'shutdown';
    case 'guest-panicked':
    case 'internal-error':
    case 'io-error':
      return 'crashed';
    case 'paused':
    case 'suspended':
    case 'prelaunch':
    case 'debug':
    case 'inmigrate':
    case 'postmigrate':
    case 'finish-migrate':
    case 'save-vm':
    case 'restore-vm':
    case 'watchdog':
    case 'colo':
      return 'paused';
    default:
      return 'unknown';
  }
}

export interface ObservedRunDir {
  processAlive: boolean;
  /** The pidfile is still there (QEMU did not exit through its orderly path). */
  pidfilePresent: boolean;
  qmpStatus?: string;
  /** The agent asked this VM to stop. */
  stopRequested: boolean;
  /** QEMU's log says a signal (not the guest or QMP) ended it. */
  terminatedBySignal: boolean;
  /** The last start of this spec failed (start-failed.json). */
  startFailed?: boolean;
}

/** What the run directory and the process say about a VM. */
export function interpretRunState(o: ObservedRunDir): VmRunState {
  if (o.processAlive) return o.qmpStatus ? runStateFromQmp(o.qmpStatus) : 'unknown';
  if (o.stopRequested) return 'shutdown';
  if (o.startFailed) return 'crashed';
  if (o.pidfilePresent || o.terminatedBySignal) return 'crashed';
  return 'shutdown';
}

/** A process that exists, is not a zombie, and whose command line names this run dir. */
export function isOurQemu(pid: number, dir: string): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.split('\0').some((arg) => arg.includes(path.join(dir, RUN_FILES.qmp)));
  } catch {
    return false;
  }
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** O_DIRECT (cache=none) is refused by tmpfs and some overlay setups. */
function supportsDirectIo(file: string): boolean {
  try {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_DIRECT);
    fs.closeSync(fd);
    return true;
  } catch {
    return false;
  }
}

/** Accelerator probes of this process by their settings (QemuDriver.probeAccelerator). */
const HOST_PROBES = new Map<string, Promise<AcceleratorProbe>>();

/** QEMU events after which a VM's state may differ from what its controller last saw. */
const WATCHED_EVENTS = new Set(['STOP', 'RESUME', 'SHUTDOWN', 'RESET', 'GUEST_PANICKED', 'GUEST_CRASHLOADED']);

interface StoredSpec {
  spec: VmLaunchSpec;
  accelerator: Accelerator;
  cpuModel?: string;
  args: string[];
  startedAt: string;
}

export type { AcceleratorProbe } from './accel-probe';

/** What state() says about a QEMU that is gone or stopped its guest: the condition message. */
export function failureMessage(o: { qmpStatus?: string; processAlive: boolean; logTail: string }): string {
  const tail = o.logTail.split('\n').slice(-5).join(' | ');
  if (o.processAlive) return `the guest stopped with status ${o.qmpStatus}: ${tail || 'QEMU said nothing'}`;
  return `QEMU exited without its orderly shutdown (killed, or it crashed): ${tail || 'its log is empty'}`;
}

export interface QemuDriverOptions {
  paths: AgentPaths;
  qemuBinary?: string;
  kvmProbeTimeoutMs?: number;
  /** auto (default): KVM when the probe guest boots with it, else TCG; kvm: KVM or a start-up error; tcg: never KVM. */
  accelerator?: AcceleratorChoice;
  /** How long start() waits for the pidfile and QMP (default 30 s). */
  startTimeoutMs?: number;
  /** Where /dev/kvm is looked for (tests). */
  kvmDevice?: string;
  /** Remember the probe's verdict here for the rest of this boot (the agent's data dir); none: probe every time. */
  probeCacheFile?: string;
  /**
   * Start QEMU inside this network namespace (`ip netns exec <netns> qemu-system-x86_64 ...`) so
   * it can open taps the network driver made there (its `netns` option); tests use it.
   */
  netns?: string;
}

// Names under /run/netns; no '/' and no leading '.', so it cannot point elsewhere.
const NETNS = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export class QemuDriver implements VmDriver {
  private readonly paths: AgentPaths;
  private readonly binary: string;
  private readonly kvmProbeTimeoutMs: number;
  private readonly startTimeoutMs: number;
  private readonly kvmDevice: string;
  private readonly netns?: string;
  private readonly choice: AcceleratorChoice;
  private readonly probeCacheFile?: string;
  private probe?: Promise<AcceleratorProbe>;
  private readonly monitors = new Map<string, QmpClient | 'connecting'>();
  private readonly listeners = new Set<(name: string) => void>();
  private closed = false;

  constructor(options: QemuDriverOptions) {
    this.paths = options.paths;
    this.binary = options.qemuBinary ?? 'qemu-system-x86_64';
    this.kvmProbeTimeoutMs = options.kvmProbeTimeoutMs ?? 5_000;
    this.startTimeoutMs = options.startTimeoutMs ?? 30_000;
    this.kvmDevice = options.kvmDevice ?? '/dev/kvm';
    this.choice = options.accelerator ?? 'auto';
    this.probeCacheFile = options.probeCacheFile;
    if (options.netns !== undefined) {
      if (!NETNS.test(options.netns) || options.netns.includes('..')) throw new InvalidArgumentError(`netns ${JSON.stringify(options.netns)} is not a valid network namespace name`, 'netns');
      this.netns = options.netns;
    }
  }

  /** The probe's outcome with its reason and duration (probed once per driver instance, again on reprobe()). */
  probeAccelerator(fresh = false): Promise<AcceleratorProbe> {
    if (this.probe) return this.probe;
    // One probe per host and settings in a process: several drivers (tests, one agent per netns)
    // need not each wait for a KVM that hangs to time out.
    const key = this.probeKey();
    let probing = HOST_PROBES.get(key);
    if (!probing) {
      const inputs = { choice: this.choice, binary: this.binary, kvmDevice: this.kvmDevice, timeoutMs: this.kvmProbeTimeoutMs };
      const cacheKey = this.probeCacheFile ? probeCacheKey(inputs) : undefined;
      const cached = cacheKey && !fresh ? readProbeCache(this.probeCacheFile!, cacheKey) : undefined;
      probing = (cached ? Promise.resolve(cached) : chooseAccelerator(inputs)).then((result) => {
        log.info(describeProbe(result), { accelerator: result.accelerator, cpuModel: result.cpuModel, kvm: result.kvm, probeMs: result.probeMs, cached: Boolean(cached) });
        if (cacheKey && !cached) {
          try { writeProbeCache(this.probeCacheFile!, cacheKey, result); } catch (err) { log.warn(`accelerator probe: cannot remember the verdict in ${this.probeCacheFile}: ${(err as Error).message}`); }
        }
        return result;
      }, (err: Error) => {
        HOST_PROBES.delete(key);
        throw err;
      });
      HOST_PROBES.set(key, probing);
    }
    this.probe = probing.catch((err: Error) => { this.probe = undefined; throw err; });
    return this.probe;
  }

  /** What a probe's outcome depends on (PATH: which qemu-system-x86_64 runs). */
  private probeKey(): string {
    return JSON.stringify([this.choice, this.binary, this.kvmDevice, this.kvmProbeTimeoutMs, process.env.PATH]);
  }

  /** Probes again (the host may have changed: a module loaded, nested virtualization enabled); VMs already running keep theirs. */
  reprobe(): Promise<AcceleratorProbe> {
    HOST_PROBES.delete(this.probeKey());
    this.probe = undefined;
    return this.probeAccelerator(true);
  }

  async accelerator(): Promise<Accelerator> {
    return (await this.probeAccelerator()).accelerator;
  }

  private files(name: string): { dir: string; file: (f: string) => string } {
    const dir = this.paths.vmDir(name);
    return { dir, file: (f: string) => path.join(dir, f) };
  }

  async start(spec: VmLaunchSpec): Promise<VmState> {
    validateLaunchSpec(spec);
    const { dir, file } = this.files(spec.name);
    const current = await this.state(spec.name);
    if (current?.pid !== undefined) {
      log.debug('start: already running', { vm: spec.name, pid: current.pid });
      return current;
    }
    for (const p of [...spec.disks, ...(spec.seedIso ? [spec.seedIso] : []), ...(spec.kernel ? [spec.kernel] : []), ...(spec.initrd ? [spec.initrd] : [])]) {
      if (!fs.existsSync(p)) throw new FailedPreconditionError(`VM ${spec.name}: ${p} does not exist`, 'disks');
    }
    const { accelerator, cpuModel } = await this.probeAccelerator();
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const f of [RUN_FILES.pidfile, RUN_FILES.qmp, RUN_FILES.events, RUN_FILES.serial, RUN_FILES.vnc, RUN_FILES.stopRequested, RUN_FILES.startFailed]) fs.rmSync(file(f), { force: true });
    if (fs.existsSync(file(RUN_FILES.log))) fs.renameSync(file(RUN_FILES.log), file(`${RUN_FILES.log}.1`));
    const diskCache: DiskCache = spec.disks.every(supportsDirectIo) ? 'none' : 'writeback';
    const args = buildQemuArgs(spec, { dir, accelerator, cpuModel, diskCache });
    const stored: StoredSpec = { spec, accelerator, cpuModel, args, startedAt: new Date().toISOString() };
    const specTmp = file(`${RUN_FILES.spec}.${randomUUID()}.tmp`);
    fs.writeFileSync(specTmp, `${JSON.stringify(stored, null, 2)}\n`);
    fs.renameSync(specTmp, file(RUN_FILES.spec));

    const logFd = fs.openSync(file(RUN_FILES.log), 'a');
    const startedAt = Date.now();
    let exited: string | undefined;
    try {
      // Own process group and no pipes: the VM must survive the agent's exit or restart.
      // `ip netns exec` execs QEMU in place, so the pidfile still names QEMU itself.
      const [file0, argv] = this.netns === undefined ? [this.binary, args] : ['ip', ['netns', 'exec', this.netns, this.binary, ...args]];
      const child = spawn(file0, argv, { detached: true, stdio: ['ignore', logFd, logFd], cwd: dir, env: process.env });
      child.on('error', (err) => { exited = err.message; });
      child.on('exit', (code, signal) => { exited = `exited (${signal ?? code})`; });
      child.unref();
    } finally {
      fs.closeSync(logFd);
    }
    log.info('started qemu', { vm: spec.name, accelerator, diskCache });

    const deadline = startedAt + this.startTimeoutMs;
    for (;;) {
      if (exited !== undefined) {
        const message = `QEMU ${exited} during start: ${this.logTail(spec.name, 1000)}`;
        // Kept beside the run dir's other facts, so state() reports this start as failed (with
        // QEMU's words) until the next start, whichever agent process asks.
        fs.writeFileSync(file(RUN_FILES.startFailed), `${JSON.stringify({ startedAt: stored.startedAt, message })}\n`);
        this.notify(spec.name);
        throw new VmStartFailedError(`VM ${spec.name}: ${message}`);
      }
      const pid = readPid(file(RUN_FILES.pidfile));
      if (pid !== undefined && fs.existsSync(file(RUN_FILES.qmp))) {
        const st = await this.state(spec.name);
        if (st && st.runState !== 'unknown' && st.pid !== undefined) return st;
      }
      if (Date.now() > deadline) {
        const pidNow = readPid(file(RUN_FILES.pidfile));
        if (pidNow !== undefined && isOurQemu(pidNow, dir)) process.kill(pidNow, 'SIGKILL');
        throw new DeadlineExceededError(`VM ${spec.name}: QEMU did not answer QMP within ${this.startTimeoutMs} ms: ${this.logTail(spec.name)}`);
      }
      // Two stat calls a turn: cheap enough to look often, and every turn missed is added to the
      // VM's start (a 50 ms pause cost 25 ms on average).
      await sleep(10);
    }
  }

  /** The message of the failed start recorded for the current spec.json, if that start failed. */
  private startFailure(name: string, stored: StoredSpec | undefined): string | undefined {
    try {
      const f = JSON.parse(fs.readFileSync(this.files(name).file(RUN_FILES.startFailed), 'utf8')) as { startedAt?: string; message?: string };
      return f.startedAt === stored?.startedAt && typeof f.message === 'string' ? f.message : undefined;
    } catch {
      return undefined;
    }
  }

  /** `listener(name)` runs whenever a VM's QEMU may have changed state by itself (guest stop, panic, exit). */
  subscribe(listener: (name: string) => void): () => void {
    this.listeners.add(listener);
    // Adopt the event sockets of VMs this process did not start (state() connects them).
    void this.list().catch((err: Error) => log.warn('cannot list VMs to watch them', { error: err.message }));
    return () => { this.listeners.delete(listener); };
  }

  private notify(name: string): void {
    for (const l of this.listeners) {
      try { l(name); } catch (err) { log.warn('VM event listener failed', { vm: name, error: (err as Error).message }); }
    }
  }

  /**
   * Keeps one connection to the VM's event monitor while anyone listens. QEMU sends STOP with a
   * later query-status of internal-error after a KVM internal error, GUEST_PANICKED on a panic,
   * SHUTDOWN on poweroff; the socket closes when QEMU exits.
   */
  private watchEvents(name: string): void {
    if (this.closed || this.listeners.size === 0 || this.monitors.has(name)) return;
    const socket = this.files(name).file(RUN_FILES.events);
    if (!fs.existsSync(socket)) return; // started by an agent from before the events monitor
    this.monitors.set(name, 'connecting');
    QmpClient.connect(socket, { timeoutMs: 3_000 }).then((q) => {
      if (this.closed) { q.close(); return; }
      this.monitors.set(name, q);
      q.on('event', (msg: { event: string }) => { if (WATCHED_EVENTS.has(msg.event)) this.notify(name); });
      q.on('close', () => {
        if (this.monitors.get(name) === q) this.monitors.delete(name);
        if (!this.closed) this.notify(name);
      });
    }, (err: Error) => {
      this.monitors.delete(name);
      log.debug('cannot watch VM events', { vm: name, error: err.message });
    });
  }

  /** Closes the event monitors (VMs keep running). */
  close(): void {
    this.closed = true;
    for (const m of this.monitors.values()) if (m !== 'connecting') m.close();
    this.monitors.clear();
    this.listeners.clear();
  }

  /** Last lines of QEMU's own output, for error messages a user can act on. */
  logTail(name: string, bytes = 2000): string {
    try {
      const text = fs.readFileSync(this.files(name).file(RUN_FILES.log), 'utf8');
      return text.slice(-bytes).trim() || 'no output';
    } catch {
      return 'no log';
    }
  }

  /** The pid of the live QEMU of this VM, if any. */
  private livePid(name: string): number | undefined {
    const { dir, file } = this.files(name);
    const pid = readPid(file(RUN_FILES.pidfile));
    return pid !== undefined && isOurQemu(pid, dir) ? pid : undefined;
  }

  async state(name: string): Promise<VmState | undefined> {
    const { dir, file } = this.files(name);
    if (!fs.existsSync(dir)) return undefined;
    let stored: StoredSpec | undefined;
    try { stored = JSON.parse(fs.readFileSync(file(RUN_FILES.spec), 'utf8')) as StoredSpec; } catch { stored = undefined; }
    const pid = this.livePid(name);
    let qmpStatus: string | undefined;
    if (pid !== undefined) {
      try {
        qmpStatus = await withQmp(file(RUN_FILES.qmp), async (q) => (await q.execute<{ status: string }>('query-status')).status, { timeoutMs: 3_000, commandTimeoutMs: 3_000 });
      } catch (err) {
        log.warn('QMP did not answer', { vm: name, error: (err as Error).message });
      }
    }
    const logText = pid === undefined ? this.logTail(name, 4000) : '';
    const startFailed = pid === undefined ? this.startFailure(name, stored) : undefined;
    const runState = interpretRunState({
      processAlive: pid !== undefined,
      pidfilePresent: fs.existsSync(file(RUN_FILES.pidfile)),
      qmpStatus,
      stopRequested: fs.existsSync(file(RUN_FILES.stopRequested)),
      terminatedBySignal: /terminating on signal/.test(logText),
      startFailed: startFailed !== undefined,
    });
    if (pid !== undefined) this.watchEvents(name);
    const failure: VmFailure | undefined = runState !== 'crashed' ? undefined : {
      startedAt: stored?.startedAt,
      message: startFailed ?? failureMessage({ qmpStatus, processAlive: pid !== undefined, logTail: pid === undefined ? logText : this.logTail(name, 1000) }),
    };
    return {
      name,
      pid,
      runState,
      qmpStatus,
      failure,
      startedAt: stored?.startedAt,
      accelerator: stored?.accelerator,
      serialSocket: file(RUN_FILES.serial),
      vncSocket: file(RUN_FILES.vnc),
      qmpSocket: file(RUN_FILES.qmp),
    };
  }

  async list(): Promise<VmState[]> {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(this.paths.vmsDir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: VmState[] = [];
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const specFile = path.join(this.paths.vmsDir, entry.name, RUN_FILES.spec);
      let name: string;
      try {
        name = validateName((JSON.parse(fs.readFileSync(specFile, 'utf8')) as StoredSpec).spec.name);
      } catch {
        log.warn('run directory without a readable spec.json', { dir: entry.name });
        continue;
      }
      // A name whose run dir is elsewhere would be another VM's: trust only the matching one.
      if (this.paths.vmDir(name) !== path.join(this.paths.vmsDir, entry.name)) continue;
      const st = await this.state(name);
      if (st) out.push(st);
    }
    return out;
  }

  private requireLive(name: string, action: string): number {
    const { dir } = this.files(name);
    if (!fs.existsSync(dir)) throw new NotFoundError('VirtualMachine', name);
    const pid = this.livePid(name);
    if (pid === undefined) throw new FailedPreconditionError(`cannot ${action} VM ${name}: it is not running`, 'run_state');
    return pid;
  }

  private qmp<T>(name: string, fn: (q: QmpClient) => Promise<T>): Promise<T> {
    return withQmp(this.files(name).file(RUN_FILES.qmp), fn, { timeoutMs: 5_000, commandTimeoutMs: 10_000 });
  }

  /** Polls until the process is gone; true when it went before the deadline. */
  private async waitForExit(name: string, pid: number, timeoutMs: number): Promise<boolean> {
    const { dir } = this.files(name);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!isOurQemu(pid, dir)) return true;
      await sleep(100);
    }
    return !isOurQemu(pid, dir);
  }

  async shutdown(name: string, options: { hard: boolean; timeoutMs?: number }): Promise<void> {
    const { dir, file } = this.files(name);
    if (!fs.existsSync(dir)) throw new NotFoundError('VirtualMachine', name);
    const pid = this.livePid(name);
    // Also for a QEMU that is gone: a crashed VM asked to stay off is off, not crashed.
    fs.writeFileSync(file(RUN_FILES.stopRequested), `${new Date().toISOString()} ${options.hard ? 'hard' : 'soft'}\n`);
    if (pid === undefined) return;
    if (!options.hard) {
      await this.qmp(name, (q) => q.execute('system_powerdown')).catch((err: Error) => log.warn('system_powerdown failed', { vm: name, error: err.message }));
      if (await this.waitForExit(name, pid, options.timeoutMs ?? 60_000)) return;
      log.warn('guest ignored ACPI powerdown; quitting QEMU', { vm: name, timeoutMs: options.timeoutMs ?? 60_000 });
    }
    // quit closes the connection as QEMU exits, so its reply may never come.
    await this.qmp(name, (q) => q.execute('quit', undefined, 3_000)).catch(() => undefined);
    if (await this.waitForExit(name, pid, 5_000)) return;
    log.warn('QEMU did not quit; killing it', { vm: name, pid });
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    if (!(await this.waitForExit(name, pid, 5_000))) throw new DeadlineExceededError(`VM ${name}: QEMU pid ${pid} survived SIGKILL`);
  }

  async reboot(name: string, options: { hard: boolean }): Promise<void> {
    this.requireLive(name, 'reboot');
    if (options.hard) {
      await this.qmp(name, (q) => q.execute('system_reset'));
      return;
    }
    await this.qmp(name, (q) => q.execute('send-key', {
      keys: [{ type: 'qcode', data: 'ctrl' }, { type: 'qcode', data: 'alt' }, { type: 'qcode', data: 'delete' }],
    }));
  }

  async pause(name: string): Promise<void> {
    this.requireLive(name, 'pause');
    await this.qmp(name, (q) => q.execute('stop'));
  }

  async resume(name: string): Promise<void> {
    this.requireLive(name, 'resume');
    await this.qmp(name, (q) => q.execute('cont'));
  }

  async destroy(name: string): Promise<void> {
    const { dir } = this.files(name);
    if (!fs.existsSync(dir)) return;
    await this.shutdown(name, { hard: true });
    fs.rmSync(dir, { recursive: true, force: true });
    log.info('destroyed VM run directory', { vm: name });
  }
}
