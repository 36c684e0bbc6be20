// The agent's gRPC endpoint: any AgentApi (HostAgent on a real node, the simulated agent in
// benchmarks) behind n0stack.agent.v1.Agent with mutual TLS. A client must present a certificate
// signed by the cluster CA, or the TLS handshake fails before any RPC runs.
import * as grpc from '@grpc/grpc-js';
import { FailedPreconditionError, InvalidArgumentError } from '../api/errors';
import { logger } from '../api/log';
import { validateName } from '../api/names';
import { tolerant, undecodable } from '../api/server/decode';
import type { AgentApi, ConsoleStream } from './api';
import { toGrpcStatus } from './status';
import { refuseNodeClients } from './peer-auth';
import { agentRpcDuration } from './metrics';
import { validateConsoleKind } from './validate';
import {
  agentService,
  blockStorageToWire,
  ensureBlockStorageFromWire,
  ensureNetworkFromWire,
  ensureVmFromWire,
  networkStateToWire,
  nodeObservationToWire,
  vmObservationToWire,
  type WireConsoleInput,
  type WireConsoleOutput,
  type WireEnsureBlockStorageRequest,
  type WireEnsureNetworkRequest,
  type WireEnsureVmRequest,
} from './wire';

const log = logger('agent-server');

export const DEFAULT_AGENT_LISTEN = '127.0.0.1:20181';

export interface ServerTls {
  /** PEM of the cluster CA that client certificates must chain to. */
  ca: Buffer | string;
  cert: Buffer | string;
  key: Buffer | string;
}

export interface AgentServerOptions {
  agent: AgentApi;
  /** host:port; port 0 picks a free one (see AgentServer.port). */
  listen?: string;
  tls: ServerTls;
}

const buf = (v: Buffer | string) => (Buffer.isBuffer(v) ? v : Buffer.from(v));

/** Which client called, for the log: the CN of its certificate. */
function peerIdentity(call: { getAuthContext?: () => { sslPeerCertificate?: { subject?: { CN?: string } } } }): string | undefined {
  try {
    return call.getAuthContext?.()?.sslPeerCertificate?.subject?.CN;
  } catch {
    return undefined;
  }
}

function unary<Req, Res>(method: string, fn: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const started = Date.now();
    const timer = agentRpcDuration.startTimer({ method });
    const bad = undecodable(call.request, method);
    (bad ? Promise.reject(bad) : fn(call.request)).then(
      (res) => {
        timer({ code: 'OK' });
        log.debug('rpc', { method, ms: Date.now() - started, peer: peerIdentity(call as never) });
        callback(null, res);
      },
      (err: unknown) => {
        const status = toGrpcStatus(err);
        timer({ code: grpc.status[status.code] });
        log[status.code === grpc.status.INTERNAL ? 'error' : 'info']('rpc failed', { method, code: grpc.status[status.code], error: status.details, peer: peerIdentity(call as never) });
        callback(status);
      },
    );
  };
}

type ConsoleCall = grpc.ServerDuplexStream<WireConsoleInput, WireConsoleOutput>;

function consoleHandler(agent: AgentApi): grpc.handleBidiStreamingCall<WireConsoleInput, WireConsoleOutput> {
  return (call: ConsoleCall) => {
    let console: ConsoleStream | undefined;
    let opening = false;
    let finished = false;
    const pending: Buffer[] = [];
    const fail = (err: unknown) => {
      if (finished) return;
      finished = true;
      console?.close();
      call.emit('error', toGrpcStatus(err));
    };
    const finish = () => {
      if (finished) return;
      finished = true;
      console?.close();
      call.end();
    };
    call.on('data', (msg: WireConsoleInput) => {
      if (finished) return;
      const bad = undecodable(msg, 'Console');
      if (bad) return fail(bad);
      if (!opening) {
        opening = true;
        if (!msg.open) return fail(new InvalidArgumentError('the first console message must be open', 'open'));
        const { vm_name: name, kind } = msg.open;
        Promise.resolve()
          .then(() => agent.openConsole(name, validateConsoleKind(kind)))
          .then((stream) => {
            if (finished) return stream.close();
            console = stream;
            log.info('console opened', { name, kind, peer: peerIdentity(call as never) });
            call.write({ data: Buffer.alloc(0), opened: true });
            stream.onData((chunk) => { if (!finished) call.write({ data: chunk, opened: false }); });
            stream.onEnd((error) => (error ? fail(error) : finish()));
            for (const chunk of pending.splice(0)) stream.write(chunk);
          }, fail);
        return;
      }
      if (msg.open) return fail(new InvalidArgumentError('open may only be the first console message', 'open'));
      if (!msg.data || msg.data.length === 0) return;
      if (console) console.write(msg.data);
      else pending.push(msg.data);
    });
    // The client half-closing or going away closes the console; the VM is unaffected.
    call.on('end', finish);
    call.on('cancelled', () => {
      finished = true;
      console?.close();
    });
    call.on('error', () => {
      finished = true;
      console?.close();
    });
  };
}

