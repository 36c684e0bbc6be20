// HostAgent: AgentApi on this host, with the drivers. It keeps no database: disks are files under
// <dataDir>/disks, VMs are QEMU processes with run dirs under <dataDir>/vms (their last ensure
// request is kept there as ensure.json so BOOT and observe work after an agent restart), and
// networks are whatever the kernel reports. Only long fetches/copies live in memory, by name.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../api/errors';
import { logger } from '../api/log';
import { nameProblem, validateName } from '../api/names';
import type {
  AgentApi,
  BlockStorageContent,
  BlockStorageObservation,
  ConsoleStream,
  EnsureBlockStorageRequest,
  EnsureNetworkRequest,
  EnsureVmRequest,
  NodeObservation,
  VmAction,
  VmActionOptions,
  VmObservation,
} from './api';
import type {
  Accelerator,
  CloudInitDriver,
  DiskDriver,
  DiskInfo,
  FetchDriver,
  NetworkDriver,
  NetworkState,
  NicSpec,
  Progress,
  VmDriver,
  VmLaunchSpec,
  VmState,
} from './drivers/types';
import { VmStartFailedError } from './drivers/types';
import type { AcceleratorProbe } from './drivers/accel-probe';
import { AgentPaths, bridgeName, tapName } from './paths';
import {
  MAX_NICS,
  positiveInteger,
  validateConsoleKind,
  validateEnsureBlockStorage,
  validateEnsureNetwork,
  validateEnsureVm,
  validateVmAction,
} from './validate';
import { agentVersion } from './version';
import { sweepTempFiles } from './drivers/fsutil';

const log = logger('agent');

export interface AgentDrivers {
  disk: DiskDriver;
  fetch: FetchDriver;
  network: NetworkDriver;
  cloudInit: CloudInitDriver;
  vm: VmDriver;
}

export interface HostAgentOptions {
  nodeName: string;
  dataDir: string;
  drivers: AgentDrivers;
  /** Host interface VLAN networks hang off; without it, VLAN networks are refused. */
  uplink?: string;
  /** ACPI shutdown grace before QEMU is told to quit (SHUTDOWN action / runState). */
  shutdownTimeoutMs?: number;
  /** Deadline for connecting to a VM's console socket. */
  consoleConnectTimeoutMs?: number;
  /** How long EnsureBlockStorage holds its answer for a running fetch or copy to end (default 1000 ms). */
  completionWaitMs?: number;
}

interface BackgroundOperation {
  kind: 'fetch' | 'copy';
  progress: Progress;
  abort: AbortController;
  done: Promise<void>;
  /** What the finished work made, as its driver saw it: the answer held open for it needs no qemu-img info. */
  made?: DiskInfo;
}

/** Serialises operations per key: two reconciles of one VM must not interleave start and delete. */
class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

function exists(file: string): boolean {
  return fs.existsSync(file);
}

const ALIVE: readonly string[] = ['running', 'paused'];

/** One executed action id of a VM: `outcome` is missing while (or if the agent died while) it ran. */
interface ActionRecord { id: string; action: VmAction; outcome?: VmObservation }
/** Ids kept per VM: far more than the controller can have outstanding (one action_request at a time). */
const ACTION_JOURNAL_LENGTH = 32;

function validateActionId(id: string): string {
  if (typeof id !== 'string' || id.length > 256 || /[\u0000-\u001f]/.test(id)) {
    throw new InvalidArgumentError(`id must be a string of at most 256 printable characters, got ${JSON.stringify(String(id).slice(0, 80))}`, 'id');
  }
  return id;
}

export class HostAgent implements AgentApi {
  readonly paths: AgentPaths;
  private readonly drivers: AgentDrivers;
  private readonly nodeName: string;
  private readonly uplink?: string;
  private readonly shutdownTimeoutMs: number;
  private readonly consoleConnectTimeoutMs: number;
  private readonly completionWaitMs: number;
  private readonly operations = new Map<string, BackgroundOperation>();
  private readonly failures = new Map<string, string>();
  private readonly locks = new KeyedMutex();
  private acceleratorPromise?: Promise<Accelerator>;
  private readonly consoles = new Set<ConsoleStream>();
  private readonly watchers = new Set<() => void>();
  private readonly probeListeners: ((probe: AcceleratorProbe) => void)[] = [];

