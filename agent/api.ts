// The agent's RPC surface as TypeScript types. proto/agent.proto mirrors it field by field;
// agent/client.ts implements AgentApi over gRPC (mTLS) and agent/service.ts implements it on the
// host with the drivers. Controllers depend only on this interface, so the simulated agent used
// by the scale benchmarks (agent/drivers/simulated.ts) plugs in the same way.
import type { Accelerator, DiskInfo, NetworkState, Progress, VmRunState } from './drivers/types';
import type { AcceleratorProbe } from './drivers/accel-probe';

export interface EnsureBlockStorageRequest {
  name: string;
  limitBytes: number;
  /** Exactly one or none of these: none makes an empty qcow2. */
  sourceUrl?: string;
  sourceSha256?: string;
  /** Full copy of another block storage on this node. */
  copyFrom?: string;
  /** Copy-on-write overlay on another block storage on this node. */
  backingFrom?: string;
}

export interface BlockStorageObservation {
  name: string;
  present: boolean;
  /** A fetch/copy still running: its progress. */
  inProgress?: Progress;
  /** The last failure of an operation on it (e.g. fetch 404), until the next ensure. */
  error?: string;
  info?: DiskInfo;
}

export interface EnsureNetworkRequest {
  name: string;
  segmentId: number;
  /** Underlay addresses of the other nodes that carry this network. */
  peers: string[];
  gatewayCidr?: string;
  vlanId?: number;
}

export interface VmNic {
  networkName: string;
  hardwareAddress: string;
  ipv4Address?: string;
  /** prefix length of the network's IPv4 cidr */
  ipv4PrefixLength?: number;
  ipv4Gateway?: string;
  ipv6Address?: string;
  ipv6PrefixLength?: number;
}

export interface EnsureVmRequest {
  name: string;
  uuid: string;
  vcpus: number;
  memoryBytes: number;
  blockStorageNames: string[];
  nics: VmNic[];
  loginUsername?: string;
  /** In clear, as older controllers send it; current ones send only loginPasswordHash. */
  loginPassword?: string;
  /** SHA-512 crypt hash ($6$...) of the login password; the guest gets the hash, never the password. */
  loginPasswordHash?: string;
  sshAuthorizedKeys: string[];
  /** Desired power state; the agent starts/stops/pauses to match. */
  runState: 'RUNNING' | 'SHUTDOWN' | 'PAUSED';
  /** Test guests only: direct kernel boot. */
  kernel?: string;
  initrd?: string;
  kernelArgs?: string;
  /**
   * A crashed VM boots again only when this names its failed instance (VmObservation.failure.
   * startedAt): the controller has recorded that crash and its back-off is over. Otherwise the
   * crash is returned as it is, so no failure goes unseen.
   */
  acknowledgedFailure?: string;
}

export interface VmObservation {
  name: string;
  present: boolean;
  runState: VmRunState;
  pid?: number;
  accelerator?: Accelerator;
  uuid?: string;
  /** When the current QEMU instance was started. */
  startedAt?: string;
  /** Set when runState is crashed: QEMU's words, and which instance failed. */
  failure?: { message: string; startedAt?: string };
}

export type VmAction = 'REBOOT' | 'HARD_REBOOT' | 'SHUTDOWN' | 'HARD_SHUTDOWN' | 'PAUSE' | 'RESUME' | 'BOOT';

export interface VmActionOptions {
  /** The VM's action_request.id. */
  id?: string;
}

export interface NodeObservation {
  nodeName: string;
  accelerator: Accelerator;
  agentVersion: string;
  blockStorages: BlockStorageObservation[];
  networks: NetworkState[];
  vms: VmObservation[];
}

export interface ConsoleStream {
  /** bytes from the VM's serial console / VNC socket */
  onData(listener: (chunk: Buffer) => void): void;
  onEnd(listener: (error?: Error) => void): void;
  write(chunk: Buffer): void;
  close(): void;
}

/** A disk's bytes on their way out: its size first, then the chunks in order. */
export interface BlockStorageContent {
  size: number;
  chunks: AsyncIterable<Buffer>;
}

export interface AgentApi {
  /**
   * Idempotent; returns when the disk exists, or with inProgress for long fetches/copies: a host
   * agent holds the answer up to a second for the work to end, so completion is answered at once.
   */
  ensureBlockStorage(req: EnsureBlockStorageRequest): Promise<BlockStorageObservation>;
  /** Grow only. */
  resizeBlockStorage(name: string, limitBytes: number): Promise<BlockStorageObservation>;
  deleteBlockStorage(name: string): Promise<void>;
  ensureNetwork(req: EnsureNetworkRequest): Promise<NetworkState>;
  deleteNetwork(name: string): Promise<void>;
  /** Creates taps, the cloud-init seed ISO and the QEMU process as needed; idempotent. */
  ensureVm(req: EnsureVmRequest): Promise<VmObservation>;
  /**
   * With `id` the action is done at most once per id: a replay (the controller crashed before it
   * recorded the id) answers the recorded outcome instead of rebooting the guest again.
   */
  vmAction(name: string, action: VmAction, options?: VmActionOptions): Promise<VmObservation>;
  /** Stops QEMU, removes taps, seed ISO and run dir; idempotent. */
  deleteVm(name: string): Promise<void>;
  observe(): Promise<NodeObservation>;
  /** The VMs on the node and their states, without reading disks or links (for frequent audits). */
  listVms(): Promise<VmObservation[]>;
  openConsole(name: string, kind: 'serial' | 'vnc'): Promise<ConsoleStream>;
  /**
   * Calls `onChange(name)` whenever a VM may have changed state by itself (guest stopped or
   * panicked, QEMU exited) until the signal aborts or the stream breaks; then resolves.
   */
  watchVms(signal: AbortSignal, onChange: (name: string) => void): Promise<void>;
  /** The disk's file as it is on the node, for downloads (agents without disks lack it). */
  readBlockStorage?(name: string, signal: AbortSignal): Promise<BlockStorageContent>;
  /** This agent with its calls cancelled when `signal` aborts (remote clients; others ignore it). */
  withSignal?(signal: AbortSignal): AgentApi;
  /** Probes the accelerator again (agents with real drivers). */
  reprobeAccelerator?(): Promise<AcceleratorProbe>;
  close(): void;
}