function watchVmsHandler(agent: AgentApi): grpc.handleServerStreamingCall<unknown, { vm_name: string }> {
  return (call) => {
    const bad = undecodable(call.request, 'WatchVms');
    if (bad) { call.emit('error', toGrpcStatus(bad)); return; }
    const stop = new AbortController();
    call.on('cancelled', () => stop.abort());
    call.on('close', () => stop.abort());
    call.on('error', () => stop.abort());
    agent.watchVms(stop.signal, (name) => { if (!stop.signal.aborted) call.write({ vm_name: name }); })
      .then(() => call.end(), () => call.end());
  };
}

function readBlockStorageHandler(agent: AgentApi): grpc.handleServerStreamingCall<{ name?: string }, { data: Buffer; size?: number }> {
  return (call) => {
    const stop = new AbortController();
    call.on('cancelled', () => stop.abort());
    call.on('error', () => stop.abort());
    (async () => {
      const bad = undecodable(call.request, 'ReadBlockStorage');
      if (bad) throw bad;
      if (!agent.readBlockStorage) throw new FailedPreconditionError('this agent keeps no disk files to read', 'name');
      const { size, chunks } = await agent.readBlockStorage(validateName(call.request.name, 'name'), stop.signal);
      let first = true;
      for await (const data of chunks) {
        // Backpressure: a slow downloader holds the file read, not the agent's memory.
        if (!call.write(first ? { data, size } : { data })) await new Promise((resolve) => call.once('drain', resolve));
        first = false;
        if (stop.signal.aborted) return;
      }
      if (first) call.write({ data: Buffer.alloc(0), size });
      call.end();
    })().catch((err) => { if (!stop.signal.aborted) call.emit('error', toGrpcStatus(err)); });
  };
}

function implementation(agent: AgentApi): grpc.UntypedServiceImplementation {
  return {
    EnsureBlockStorage: unary('EnsureBlockStorage', async (req: WireEnsureBlockStorageRequest) => blockStorageToWire(await agent.ensureBlockStorage(ensureBlockStorageFromWire(req)))),
    ResizeBlockStorage: unary('ResizeBlockStorage', async (req: { name: string; limit_bytes: number }) => blockStorageToWire(await agent.resizeBlockStorage(req.name, req.limit_bytes))),
    DeleteBlockStorage: unary('DeleteBlockStorage', async (req: { name: string }) => { await agent.deleteBlockStorage(req.name); return {}; }),
    EnsureNetwork: unary('EnsureNetwork', async (req: WireEnsureNetworkRequest) => networkStateToWire(await agent.ensureNetwork(ensureNetworkFromWire(req)))),
    DeleteNetwork: unary('DeleteNetwork', async (req: { name: string }) => { await agent.deleteNetwork(req.name); return {}; }),
    EnsureVm: unary('EnsureVm', async (req: WireEnsureVmRequest) => vmObservationToWire(await agent.ensureVm(ensureVmFromWire(req)))),
    VmAction: unary('VmAction', async (req: { name: string; action: string; id?: string }) => vmObservationToWire(await agent.vmAction(req.name, req.action as never, req.id ? { id: req.id } : {}))),
    DeleteVm: unary('DeleteVm', async (req: { name: string }) => { await agent.deleteVm(req.name); return {}; }),
    Observe: unary('Observe', async () => nodeObservationToWire(await agent.observe())),
    ListVms: unary('ListVms', async () => ({ vms: (await agent.listVms()).map(vmObservationToWire) })),
    Console: consoleHandler(agent),
    WatchVms: watchVmsHandler(agent),
    ReadBlockStorage: readBlockStorageHandler(agent),
    ProbeAccelerator: unary('ProbeAccelerator', async () => {
      if (!agent.reprobeAccelerator) throw new FailedPreconditionError('this agent cannot probe its accelerator', 'accelerator');
      const p = await agent.reprobeAccelerator();
      return { accelerator: p.accelerator, cpu_model: p.cpuModel, reason: p.reason, kvm: p.kvm, condition_reason: p.conditionReason, probe_ms: p.probeMs };
    }),
  };
}

export function serverCredentials(tls: ServerTls): grpc.ServerCredentials {
  // checkClientCertificate=true: no client certificate signed by the CA, no connection.
  return grpc.ServerCredentials.createSsl(buf(tls.ca), [{ cert_chain: buf(tls.cert), private_key: buf(tls.key) }], true);
}

export class AgentServer {
  private constructor(private readonly server: grpc.Server, readonly host: string, readonly port: number) {}

  /** host:port clients dial (the bound port when 0 was asked for). */
  get endpoint(): string {
    return this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  static async start(options: AgentServerOptions): Promise<AgentServer> {
    const listen = options.listen ?? DEFAULT_AGENT_LISTEN;
    const { host } = splitHostPort(listen);
    const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024, interceptors: [refuseNodeClients] });
    server.addService(tolerant(agentService().service), implementation(options.agent));
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(listen, serverCredentials(options.tls), (err, p) => (err ? reject(err) : resolve(p)));
    });
    log.info('agent gRPC server listening', { listen, port });
    return new AgentServer(server, host, port);
  }

  /** Stops accepting calls; in-flight calls get graceMs to finish, then are cut. */
  async stop(graceMs = 5_000): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** "host:port", "[v6]:port" → parts; InvalidArgumentError naming "listen" otherwise. */
export function splitHostPort(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new InvalidArgumentError(`listen ${JSON.stringify(listen)} must be host:port`, 'listen');
  return { host: m[1] ?? m[2], port };
}