  constructor(options: HostAgentOptions) {
    this.nodeName = validateName(options.nodeName, 'node_name');
    this.paths = new AgentPaths(options.dataDir);
    this.drivers = options.drivers;
    this.uplink = options.uplink;
    this.shutdownTimeoutMs = options.shutdownTimeoutMs ?? 60_000;
    this.consoleConnectTimeoutMs = options.consoleConnectTimeoutMs ?? 5_000;
    this.completionWaitMs = options.completionWaitMs ?? 1_000;
    fs.mkdirSync(this.paths.disksDir, { recursive: true });
    fs.mkdirSync(this.paths.vmsDir, { recursive: true });
  }

  accelerator(): Promise<Accelerator> {
    this.acceleratorPromise ??= this.drivers.vm.accelerator().catch((err) => {
      this.acceleratorPromise = undefined;
      throw err;
    });
    return this.acceleratorPromise;
  }

  /**
   * Removes the temp files a crashed agent left in the disks dir (fetch/qemu-img temp names and
   * copies' <name>.qcow2.tmp). Call it before serving: then no operation of ours is running.
   */
  async sweepLeftovers(): Promise<string[]> {
    const removed = await sweepTempFiles(this.paths.disksDir, 0);
    for (const f of fs.readdirSync(this.paths.disksDir)) {
      if (!f.endsWith('.qcow2.tmp') || nameProblem(f.slice(0, -'.qcow2.tmp'.length)) !== undefined) continue;
      fs.rmSync(path.join(this.paths.disksDir, f), { force: true });
      removed.push(f);
    }
    return removed.sort();
  }

  // -------------------------------------------------------------------------------------------
  // Block storages

  private tempDisk(name: string): string {
    return `${this.paths.disk(name)}.tmp`;
  }

  private async observeDisk(name: string): Promise<BlockStorageObservation> {
    const op = this.operations.get(name);
    if (op) return { name, present: false, inProgress: { ...op.progress } };
    const file = this.paths.disk(name);
    if (!exists(file)) {
      const error = this.failures.get(name);
      return error ? { name, present: false, error } : { name, present: false };
    }
    try {
      return { name, present: true, info: await this.drivers.disk.info(file) };
    } catch (err) {
      return { name, present: true, error: `cannot read ${file}: ${(err as Error).message}` };
    }
  }

  /** The path of a block storage that another operation reads; it must be complete. */
  private readyDiskPath(name: string, field: string): string {
    const file = this.paths.disk(name);
    if (this.operations.has(name)) throw new FailedPreconditionError(`block storage "${name}" is still being prepared on node ${this.nodeName}`, field);
    if (!exists(file)) throw new FailedPreconditionError(`block storage "${name}" does not exist on node ${this.nodeName}`, field);
    return file;
  }

  /** What is there (or being made) under `name`, a failure reported once; undefined when nothing. */
  private async observeOnce(name: string): Promise<BlockStorageObservation | undefined> {
    if (this.operations.has(name) || exists(this.paths.disk(name))) return this.observeDisk(name);
    const failure = this.failures.get(name);
    if (failure === undefined) return undefined;
    // Report the failure once; the next ensure tries again (the controller backs off).
    this.failures.delete(name);
    return { name, present: false, error: failure };
  }

  /**
   * A fetch or copy that is still running is waited for up to completionWaitMs before the answer
   * goes back with its progress: the call open when it ends carries the result, so the caller
   * learns of completion at once instead of on its next look (after its poll interval).
   */
  async ensureBlockStorage(req: EnsureBlockStorageRequest): Promise<BlockStorageObservation> {
    const first = await this.startBlockStorage(req);
    const op = this.operations.get(req.name);
    if (!first.inProgress || !op || this.completionWaitMs <= 0) return first;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([op.done, new Promise<void>((resolve) => { timer = setTimeout(resolve, this.completionWaitMs); })]);
    clearTimeout(timer);
    return this.locks.run(`disk/${req.name}`, async () => {
      // Finished while held, and nothing ran on the disk since (the lock is ours, the operation gone).
      if (op.made && !this.operations.has(req.name) && exists(op.made.path)) return { name: req.name, present: true, info: op.made };
      return (await this.observeOnce(req.name)) ?? this.observeDisk(req.name);
    });
  }

