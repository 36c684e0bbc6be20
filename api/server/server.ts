// The gRPC facade: authenticates, turns each RPC into a handler call bounded by the client's
// deadline, maps errors to gRPC statuses in one place, and serves reflection for generic clients.
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { logger } from '../log';
import { WatchCacheStore } from '../store/watch-cache';
import { toServiceError } from './status';
import { tolerant, undecodable } from './decode';
import { grpcService, loadFacadeProto } from './proto';
import type { CallInfo, FacadeContext, Handler, ServiceHandlers } from './context';
import { nodeService } from './node';
import { networkService } from './network';
import { blockStorageService } from './blockstorage';
import { imageService } from './image';
import { virtualMachineService } from './virtualmachine';
import { resourceService } from './resource';
import { rpcDuration } from './metrics';
import { replyDeadline } from './wait';
import { anyOf, authenticate, authorize, singleToken, type Principal, type TokenAuthority } from './auth';

export interface FacadeTls {
  cert: Buffer;
  key: Buffer;
  /**
   * CA of client certificates. Given, the facade asks for one (without requiring it: admins and
   * viewers come with tokens) and a verified node certificate makes the caller that node.
   */
  clientCa?: Buffer;
}

export interface FacadeOptions extends FacadeContext {
  listen: string;
  /** The admin bearer token; with `tokens` undefined too, no authentication (tests only). */
  token?: string;
  /** More tokens (admin or viewer), e.g. the hashed ones of `n0stack token create`. */
  tokens?: TokenAuthority;
  /** Without it the facade speaks plaintext; `n0stack api` requires an explicit opt-in for that. */
  tls?: FacadeTls;
}

export interface Facade {
  port: number;
  server: grpc.Server;
  stop(): Promise<void>;
}

