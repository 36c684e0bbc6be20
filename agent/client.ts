// AgentApi over gRPC with mutual TLS: what the controllers hold per node. Every unary call has a
// deadline, and failures come back as the typed errors of api/errors.ts (NotFound, InvalidArgument
// with its field, FailedPrecondition, Unavailable, ...) so reconcilers can branch on them.
import * as grpc from '@grpc/grpc-js';
import { DeadlineExceededError, NotFoundError, UnavailableError } from '../api/errors';
import { isDnsName, peerNameMismatch } from '../api/pki';
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
import type { NetworkState } from './drivers/types';
import { fromGrpcError } from './status';
import {
  agentService,
  blockStorageFromWire,
  ensureBlockStorageToWire,
  ensureNetworkToWire,
  ensureVmToWire,
  networkStateFromWire,
  nodeObservationFromWire,
  vmObservationFromWire,
  type WireBlockStorageObservation,
  type WireConsoleInput,
  type WireConsoleOutput,
  type WireNetworkState,
  type WireNodeObservation,
  type WireVmObservation,
} from './wire';

export interface ClientTls {
  ca: Buffer | string;
  /** Client certificate and key signed by the cluster CA. Omitted: no client certificate (refused). */
  cert?: Buffer | string;
  key?: Buffer | string;
}

export interface AgentClientOptions {
  /** host:port of the agent. */
  endpoint: string;
  tls: ClientTls;
  /** Deadline of quick calls (ensure disk/network, observe, delete). Default 30 s. */
  deadlineMs?: number;
  /** Deadline of calls that may wait on a guest (ensureVm, vmAction: ACPI shutdown). Default 120 s. */
  vmDeadlineMs?: number;
  /** Name the server certificate must carry when it differs from the endpoint's host. */
  serverName?: string;
  /**
   * The Node this agent must be: its certificate's CN or a DNS SAN must equal it, whatever the
   * endpoint's host is. Every agent certificate is signed by the same CA, so checking only the
   * chain would let one host's agent pass for any other's.
   */
  nodeName?: string;
}

const buf = (v: Buffer | string | undefined) => (v === undefined ? undefined : Buffer.isBuffer(v) ? v : Buffer.from(v));