  private async startBlockStorage(req: EnsureBlockStorageRequest): Promise<BlockStorageObservation> {
    validateEnsureBlockStorage(req);
    const file = this.paths.disk(req.name);
    return this.locks.run(`disk/${req.name}`, async () => {
      const seen = await this.observeOnce(req.name);
      if (seen) return seen;
      if (req.sourceUrl !== undefined) {
        const url = req.sourceUrl;
        this.startBackground(req.name, 'fetch', (op) => this.drivers.fetch.fetch(url, file, {
          virtualSizeBytes: req.limitBytes,
          sha256: req.sourceSha256,
          signal: op.abort.signal,
          onProgress: (p) => { op.progress = p; },
        }).then((info) => { op.made = info; }));
        return this.observeDisk(req.name);
      }
      if (req.copyFrom !== undefined) {
        const source = this.readyDiskPath(req.copyFrom, 'copy_from');
        const tmp = this.tempDisk(req.name);
        this.startBackground(req.name, 'copy', async () => {
          fs.rmSync(tmp, { force: true });
          try {
            await this.drivers.disk.copy(source, tmp, req.limitBytes);
            fs.renameSync(tmp, file);
          } finally {
            fs.rmSync(tmp, { force: true });
          }
        });
        return this.observeDisk(req.name);
      }
      if (req.backingFrom !== undefined) {
        await this.drivers.disk.createOverlay(file, this.readyDiskPath(req.backingFrom, 'backing_from'), req.limitBytes);
      } else {
        await this.drivers.disk.create(file, req.limitBytes);
      }
      return this.observeDisk(req.name);
    });
  }

  private startBackground(name: string, kind: BackgroundOperation['kind'], work: (op: BackgroundOperation) => Promise<void>): void {
    const op: BackgroundOperation = {
      kind,
      progress: { phase: kind === 'fetch' ? 'fetching' : 'copying', bytesDone: 0, bytesTotal: 0 },
      abort: new AbortController(),
      done: Promise.resolve(),
    };
    this.failures.delete(name);
    this.operations.set(name, op);
    const started = Date.now();
    op.done = work(op).then(
      () => { log.info(`block storage ${kind} finished`, { name, ms: Date.now() - started }); },
      (err: Error) => {
        if (!op.abort.signal.aborted) {
          log.warn(`block storage ${kind} failed`, { name, error: err.message });
          this.failures.set(name, `${kind} failed: ${err.message}`);
        }
      },
    ).finally(() => {
      if (this.operations.get(name) === op) this.operations.delete(name);
    });
  }

  async resizeBlockStorage(name: string, limitBytes: number): Promise<BlockStorageObservation> {
    validateName(name, 'name');
    positiveInteger(limitBytes, 'limit_bytes');
    return this.locks.run(`disk/${name}`, async () => {
      const file = this.paths.disk(name);
      if (this.operations.has(name)) throw new FailedPreconditionError(`block storage "${name}" is still being prepared; resize it when it is ready`, 'name');
      if (!exists(file)) throw new NotFoundError('block storage', name);
      await this.drivers.disk.resize(file, limitBytes);
      return this.observeDisk(name);
    });
  }

  async deleteBlockStorage(name: string): Promise<void> {
    validateName(name, 'name');
    return this.locks.run(`disk/${name}`, async () => {
      const user = await this.vmUsingDisk(name);
      if (user) throw new FailedPreconditionError(`block storage "${name}" is in use by virtual machine "${user}"; delete or shut it down first`, 'name');
      const op = this.operations.get(name);
      if (op) {
        op.abort.abort();
        await op.done;
      }
      fs.rmSync(this.tempDisk(name), { force: true });
      fs.rmSync(this.paths.disk(name), { force: true });
      this.failures.delete(name);
    });
  }

