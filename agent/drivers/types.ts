import { FailedPreconditionError } from '../../api/errors';

// Contracts between the agent's gRPC service (agent/server) and its drivers. Every driver owns
// one external tool; every name that reaches a path or an argument has been validated with
// api/names.ts before it gets here, and drivers validate again through agent/paths.ts.

/** Progress of a long operation, reported as it goes. */
export interface Progress {
  phase: string;
  bytesDone: number;
  /** 0 when unknown (no Content-Length). */
  bytesTotal: number;
}

export interface DiskInfo {
  path: string;
  format: 'qcow2' | 'raw' | string;
  virtualSize: number;
  actualSize: number;
  backingFile?: string;
}

/** qemu-img (agent/drivers/qemuimg). */
export interface DiskDriver {
  create(path: string, virtualSizeBytes: number): Promise<void>;
  /** Copy-on-write overlay on `backingPath`; constant time whatever the backing file's size. */
  createOverlay(path: string, backingPath: string, virtualSizeBytes: number): Promise<void>;
  /** Full, independent copy converted to qcow2 (optionally grown to virtualSizeBytes). */
  copy(sourcePath: string, path: string, virtualSizeBytes?: number): Promise<void>;
  /** Grow only; shrinking is refused with InvalidArgumentError. */
  resize(path: string, virtualSizeBytes: number): Promise<void>;
  info(path: string): Promise<DiskInfo>;
}

/** http(s) download into a qcow2 file (agent/drivers/fetch). */
export interface FetchDriver {
  /**
   * Downloads `url` and leaves a qcow2 file at `path` (raw content is converted; the result is
   * grown to virtualSizeBytes when smaller). On failure no partial file remains at `path`.
   */
  fetch(url: string, path: string, options: {
    virtualSizeBytes: number;
    sha256?: string;
    onProgress?: (p: Progress) => void;
    signal?: AbortSignal;
  }): Promise<DiskInfo>;
}

export interface NicSpec {
  /** tap device name (<= 15 characters), see agent/paths.ts tapName(). */
  tapName: string;
  /** bridge the tap joins. */
  bridgeName: string;
  hardwareAddress: string;
  ipv4Address?: string;
  ipv4PrefixLength?: number;
  ipv4Gateway?: string;
  ipv6Address?: string;
  ipv6PrefixLength?: number;
  /** Link MTU the guest should use: its bridge's, e.g. 1450 behind a VXLAN overlay. */
  mtu?: number;
}

export interface NetworkSpecOnHost {
  name: string;
  /** bridge name (<= 15 characters), see agent/paths.ts bridgeName(). */
  bridgeName: string;
  /** VXLAN network identifier / overlay segment id. */
  segmentId: number;
  /** Underlay addresses of the other hosts that carry this network (VXLAN unicast peers). */
  peers: string[];
  /** Optional address (CIDR) given to the bridge so the host reaches its VMs. */
  gatewayCidr?: string;
  /** When set, the bridge joins <uplink>.<vlanId> instead of a VXLAN device. */
  uplink?: string;
  vlanId?: number;
}

export interface NetworkState {
  name: string;
  bridgeName: string;
  present: boolean;
  segmentId?: number;
  peers: string[];
  taps: string[];
  /** The bridge's MTU: the smallest of its ports' (a VXLAN port's is 50 bytes below its underlay's). */
  mtu?: number;
}

/** iproute2 (agent/drivers/network). */
export interface NetworkDriver {
  ensureNetwork(spec: NetworkSpecOnHost): Promise<NetworkState>;
  deleteNetwork(bridgeName: string): Promise<void>;
  ensureTap(nic: NicSpec): Promise<void>;
  deleteTap(tapName: string): Promise<void>;
  /** Every bridge and tap this driver manages (by its name prefix) on this host. */
  list(): Promise<NetworkState[]>;
}

/** cloud-init NoCloud seed ISO (agent/drivers/cloudinit). */
export interface CloudInitSpec {
  instanceId: string;
  hostname: string;
  loginUsername?: string;
  /** In clear, from older controllers; loginPasswordHash wins when both are given. */
  loginPassword?: string;
  /** SHA-512 crypt hash ($6$...), written to the guest as it is. */
  loginPasswordHash?: string;
  sshAuthorizedKeys: string[];
  nics: NicSpec[];
}
export interface CloudInitDriver {
  /** Writes the ISO atomically (temp file + rename). */
  buildSeedIso(path: string, spec: CloudInitSpec): Promise<void>;
}

export type Accelerator = 'kvm' | 'tcg';

/** QEMU exited while starting (KVM refusing the CPU model, a bad disk): VmDriver.start throws it. */
export class VmStartFailedError extends FailedPreconditionError {
  constructor(message: string) { super(message, 'spec'); }
}

export interface VmLaunchSpec {
  name: string;
  uuid: string;
  vcpus: number;
  memoryBytes: number;
  /** qcow2 disk paths in boot order. */
  disks: string[];
  /** Optional cloud-init seed ISO attached as a CD-ROM. */
  seedIso?: string;
  nics: NicSpec[];
  /** Test guests: boot this kernel/initrd directly instead of from the first disk. */
  kernel?: string;
  initrd?: string;
  kernelArgs?: string;
}

export type VmRunState = 'running' | 'paused' | 'shutdown' | 'crashed' | 'unknown';

/** Why a VM is crashed: QEMU's own words (its stderr's last lines, the guest's stop status). */
export interface VmFailure {
  message: string;
  /** When the failed QEMU instance was started (tells one crash from the next). */
  startedAt?: string;
}

export interface VmState {
  name: string;
  /** Process alive? A dead process with a pidfile is reported as crashed, never hidden. */
  pid?: number;
  runState: VmRunState;
  /** The QMP status string ("running", "paused", "shutdown", ...) when QMP answered. */
  qmpStatus?: string;
  /** Set when runState is crashed. */
  failure?: VmFailure;
  /** When this VM's current QEMU instance was started. */
  startedAt?: string;
  accelerator?: Accelerator;
  serialSocket: string;
  vncSocket: string;
  qmpSocket: string;
}

/** qemu-system-x86_64 + QMP (agent/drivers/qemu). */
export interface VmDriver {
  /** Probes KVM once (with a timeout, since it can exist and still hang) and falls back to TCG. */
  accelerator(): Promise<Accelerator>;
  /** Starts the VM unless it already runs (idempotent). The process outlives the agent. */
  start(spec: VmLaunchSpec): Promise<VmState>;
  state(name: string): Promise<VmState | undefined>;
  /** Every VM with a run directory on this host, alive or not (re-adoption, orphan clean-up). */
  list(): Promise<VmState[]>;
  /** ACPI powerdown, then quit after timeoutMs. */
  shutdown(name: string, options: { hard: boolean; timeoutMs?: number }): Promise<void>;
  /** ACPI reboot is not in QMP: soft reboot sends ctrl-alt-delete via send-key; hard is system_reset. */
  reboot(name: string, options: { hard: boolean }): Promise<void>;
  pause(name: string): Promise<void>;
  resume(name: string): Promise<void>;
  /** Stops the process if running and removes its run directory. */
  destroy(name: string): Promise<void>;
  /** Calls `listener(name)` when a VM may have changed state by itself (guest stop or panic, QEMU exit). */
  subscribe?(listener: (name: string) => void): () => void;
  /** Probes the accelerator again. */
  reprobe?(): Promise<unknown>;
  close?(): void;
}
