// A node agent that only pretends: disks, networks and VMs are entries in memory that appear
// after configurable latencies. FOR SCALE BENCHMARKS ONLY (bench/density.ts), to measure the
// control plane with hundreds of nodes on one machine, as KubeVirt does with kwok. It is never a
// default, never reachable from `n0stack agent`, and no test that claims real drivers uses it.
// It keeps the AgentApi contract (validation, idempotent ensures, typed errors, observe lists
// what exists) so the controllers do exactly the work they would do against a real agent.
import { FailedPreconditionError, NotFoundError } from '../../api/errors';
import { validateName } from '../../api/names';
import type {
  AgentApi, BlockStorageObservation, ConsoleStream, EnsureBlockStorageRequest, EnsureNetworkRequest,
  EnsureVmRequest, NodeObservation, VmAction, VmActionOptions, VmObservation,
} from '../api';
import { bridgeName, tapName } from '../paths';
import { validateConsoleKind, validateEnsureBlockStorage, validateEnsureNetwork, validateEnsureVm, validateVmAction } from '../validate';
import { agentVersion } from '../version';
import type { Accelerator, DiskInfo, NetworkState, Progress, VmRunState } from './types';

export interface SimulatedLatencies {
  /** An empty disk or a copy-on-write overlay (qemu-img create): default 20 ms. */
  createDiskMs: number;
  /** Download speed of a source_url fetch, MB/s (default 100). */
  fetchMBps: number;
  /** Size a simulated download has (default 256 MiB). */
  fetchBytes: number;
  /** Speed of a full copy, MB/s (default 500). */
  copyMBps: number;
  /** Bridge + overlay device the first time (default 30 ms; an unchanged network answers at once). */
  ensureNetworkMs: number;
  /** Taps, seed ISO and QEMU start up to QMP (default 50 ms). */
  ensureVmMs: number;
  /** Any power action (default 20 ms). */
  vmActionMs: number;
  deleteMs: number;
  /** Every call's round trip (default 0). */
  rpcMs: number;
}

export const DEFAULT_SIMULATED_LATENCIES: Readonly<SimulatedLatencies> = Object.freeze({
  createDiskMs: 20, fetchMBps: 100, fetchBytes: 256 * 1024 * 1024, copyMBps: 500,
  ensureNetworkMs: 30, ensureVmMs: 50, vmActionMs: 20, deleteMs: 10, rpcMs: 0,
});

export interface SimulatedAgentOptions {
  nodeName: string;
  accelerator?: Accelerator;
  latencies?: Partial<SimulatedLatencies>;
}

interface Disk { info?: DiskInfo; progress?: Progress; error?: string }
interface Vm { req: EnsureVmRequest; runState: VmRunState; pid: number; actionIds?: Set<string> }

const sleep = (ms: number) => (ms > 0 ? new Promise<void>((r) => setTimeout(r, ms)) : Promise.resolve());
const ALIVE: readonly VmRunState[] = ['running', 'paused'];
let nextPid = 100_000;

/** Per-key serialisation, as the host agent does: two ensures of one VM never interleave. */
class Serial {
  private readonly tails = new Map<string, Promise<unknown>>();
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => { if (this.tails.get(key) === tail) this.tails.delete(key); });
    return next;
  }
}

export class SimulatedAgent implements AgentApi {
  readonly nodeName: string;
  readonly latencies: SimulatedLatencies;
  /** Calls per method, for benchmarks. */
  readonly calls: Record<string, number> = {};
  private readonly accelerator: Accelerator;
  private readonly disks = new Map<string, Disk>();
  private readonly networks = new Map<string, NetworkState>();
  private readonly vms = new Map<string, Vm>();
  private readonly serial = new Serial();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(options: SimulatedAgentOptions) {
    this.nodeName = validateName(options.nodeName, 'node_name');
    this.accelerator = options.accelerator ?? 'kvm';
    this.latencies = { ...DEFAULT_SIMULATED_LATENCIES, ...options.latencies };
  }

  private async enter(method: string): Promise<void> {
    this.calls[method] = (this.calls[method] ?? 0) + 1;
    if (this.closed) throw new FailedPreconditionError(`simulated agent of node ${this.nodeName} is closed`);
    await sleep(this.latencies.rpcMs);
  }

  private observeDisk(name: string): BlockStorageObservation {
    const d = this.disks.get(name);
    if (!d) return { name, present: false };
    if (d.progress) return { name, present: false, inProgress: { ...d.progress } };
    return { name, present: true, info: d.info ? { ...d.info } : undefined };
  }

  private readyDisk(name: string, field: string): Disk {
    const d = this.disks.get(name);
    if (!d || d.progress) throw new FailedPreconditionError(`block storage "${name}" ${d ? 'is still being prepared' : 'does not exist'} on node ${this.nodeName}`, field);
    return d;
  }