  private async vmUsingDisk(diskName: string): Promise<string | undefined> {
    for (const vm of await this.drivers.vm.list()) {
      if (!ALIVE.includes(vm.runState)) continue;
      const saved = this.savedRequest(vm.name);
      if (saved?.blockStorageNames.includes(diskName)) return vm.name;
    }
    return undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Networks

  async ensureNetwork(req: EnsureNetworkRequest): Promise<NetworkState> {
    validateEnsureNetwork(req);
    if (req.vlanId !== undefined && this.uplink === undefined) {
      throw new FailedPreconditionError(`node ${this.nodeName} has no uplink interface configured for VLAN networks`, 'vlan_id');
    }
    return this.drivers.network.ensureNetwork({
      name: req.name,
      bridgeName: bridgeName(req.name),
      segmentId: req.segmentId,
      peers: req.peers,
      gatewayCidr: req.gatewayCidr,
      ...(req.vlanId !== undefined ? { uplink: this.uplink, vlanId: req.vlanId } : {}),
    });
  }

  async deleteNetwork(name: string): Promise<void> {
    await this.drivers.network.deleteNetwork(bridgeName(validateName(name, 'name')));
  }

  // -------------------------------------------------------------------------------------------
  // Virtual machines

  private savedRequestPath(name: string): string {
    return path.join(this.paths.vmDir(name), 'ensure.json');
  }

  private savedRequest(name: string): EnsureVmRequest | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.savedRequestPath(name), 'utf8')) as EnsureVmRequest;
    } catch {
      return undefined;
    }
  }

  private saveRequest(req: EnsureVmRequest): void {
    const file = this.savedRequestPath(req.name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp`;
    // The password is in the seed ISO already; keep the file as private as that.
    fs.writeFileSync(tmp, JSON.stringify(req), { mode: 0o600 });
    fs.renameSync(tmp, file);
  }

  private actionsPath(name: string): string {
    return path.join(this.paths.vmDir(name), 'actions.json');
  }

  /** The VM's journal of action ids, oldest first (empty when none or unreadable). */
  private actionJournal(name: string): ActionRecord[] {
    try {
      const parsed = JSON.parse(fs.readFileSync(this.actionsPath(name), 'utf8')) as unknown;
      return Array.isArray(parsed) ? parsed as ActionRecord[] : [];
    } catch {
      return [];
    }
  }

  private recordAction(name: string, record: ActionRecord): void {
    const journal = this.actionJournal(name).filter((r) => r.id !== record.id);
    journal.push(record);
    const file = this.actionsPath(name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp`;
    // fsync'd before the rename: an id whose execution began must survive a host crash too, or a
    // replay after it would do the action again.
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, JSON.stringify(journal.slice(-ACTION_JOURNAL_LENGTH)));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  }

  private nicSpecs(req: EnsureVmRequest): NicSpec[] {
    return req.nics.map((nic, i) => ({
      tapName: tapName(req.name, i),
      bridgeName: bridgeName(nic.networkName),
      hardwareAddress: nic.hardwareAddress,
      ipv4Address: nic.ipv4Address,
      ipv4PrefixLength: nic.ipv4PrefixLength,
      ipv4Gateway: nic.ipv4Gateway,
      ipv6Address: nic.ipv6Address,
      ipv6PrefixLength: nic.ipv6PrefixLength,
    }));
  }

  /** Taps, seed ISO and launch spec: everything QEMU needs before it starts. */
  private async prepareLaunch(req: EnsureVmRequest): Promise<VmLaunchSpec> {
    const disks = req.blockStorageNames.map((n) => this.readyDiskPath(n, 'block_storage_names'));
    const nics = this.nicSpecs(req);
    if (nics.length > 0) {
      const bridges = new Map((await this.drivers.network.list()).filter((n) => n.present).map((n) => [n.bridgeName, n]));
      req.nics.forEach((nic, i) => {
        const bridge = bridges.get(nics[i].bridgeName);
        if (!bridge) {
          throw new FailedPreconditionError(`network "${nic.networkName}" is not set up on node ${this.nodeName}`, `nics[${i}].network_name`);
        }
        // The guest takes its bridge's MTU (1450 behind VXLAN), or large packets vanish.
        if (bridge.mtu !== undefined) nics[i].mtu = bridge.mtu;
      });
      for (const nic of nics) await this.drivers.network.ensureTap(nic);
    }
    const seedIso = path.join(this.paths.vmDir(req.name), 'seed.iso');
    fs.mkdirSync(path.dirname(seedIso), { recursive: true });
    await this.drivers.cloudInit.buildSeedIso(seedIso, {
      instanceId: req.uuid,
      hostname: req.name,
      loginUsername: req.loginUsername,
      loginPassword: req.loginPassword,
      loginPasswordHash: req.loginPasswordHash,
      sshAuthorizedKeys: req.sshAuthorizedKeys,
      nics,
    });
    return {
      name: req.name,
      uuid: req.uuid,
      vcpus: req.vcpus,
      memoryBytes: req.memoryBytes,
      disks,
      seedIso,
      nics,
      kernel: req.kernel,
      initrd: req.initrd,
      kernelArgs: req.kernelArgs,
    };
  }

  /**
   * Starts QEMU. A QEMU that exits while starting is not an error of this call: the VM's state
   * says crashed with QEMU's words, and the controller decides when to try again (back-off).
   */
  private async boot(req: EnsureVmRequest): Promise<void> {
    const spec = await this.prepareLaunch(req);
    try {
      await this.drivers.vm.start(spec);
    } catch (err) {
      if (!(err instanceof VmStartFailedError)) throw err;
      log.warn('QEMU failed to start', { vm: req.name, error: err.message });
    }
  }

  /** The VM's state once QMP answers or the process is gone (a QEMU in its last moments says 'unknown'). */
  private async settledState(name: string): Promise<VmState | undefined> {
    let state = await this.drivers.vm.state(name);
    for (let i = 0; i < 10 && state?.runState === 'unknown'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      state = await this.drivers.vm.state(name);
    }
    return state;
  }

  /**
   * A crashed VM boots again only once its crash was acknowledged (ensureVm) or on an explicit
   * BOOT; a guest whose QEMU still lives (internal error, panic) is stopped first.
   */
  private async bootAgain(req: EnsureVmRequest, seen: VmState | undefined, explicit = false): Promise<void> {
    // Read again: a QEMU dying as it was looked at ('unknown': alive, QMP gone) is a crash to
    // report, not a VM that was never started.
    const state = seen?.runState === 'unknown' ? await this.settledState(req.name) : seen;
    if (state?.runState === 'unknown' && state.pid !== undefined) return;
    if (state?.runState === 'crashed') {
      const instance = state.failure?.startedAt ?? state.startedAt;
      if (!explicit && (instance === undefined || instance !== req.acknowledgedFailure)) return;
      if (state.pid !== undefined) await this.drivers.vm.shutdown(req.name, { hard: true });
    }
    await this.boot(req);
  }

  private observation(name: string, state: VmState | undefined, saved?: EnsureVmRequest): VmObservation {
    if (!state) return { name, present: false, runState: 'shutdown' };
    return {
      name,
      present: true,
      runState: state.runState,
      pid: state.pid,
      accelerator: state.accelerator,
      uuid: (saved ?? this.savedRequest(name))?.uuid,
      startedAt: state.startedAt,
      failure: state.failure,
    };
  }

  async ensureVm(req: EnsureVmRequest): Promise<VmObservation> {
    validateEnsureVm(req);
    // Fail on missing disks before any tap or ISO is made.
    req.blockStorageNames.forEach((n) => this.readyDiskPath(n, 'block_storage_names'));
    return this.locks.run(`vm/${req.name}`, async () => {
      let state = await this.drivers.vm.state(req.name);
      const alive = state !== undefined && ALIVE.includes(state.runState);
      this.saveRequest(req);
      // A changed spec of a running VM (more memory, another nic) applies at its next boot: a
      // reconcile must never restart a guest behind the user's back.
      switch (req.runState) {
        case 'RUNNING':
          if (!alive) await this.bootAgain(req, state);
          else if (state!.runState === 'paused') await this.drivers.vm.resume(req.name);
          break;
        case 'PAUSED':
          if (!alive) await this.bootAgain(req, state);
          state = await this.drivers.vm.state(req.name);
          if (state?.runState === 'running') await this.drivers.vm.pause(req.name);
          break;
        case 'SHUTDOWN':
          if (alive) await this.drivers.vm.shutdown(req.name, { hard: false, timeoutMs: this.shutdownTimeoutMs });
          // A crashed VM asked to stay off is off: a QEMU stopped by an internal error must go.
          else if (state?.runState === 'crashed') await this.drivers.vm.shutdown(req.name, { hard: true });
          break;
      }
      return this.observation(req.name, await this.drivers.vm.state(req.name), req);
    });
  }

  async vmAction(name: string, action: VmAction, options: VmActionOptions = {}): Promise<VmObservation> {
    validateVmAction(name, action);
    const id = options.id === undefined || options.id === '' ? undefined : validateActionId(options.id);
    return this.locks.run(`vm/${name}`, async () => {
      if (id !== undefined) {
        const done = this.actionJournal(name).find((r) => r.id === id);
        if (done) {
          if (done.action !== action) throw new FailedPreconditionError(`action id ${JSON.stringify(id)} of virtual machine "${name}" was ${done.action}, not ${action}`, 'id');
          // At most once: an id whose execution began is never begun again, even when the agent
          // died before it recorded the outcome (then the VM's state now is the answer).
          if (done.outcome) return done.outcome;
          return this.observation(name, await this.drivers.vm.state(name));
        }
      }
      const obs = await this.runVmAction(name, action, id);
      if (id !== undefined) this.recordAction(name, { id, action, outcome: obs });
      return obs;
    });
  }

  private async runVmAction(name: string, action: VmAction, id: string | undefined): Promise<VmObservation> {
    const state = await this.drivers.vm.state(name);
    if (!state) throw new NotFoundError('virtual machine', name);
    const alive = ALIVE.includes(state.runState);
    if (!alive && ['REBOOT', 'HARD_REBOOT', 'PAUSE', 'RESUME'].includes(action)) {
      throw new FailedPreconditionError(`cannot ${action} virtual machine "${name}": it is ${state.runState}`, 'action');
    }
    const vm = this.drivers.vm;
    // Recorded before the driver acts, so a crash in the middle cannot lead to a second run.
    if (id !== undefined) this.recordAction(name, { id, action });
    switch (action) {
      case 'REBOOT': await vm.reboot(name, { hard: false }); break;
      case 'HARD_REBOOT': await vm.reboot(name, { hard: true }); break;
      case 'SHUTDOWN': if (alive) await vm.shutdown(name, { hard: false, timeoutMs: this.shutdownTimeoutMs }); break;
      case 'HARD_SHUTDOWN': if (alive) await vm.shutdown(name, { hard: true }); break;
      case 'PAUSE': if (state.runState === 'running') await vm.pause(name); break;
      case 'RESUME': if (state.runState === 'paused') await vm.resume(name); break;
      case 'BOOT': {
        if (state.runState === 'paused') await vm.resume(name);
        if (alive) break;
        const saved = this.savedRequest(name);
        if (!saved) throw new FailedPreconditionError(`virtual machine "${name}" has no saved launch request; ensure it again`, 'action');
        await this.bootAgain(validateEnsureVm(saved), state, true);
        break;
      }
    }
    return this.observation(name, await vm.state(name));
  }

  async deleteVm(name: string): Promise<void> {
    validateName(name, 'name');
    return this.locks.run(`vm/${name}`, async () => {
      await this.drivers.vm.destroy(name);
      // Tap names are derived from (vm, index), so every tap this VM could own is known without
      // its spec, even after a crash lost the run dir.
      const mine = new Set(Array.from({ length: MAX_NICS }, (_, i) => tapName(name, i)));
      for (const network of await this.drivers.network.list()) {
        for (const tap of network.taps) if (mine.has(tap)) await this.drivers.network.deleteTap(tap);
      }
      fs.rmSync(this.paths.vmDir(name), { recursive: true, force: true });
    });
  }

  // -------------------------------------------------------------------------------------------
  // Observation and consoles

  private async observeDisks(): Promise<BlockStorageObservation[]> {
    let files: string[] = [];
    try {
      files = fs.readdirSync(this.paths.disksDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const names = new Set<string>();
    for (const f of files) {
      if (!f.endsWith('.qcow2')) continue;
      const name = f.slice(0, -'.qcow2'.length);
      if (nameProblem(name) === undefined) names.add(name);
    }
    for (const name of [...this.operations.keys(), ...this.failures.keys()]) names.add(name);
    return Promise.all([...names].sort().map((n) => this.observeDisk(n)));
  }

  async listVms(): Promise<VmObservation[]> {
    return (await this.drivers.vm.list()).map((vm) => this.observation(vm.name, vm));
  }

  async observe(): Promise<NodeObservation> {
    const [accelerator, blockStorages, networks, vms] = await Promise.all([
      this.accelerator(),
      this.observeDisks(),
      this.drivers.network.list(),
      this.drivers.vm.list(),
    ]);
    return {
      nodeName: this.nodeName,
      accelerator,
      agentVersion: agentVersion(),
      blockStorages,
      networks,
      vms: vms.map((vm) => this.observation(vm.name, vm)),
    };
  }

  async openConsole(name: string, kind: 'serial' | 'vnc'): Promise<ConsoleStream> {
    validateName(name, 'name');
    validateConsoleKind(kind);
    const state = await this.drivers.vm.state(name);
    if (!state) throw new NotFoundError('virtual machine', name);
    if (!ALIVE.includes(state.runState)) throw new FailedPreconditionError(`virtual machine "${name}" is ${state.runState}; its console is closed`, 'name');
    const socketPath = kind === 'serial' ? state.serialSocket : state.vncSocket;
    const socket = await connectUnix(socketPath, this.consoleConnectTimeoutMs);
    const stream = socketConsole(socket, () => this.consoles.delete(stream));
    this.consoles.add(stream);
    return stream;
  }

  /** Closes open consoles; running VMs and background operations are left alone (VMs outlive us). */
  /**
   * Calls `onChange(name)` whenever a VM may have changed state by itself (the guest stopped with
   * an internal error or panicked, QEMU exited), until the signal aborts; then resolves. Drivers
   * that cannot tell (the simulated one) never call it: the controllers' audit still finds drift.
   */
  async readBlockStorage(name: string, signal: AbortSignal): Promise<BlockStorageContent> {
    const file = this.paths.disk(name);
    // Opened before answering, so a missing disk is NOT_FOUND rather than a stream that breaks.
    const handle = await fs.promises.open(file, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new NotFoundError('block storage', name);
      throw err;
    });
    const { size } = await handle.stat();
    return { size, chunks: handle.createReadStream({ highWaterMark: 1024 * 1024, signal }) };
  }

  watchVms(signal: AbortSignal, onChange: (name: string) => void): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const unsubscribe = this.drivers.vm.subscribe?.(onChange);
      const stop = (): void => { unsubscribe?.(); this.watchers.delete(stop); resolve(); };
      this.watchers.add(stop);
      signal.addEventListener('abort', stop, { once: true });
    });
  }

  /** The accelerator probe's full outcome (what kind of host this is). */
  async acceleratorProbe(): Promise<AcceleratorProbe> {
    const vm = this.drivers.vm as Partial<{ probeAccelerator(): Promise<AcceleratorProbe> }>;
    if (vm.probeAccelerator) return vm.probeAccelerator();
    const accelerator = await this.accelerator();
    return { accelerator, cpuModel: accelerator === 'kvm' ? 'host' : 'max', reason: 'reported by the VM driver', kvm: accelerator === 'kvm' ? 'works' : 'not-tried', conditionReason: accelerator === 'kvm' ? 'KvmBooted' : 'TcgForced', probeMs: 0 };
  }

  /** Probes again: new VMs use what this finds; running ones keep theirs. */
  async reprobeAccelerator(): Promise<AcceleratorProbe> {
    await this.drivers.vm.reprobe?.();
    this.acceleratorPromise = undefined;
    await this.accelerator();
    const probe = await this.acceleratorProbe();
    for (const l of this.probeListeners) l(probe);
    return probe;
  }

  onAcceleratorProbed(listener: (probe: AcceleratorProbe) => void): void {
    this.probeListeners.push(listener);
  }

  close(): void {
    for (const c of [...this.consoles]) c.close();
    for (const op of this.operations.values()) op.abort.abort();
    for (const stop of [...this.watchers]) stop();
    this.drivers.vm.close?.();
  }
}