/** The string with lone surrogates replaced by U+FFFD (String.prototype.toWellFormed, ES2024). */
function wellFormed(text: string): string {
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

/** The gRPC status of an error: auth's carry their code, the rest map by kind (status.ts). */
function statusOf(err: unknown): Partial<grpc.StatusObject> {
  const status = (err as { grpcCode?: number }).grpcCode !== undefined
    ? { code: (err as { grpcCode: number }).grpcCode, details: (err as Error).message }
    : toServiceError(err);
  // Messages quote the caller's input, maybe cut inside a surrogate pair; grpc-js percent-
  // encodes the details and throws on a lone surrogate, which would crash the process.
  if (typeof status.details === 'string') status.details = wellFormed(status.details);
  return status;
}

type AuthenticatedCall = { metadata: grpc.Metadata; getAuthContext?: () => { sslPeerCertificate?: object } | null };

function authorityOf(options: FacadeOptions): TokenAuthority | undefined {
  if (options.token === undefined && options.tokens === undefined) return undefined;
  return anyOf(options.token !== undefined ? singleToken(options.token) : undefined, options.tokens);
}

function admit(call: AuthenticatedCall, service: string, method: string, request: unknown, tokens: TokenAuthority | undefined): Principal {
  const peer = call.getAuthContext?.()?.sslPeerCertificate as Parameters<typeof authenticate>[1];
  const principal = authenticate(call.metadata, peer, { tokens });
  authorize(principal, service, method, request);
  const bad = undecodable(request, `${service}.${method}`);
  if (bad) throw bad;
  return principal;
}

/**
 * What a handler may look at besides the request. The abort signal is made only when a handler
 * asks for it (the waiting ones): most calls are quick reads, and grpc-js reports 'cancelled'
 * for finished calls too, where aborting would build a DOMException per call for nobody.
 */
function callInfo(call: grpc.ServerUnaryCall<unknown, unknown>, defaultWaitMs: number, finished: () => boolean): CallInfo {
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : Number.isFinite(deadline) ? Number(deadline) : Date.now() + defaultWaitMs;
  let controller: AbortController | undefined;
  let cancelled = false;
  call.once('cancelled', () => { if (finished()) return; cancelled = true; controller?.abort(); });
  return {
    deadline: replyDeadline(deadlineMs),
    get signal() {
      if (!controller) {
        controller = new AbortController();
        if (cancelled) controller.abort();
      }
      return controller.signal;
    },
  };
}

function unary(service: string, method: string, handler: Handler, options: FacadeOptions, tokens: TokenAuthority | undefined): grpc.handleUnaryCall<any, any> {
  const log = logger('facade');
  const name = `${service}/${method}`;
  const ok = rpcDuration.labels({ method: name, code: 'OK' });
  return (call, callback) => {
    const started = process.hrtime.bigint();
    let done = false;
    const info = callInfo(call, options.defaultWaitMs, () => done);
    Promise.resolve()
      .then(() => admit(call, service, method, call.request, tokens))
      .then((principal) => { info.principal = principal; return handler(call.request, info); })
      .then((response) => {
        done = true;
        ok.observe(Number(process.hrtime.bigint() - started) / 1e9);
        callback(null, response);
      }, (err) => {
        done = true;
        const status = statusOf(err);
        rpcDuration.observe({ method: name, code: grpc.status[status.code!] }, Number(process.hrtime.bigint() - started) / 1e9);
        if (status.code === grpc.status.INTERNAL) log.error(`${name} failed`, { error: (err as Error).stack });
        else log.debug(`${name}: ${status.details}`);
        callback(status as grpc.ServiceError);
      });
  };
}

export async function startFacade(given: FacadeOptions): Promise<Facade> {
  // Every waiting RPC watches its kind: one shared watch per kind serves them all.
  const watchCache = new WatchCacheStore(given.store);
  const options = { ...given, store: watchCache };
  const definition = loadFacadeProto();
  const tokens = authorityOf(options);
  // Nothing reads channelz here, and its per-call trackers were a measurable share of a cheap read.
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024, 'grpc.enable_channelz': 0 });
  const services: Record<string, ServiceHandlers> = {
    NodeService: nodeService(options),
    NetworkService: networkService(options),
    BlockStorageService: blockStorageService(options),
    ImageService: imageService(options),
    VirtualMachineService: virtualMachineService(options),
  };
  for (const [name, handlers] of Object.entries(services)) {
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const [method, handler] of Object.entries(handlers)) implementation[method] = unary(name, method, handler, options, tokens);
    server.addService(tolerant(grpcService(definition, name).service), implementation);
  }
  const resources = resourceService(options);
  const { Watch, ...resourceUnary } = resources;
  const resourceImpl: grpc.UntypedServiceImplementation = {};
  for (const [method, handler] of Object.entries(resourceUnary)) resourceImpl[method] = unary('ResourceService', method, handler as Handler, options, tokens);
  resourceImpl.Watch = (call: grpc.ServerWritableStream<any, any>) => {
    try { admit(call, 'ResourceService', 'Watch', call.request, tokens); } catch (err) {
      // Not destroy(): a destroyed stream never sends its status, and the caller would wait forever.
      call.emit('error', statusOf(err));
      return;
    }
    Watch(call);
  };
  server.addService(tolerant(grpcService(definition, 'ResourceService').service), resourceImpl);
  new ReflectionService(definition).addToServer(server);

  const credentials = options.tls ? facadeCredentials(options.tls) : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(options.listen, credentials, (err, p) => (err ? reject(err) : resolve(p))));
  logger('facade').info(`facade listening on ${options.listen.replace(/:\d+$/, `:${port}`)} (${options.tls ? 'TLS' : 'PLAINTEXT'}, store: ${options.store.backend})`);
  return {
    port,
    server,
    stop: () => new Promise<void>((resolve) => {
      const timer = setTimeout(() => { server.forceShutdown(); resolve(); }, 5000);
      server.tryShutdown(() => { clearTimeout(timer); resolve(); });
    }).then(() => watchCache.close()),
  };
}

/**
 * TLS that asks for a client certificate without requiring one. createSsl cannot say that (its
 * requestCert also rejects clients without one), the certificate-provider credentials can; one
 * static provider serves as both identity and CA provider (grpc-js names the two arguments the
 * other way round from how it uses them, so passing the same object sidesteps the order).
 */
function facadeCredentials(tls: FacadeTls): grpc.ServerCredentials {
  if (!tls.clientCa) return grpc.ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }], false);
  // Answer on the next tick: grpc-js registers the server's watcher only after subscribing, so a
  // synchronous answer would be lost and every connection dropped as "unloaded credentials".
  const provider: grpc.experimental.CertificateProvider = {
    addCaCertificateListener: (listener) => queueMicrotask(() => listener({ caCertificate: tls.clientCa! })),
    removeCaCertificateListener: () => undefined,
    addIdentityCertificateListener: (listener) => queueMicrotask(() => listener({ certificate: tls.cert, privateKey: tls.key })),
    removeIdentityCertificateListener: () => undefined,
  };
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
}