  /** A fetch or copy that completes in the background, reporting progress like the real one. */
  private background(name: string, phase: string, bytes: number, mbps: number, limitBytes: number): void {
    const disk: Disk = { progress: { phase, bytesDone: 0, bytesTotal: bytes } };
    this.disks.set(name, disk);
    const totalMs = (bytes / (mbps * 1e6)) * 1000;
    const started = Date.now();
    const tick = () => {
      this.timers.delete(timer);
      if (this.disks.get(name) !== disk) return;
      const done = Math.min(bytes, Math.round(((Date.now() - started) / totalMs) * bytes));
      if (done >= bytes) {
        disk.progress = undefined;
        disk.info = { path: `sim://${this.nodeName}/${name}.qcow2`, format: 'qcow2', virtualSize: limitBytes, actualSize: bytes };
        return;
      }
      disk.progress = { phase, bytesDone: done, bytesTotal: bytes };
      timer = setTimeout(tick, Math.min(200, totalMs));
      this.timers.add(timer);
    };
    let timer = setTimeout(tick, Math.min(200, totalMs));
    this.timers.add(timer);
  }

  async ensureBlockStorage(req: EnsureBlockStorageRequest): Promise<BlockStorageObservation> {
    await this.enter('ensureBlockStorage');
    validateEnsureBlockStorage(req);
    return this.serial.run(`disk/${req.name}`, async () => {
      if (this.disks.has(req.name)) return this.observeDisk(req.name);
      const path = `sim://${this.nodeName}/${req.name}.qcow2`;
      if (req.sourceUrl !== undefined) {
        this.background(req.name, 'fetch', this.latencies.fetchBytes, this.latencies.fetchMBps, req.limitBytes);
      } else if (req.copyFrom !== undefined) {
        const source = this.readyDisk(req.copyFrom, 'copy_from');
        this.background(req.name, 'copy', source.info?.actualSize ?? 0, this.latencies.copyMBps, Math.max(req.limitBytes, source.info?.virtualSize ?? 0));
      } else {
        if (req.backingFrom !== undefined) this.readyDisk(req.backingFrom, 'backing_from');
        await sleep(this.latencies.createDiskMs);
        this.disks.set(req.name, { info: { path, format: 'qcow2', virtualSize: req.limitBytes, actualSize: 196_608, ...(req.backingFrom ? { backingFile: `sim://${this.nodeName}/${req.backingFrom}.qcow2` } : {}) } });
      }
      return this.observeDisk(req.name);
    });
  }

  async resizeBlockStorage(name: string, limitBytes: number): Promise<BlockStorageObservation> {
    await this.enter('resizeBlockStorage');
    validateName(name, 'name');
    return this.serial.run(`disk/${name}`, async () => {
      const d = this.readyDisk(name, 'name');
      if (d.info && limitBytes < d.info.virtualSize) throw new FailedPreconditionError(`block storage "${name}" is ${d.info.virtualSize} bytes; shrinking to ${limitBytes} is refused`, 'limit_bytes');
      await sleep(this.latencies.createDiskMs);
      if (d.info) d.info.virtualSize = limitBytes;
      return this.observeDisk(name);
    });
  }

  async deleteBlockStorage(name: string): Promise<void> {
    await this.enter('deleteBlockStorage');
    validateName(name, 'name');
    return this.serial.run(`disk/${name}`, async () => {
      for (const vm of this.vms.values()) {
        if (vm.req.blockStorageNames.includes(name) && ALIVE.includes(vm.runState)) {
          throw new FailedPreconditionError(`block storage "${name}" is attached to running virtual machine "${vm.req.name}"`, 'name');
        }
      }
      await sleep(this.latencies.deleteMs);
      this.disks.delete(name);
    });
  }

  async ensureNetwork(req: EnsureNetworkRequest): Promise<NetworkState> {
    await this.enter('ensureNetwork');
    validateEnsureNetwork(req);
    return this.serial.run(`net/${req.name}`, async () => {
      const current = this.networks.get(req.name);
      const peers = [...req.peers].sort();
      if (current && current.segmentId === req.segmentId && JSON.stringify(current.peers) === JSON.stringify(peers)) return structuredClone(current);
      await sleep(this.latencies.ensureNetworkMs);
      const state: NetworkState = { name: req.name, bridgeName: bridgeName(req.name), present: true, segmentId: req.segmentId, peers, taps: current?.taps ?? [] };
      this.networks.set(req.name, state);
      return structuredClone(state);
    });
  }

  async deleteNetwork(name: string): Promise<void> {
    await this.enter('deleteNetwork');
    validateName(name, 'name');
    return this.serial.run(`net/${name}`, async () => {
      if (!this.networks.has(name)) return;
      await sleep(this.latencies.deleteMs);
      this.networks.delete(name);
    });
  }

  private vmObservation(name: string): VmObservation {
    const vm = this.vms.get(name);
    if (!vm) return { name, present: false, runState: 'shutdown' };
    return { name, present: true, runState: vm.runState, pid: ALIVE.includes(vm.runState) ? vm.pid : undefined, accelerator: this.accelerator, uuid: vm.req.uuid };
  }