function connectUnix(socketPath: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ path: socketPath });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new FailedPreconditionError(`console socket ${socketPath} did not accept within ${timeoutMs} ms`, 'name'));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new FailedPreconditionError(`cannot connect to console socket ${socketPath}: ${err.message}`, 'name'));
    });
  });
}

/** A ConsoleStream over a connected socket; data is held until the first listener arrives. */
export function socketConsole(socket: net.Socket, onClose?: () => void): ConsoleStream {
  const dataListeners: ((chunk: Buffer) => void)[] = [];
  const endListeners: ((error?: Error) => void)[] = [];
  let ended: { error?: Error } | undefined;
  const finish = (error?: Error) => {
    if (ended) return;
    ended = { error };
    onClose?.();
    for (const l of endListeners) l(error);
  };
  socket.on('error', (err) => finish(err));
  socket.on('close', () => finish());
  return {
    onData(listener) {
      dataListeners.push(listener);
      if (dataListeners.length === 1) socket.on('data', (chunk: Buffer) => dataListeners.forEach((l) => l(chunk)));
    },
    onEnd(listener) {
      if (ended) listener(ended.error);
      else endListeners.push(listener);
    },
    write(chunk) {
      if (!ended) socket.write(chunk);
    },
    close() {
      socket.destroy();
      finish();
    },
  };
}