type UnaryMethod = (req: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => grpc.ClientUnaryCall;

export class AgentClient implements AgentApi {
  private readonly client: grpc.Client;
  private readonly deadlineMs: number;
  private readonly vmDeadlineMs: number;
  private readonly consoles = new Set<ConsoleStream>();

  constructor(readonly options: AgentClientOptions) {
    const Service = agentService();
    const nodeName = options.nodeName;
    const verify: grpc.VerifyOptions | undefined = nodeName === undefined ? undefined : {
      checkServerIdentity: (_host, cert) => {
        const presented = peerNameMismatch(nodeName, cert);
        return presented === undefined ? undefined : new Error(`agent at ${options.endpoint} presents the certificate of ${presented}, not of Node "${nodeName}"`);
      },
    };
    const credentials = grpc.credentials.createSsl(buf(options.tls.ca), buf(options.tls.key), buf(options.tls.cert), verify);
    const channelOptions: grpc.ChannelOptions = {
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
      // Notice a dead agent on an idle channel instead of hanging until the next deadline.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    };
    if (options.serverName) channelOptions['grpc.ssl_target_name_override'] = options.serverName;
    // The node name as TLS server name, not the endpoint's IP (RFC 6066 forbids IPs there);
    // checkServerIdentity above ignores the name it is given and checks the node's.
    else if (nodeName !== undefined) channelOptions['grpc.ssl_target_name_override'] = isDnsName(nodeName) ? nodeName : 'n0stack-agent';
    this.client = new Service(options.endpoint, credentials, channelOptions);
    this.deadlineMs = options.deadlineMs ?? 30_000;
    this.vmDeadlineMs = options.vmDeadlineMs ?? 120_000;
  }

  /** Set on the views withSignal() makes: their calls are cancelled when it aborts. */
  private signal?: AbortSignal;

  /** This client with every call cancelled when `signal` aborts (a reconcile that lost the lead). */
  withSignal(signal: AbortSignal): AgentApi {
    return Object.create(this, { signal: { value: signal } }) as AgentClient;
  }

  private call<Res>(method: string, req: unknown, deadlineMs = this.deadlineMs): Promise<Res> {
    const fn = (this.client as unknown as Record<string, UnaryMethod>)[method];
    const signal = this.signal;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) { reject(new UnavailableError(`${method} not sent: ${String(signal.reason?.message ?? signal.reason ?? 'aborted')}`)); return; }
      const onAbort = () => call.cancel();
      const call = fn.call(this.client, req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => {
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(fromGrpcError(err));
        else resolve(res as Res);
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async ensureBlockStorage(req: EnsureBlockStorageRequest): Promise<BlockStorageObservation> {
    return blockStorageFromWire(await this.call<WireBlockStorageObservation>('EnsureBlockStorage', ensureBlockStorageToWire(req)));
  }

  async resizeBlockStorage(name: string, limitBytes: number): Promise<BlockStorageObservation> {
    return blockStorageFromWire(await this.call<WireBlockStorageObservation>('ResizeBlockStorage', { name, limit_bytes: limitBytes }));
  }

  async deleteBlockStorage(name: string): Promise<void> {
    await this.call('DeleteBlockStorage', { name });
  }

  async ensureNetwork(req: EnsureNetworkRequest): Promise<NetworkState> {
    return networkStateFromWire(await this.call<WireNetworkState>('EnsureNetwork', ensureNetworkToWire(req)));
  }

  async deleteNetwork(name: string): Promise<void> {
    await this.call('DeleteNetwork', { name });
  }

  async ensureVm(req: EnsureVmRequest): Promise<VmObservation> {
    return vmObservationFromWire(await this.call<WireVmObservation>('EnsureVm', ensureVmToWire(req), this.vmDeadlineMs));
  }

  async vmAction(name: string, action: VmAction, options: VmActionOptions = {}): Promise<VmObservation> {
    return vmObservationFromWire(await this.call<WireVmObservation>('VmAction', { name, action, ...(options.id ? { id: options.id } : {}) }, this.vmDeadlineMs));
  }

  async deleteVm(name: string): Promise<void> {
    await this.call('DeleteVm', { name }, this.vmDeadlineMs);
  }

  async observe(): Promise<NodeObservation> {
    return nodeObservationFromWire(await this.call<WireNodeObservation>('Observe', {}));
  }

  async listVms(): Promise<VmObservation[]> {
    return ((await this.call<{ vms?: WireVmObservation[] }>('ListVms', {})).vms ?? []).map(vmObservationFromWire);
  }

  /** Resolves when the signal aborts or the stream ends (agent restarted, connection lost); the caller subscribes again. */
  watchVms(signal: AbortSignal, onChange: (name: string) => void): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    const call = (this.client as unknown as { WatchVms(req: unknown, options: grpc.CallOptions): grpc.ClientReadableStream<{ vm_name: string }> }).WatchVms({}, {});
    return new Promise((resolve) => {
      const stop = (): void => call.cancel();
      signal.addEventListener('abort', stop, { once: true });
      const done = (): void => { signal.removeEventListener('abort', stop); resolve(); };
      call.on('data', (ev: { vm_name: string }) => { if (ev.vm_name) onChange(ev.vm_name); });
      call.on('error', done);
      call.on('end', done);
    });
  }

  /** Resolves with the disk's size once the agent has opened its file (or rejects with its typed error). */
  readBlockStorage(name: string, signal: AbortSignal): Promise<BlockStorageContent> {
    const call = (this.client as unknown as { ReadBlockStorage(req: unknown, options: grpc.CallOptions): grpc.ClientReadableStream<{ data: Buffer; size?: number | string }> }).ReadBlockStorage({ name }, {});
    signal.addEventListener('abort', () => call.cancel(), { once: true });
    const chunks = call[Symbol.asyncIterator]();
    return chunks.next().then((first) => {
      if (first.done) throw new NotFoundError('block storage', name);
      const head = first.value as { data: Buffer; size?: number | string };
      async function* rest(): AsyncGenerator<Buffer> {
        if (head.data.length) yield head.data;
        for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield (next.value as { data: Buffer }).data;
      }
      return { size: Number(head.size ?? 0), chunks: rest() };
    }, (err) => { throw fromGrpcError(err); });
  }

  /**
   * Resolves once the agent has opened the VM's console (or rejects with its typed error); the
   * stream itself has no deadline, since a console stays open as long as someone watches it.
   */
  openConsole(name: string, kind: 'serial' | 'vnc'): Promise<ConsoleStream> {
    const call = (this.client as unknown as { Console(options: grpc.CallOptions): grpc.ClientDuplexStream<WireConsoleInput, WireConsoleOutput> }).Console({});
    const dataListeners: ((chunk: Buffer) => void)[] = [];
    const endListeners: ((error?: Error) => void)[] = [];
    const early: Buffer[] = [];
    let ended: { error?: Error } | undefined;
    let closedByUs = false;
    const stream: ConsoleStream = {
      onData(listener) {
        dataListeners.push(listener);
        for (const chunk of early.splice(0)) listener(chunk);
      },
      onEnd(listener) {
        if (ended) listener(ended.error);
        else endListeners.push(listener);
      },
      write(chunk) {
        if (!ended) call.write({ data: chunk });
      },
      close: () => {
        if (ended) return;
        closedByUs = true;
        call.end();
        call.cancel();
      },
    };
    const finish = (error?: Error) => {
      if (ended) return;
      ended = { error };
      this.consoles.delete(stream);
      for (const l of endListeners) l(error);
    };
    return new Promise((resolve, reject) => {
      let opened = false;
      const timer = setTimeout(() => {
        if (opened) return;
        closedByUs = true;
        call.cancel();
        reject(new DeadlineExceededError(`console of ${name} did not open within ${this.deadlineMs} ms`));
      }, this.deadlineMs);
      call.on('data', (msg: WireConsoleOutput) => {
        if (!opened && msg.opened) {
          opened = true;
          clearTimeout(timer);
          this.consoles.add(stream);
          resolve(stream);
        }
        if (msg.data && msg.data.length > 0) {
          if (dataListeners.length === 0) early.push(msg.data);
          else for (const l of dataListeners) l(msg.data);
        }
      });
      call.on('error', (err: grpc.ServiceError) => {
        const typed = closedByUs && err.code === grpc.status.CANCELLED ? undefined : fromGrpcError(err);
        if (!opened) {
          clearTimeout(timer);
          if (!closedByUs) reject(typed);
        }
        finish(typed);
      });
      call.on('end', () => finish());
      call.on('status', () => finish());
      call.write({ open: { vm_name: name, kind } });
    });
  }

  close(): void {
    for (const c of [...this.consoles]) c.close();
    this.client.close();
  }
}