  async ensureVm(req: EnsureVmRequest): Promise<VmObservation> {
    await this.enter('ensureVm');
    validateEnsureVm(req);
    req.blockStorageNames.forEach((n) => this.readyDisk(n, 'block_storage_names'));
    req.nics.forEach((nic, i) => {
      if (!this.networks.has(nic.networkName)) throw new FailedPreconditionError(`network "${nic.networkName}" is not set up on node ${this.nodeName}`, `nics[${i}].network_name`);
    });
    return this.serial.run(`vm/${req.name}`, async () => {
      let vm = this.vms.get(req.name);
      const alive = vm !== undefined && ALIVE.includes(vm.runState);
      if (req.runState !== 'SHUTDOWN' && !alive) {
        await sleep(this.latencies.ensureVmMs);
        vm = { req: structuredClone(req), runState: 'running', pid: nextPid++ };
        this.vms.set(req.name, vm);
        req.nics.forEach((nic, i) => this.networks.get(nic.networkName)?.taps.push(tapName(req.name, i)));
      }
      if (vm) {
        vm.req = structuredClone(req);
        const want: VmRunState = req.runState === 'RUNNING' ? 'running' : req.runState === 'PAUSED' ? 'paused' : 'shutdown';
        if (vm.runState !== want) {
          await sleep(this.latencies.vmActionMs);
          vm.runState = want;
        }
      }
      return this.vmObservation(req.name);
    });
  }

  async vmAction(name: string, action: VmAction, options: VmActionOptions = {}): Promise<VmObservation> {
    await this.enter('vmAction');
    validateVmAction(name, action);
    return this.serial.run(`vm/${name}`, async () => {
      const vm = this.vms.get(name);
      if (!vm) throw new NotFoundError('virtual machine', name);
      // The same at-most-once contract as the host agent's journal, kept in memory.
      if (options.id) {
        if (vm.actionIds?.has(options.id)) return this.vmObservation(name);
        (vm.actionIds ??= new Set()).add(options.id);
      }
      const alive = ALIVE.includes(vm.runState);
      if (!alive && ['REBOOT', 'HARD_REBOOT', 'PAUSE', 'RESUME'].includes(action)) {
        throw new FailedPreconditionError(`cannot ${action} virtual machine "${name}": it is ${vm.runState}`, 'action');
      }
      await sleep(this.latencies.vmActionMs);
      if (action === 'SHUTDOWN' || action === 'HARD_SHUTDOWN') vm.runState = 'shutdown';
      else if (action === 'PAUSE') vm.runState = 'paused';
      else if (action === 'RESUME' || action === 'BOOT') vm.runState = 'running';
      else vm.runState = 'running';
      if (!alive && vm.runState === 'running') vm.pid = nextPid++;
      return this.vmObservation(name);
    });
  }

  async deleteVm(name: string): Promise<void> {
    await this.enter('deleteVm');
    validateName(name, 'name');
    return this.serial.run(`vm/${name}`, async () => {
      const vm = this.vms.get(name);
      if (!vm) return;
      await sleep(this.latencies.deleteMs);
      this.vms.delete(name);
      const mine = new Set(vm.req.nics.map((_, i) => tapName(name, i)));
      for (const net of this.networks.values()) net.taps = net.taps.filter((t) => !mine.has(t));
    });
  }

  /** The simulated host's VMs change only when asked to: nothing to report. */
  watchVms(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => { if (signal.aborted) resolve(); else signal.addEventListener('abort', () => resolve(), { once: true }); });
  }

  async listVms(): Promise<VmObservation[]> {
    await this.enter('listVms');
    return [...this.vms.keys()].sort().map((n) => this.vmObservation(n));
  }

  async observe(): Promise<NodeObservation> {
    await this.enter('observe');
    return {
      nodeName: this.nodeName,
      accelerator: this.accelerator,
      agentVersion: agentVersion(),
      blockStorages: [...this.disks.keys()].sort().map((n) => this.observeDisk(n)),
      networks: [...this.networks.values()].map((n) => structuredClone(n)),
      vms: [...this.vms.keys()].sort().map((n) => this.vmObservation(n)),
    };
  }

  async openConsole(name: string, kind: 'serial' | 'vnc'): Promise<ConsoleStream> {
    await this.enter('openConsole');
    validateName(name, 'name');
    validateConsoleKind(kind);
    const vm = this.vms.get(name);
    if (!vm) throw new NotFoundError('virtual machine', name);
    if (!ALIVE.includes(vm.runState)) throw new FailedPreconditionError(`virtual machine "${name}" is ${vm.runState}; its console is closed`, 'name');
    // A loopback console: what is typed comes back, as a guest's echoing shell would.
    const data: ((chunk: Buffer) => void)[] = [];
    const end: ((error?: Error) => void)[] = [];
    let open = true;
    return {
      onData: (l) => { data.push(l); },
      onEnd: (l) => { end.push(l); },
      write: (chunk) => { if (open) for (const l of data) l(Buffer.from(chunk)); },
      close: () => { if (!open) return; open = false; for (const l of end) l(); },
    };
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
