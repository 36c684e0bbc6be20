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
import { anyOf, authenticate, authorize, singleToken, TOKEN_ROLES, type PeerCertificateLike, type Principal, type TokenAuthority, type TokenRole } from './auth';
import { InvalidArgumentError } from '../errors';

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
  /**
   * A second, plaintext listener for the original n0cli and other seed-era clients, which dial
   * without TLS or metadata: every call there acts with this one role (no token is asked for).
   */
  legacy?: LegacyListener;
}

export interface LegacyListener {
  listen: string;
  role: TokenRole;
  /** Listen beyond loopback too (--legacy-listen-force): anyone who reaches it has the role. */
  force?: boolean;
}

/** 127.0.0.0/8, ::1 or localhost: the addresses only this host can reach. */
export function isLoopbackListen(listen: string): boolean {
  const host = listen.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === '::1' || host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export interface Facade {
  port: number;
  server: grpc.Server;
  /** The legacy listener's port, when there is one. */
  legacyPort?: number;
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

/** Who the caller is, then whether it may: the same authorization on every listener. */
type Admission = (call: AuthenticatedCall, service: string, method: string, request: unknown) => Principal;

function admitted(principal: Principal, service: string, method: string, request: unknown): Principal {
  authorize(principal, service, method, request);
  const bad = undecodable(request, `${service}.${method}`);
  if (bad) throw bad;
  return principal;
}

function tokenAdmission(tokens: TokenAuthority | undefined): Admission {
  return (call, service, method, request) => {
    const peer = () => call.getAuthContext?.()?.sslPeerCertificate as PeerCertificateLike | undefined;
    return admitted(authenticate(call.metadata, peer, { tokens }), service, method, request);
  };
}

/** The legacy listener's: whatever the call carries, it is the operator's chosen role. */
function fixedAdmission(role: TokenRole): Admission {
  const principal: Principal = { role, name: `legacy listener (${role})` };
  return (_call, service, method, request) => admitted(principal, service, method, request);
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

function unary(service: string, method: string, handler: Handler, options: FacadeOptions, admit: Admission): grpc.handleUnaryCall<any, any> {
  const log = logger('facade');
  const name = `${service}/${method}`;
  const ok = rpcDuration.labels({ method: name, code: 'OK' });
  return (call, callback) => {
    const started = process.hrtime.bigint();
    let done = false;
    const info = callInfo(call, options.defaultWaitMs, () => done);
    Promise.resolve()
      .then(() => admit(call, service, method, call.request))
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
  if (given.legacy) {
    if (!TOKEN_ROLES.includes(given.legacy.role)) {
      throw new InvalidArgumentError(`--legacy-role must be one of ${TOKEN_ROLES.join(', ')}, not ${JSON.stringify(given.legacy.role)}`, '--legacy-role');
    }
    if (!isLoopbackListen(given.legacy.listen) && !given.legacy.force) {
      throw new InvalidArgumentError(`--legacy-listen ${given.legacy.listen}: the legacy listener is plaintext without authentication, so it listens on loopback only (127.0.0.1, ::1, localhost); --legacy-listen-force opens it on another address`, '--legacy-listen');
    }
  }
  // Every waiting RPC watches its kind: one shared watch per kind serves them all.
  const watchCache = new WatchCacheStore(given.store);
  const options = { ...given, store: watchCache };
  const definition = loadFacadeProto();
  const services: Record<string, ServiceHandlers> = {
    NodeService: nodeService(options),
    NetworkService: networkService(options),
    BlockStorageService: blockStorageService(options),
    ImageService: imageService(options),
    VirtualMachineService: virtualMachineService(options),
  };
  const resources = resourceService(options);
  const log = logger('facade');

  const serve = async (listen: string, credentials: grpc.ServerCredentials, admit: Admission): Promise<{ server: grpc.Server; port: number }> => {
    // Nothing reads channelz here, and its per-call trackers were a measurable share of a cheap read.
    const server = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024, 'grpc.enable_channelz': 0 });
    for (const [name, handlers] of Object.entries(services)) {
      const implementation: grpc.UntypedServiceImplementation = {};
      for (const [method, handler] of Object.entries(handlers)) implementation[method] = unary(name, method, handler, options, admit);
      server.addService(tolerant(grpcService(definition, name).service), implementation);
    }
    const { Watch, ...resourceUnary } = resources;
    const resourceImpl: grpc.UntypedServiceImplementation = {};
    for (const [method, handler] of Object.entries(resourceUnary)) resourceImpl[method] = unary('ResourceService', method, handler as Handler, options, admit);
    resourceImpl.Watch = (call: grpc.ServerWritableStream<any, any>) => {
      try { admit(call, 'ResourceService', 'Watch', call.request); } catch (err) {
        // Not destroy(): a destroyed stream never sends its status, and the caller would wait forever.
        call.emit('error', statusOf(err));
        return;
      }
      Watch(call);
    };
    server.addService(tolerant(grpcService(definition, 'ResourceService').service), resourceImpl);
    new ReflectionService(definition).addToServer(server);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync(listen, credentials, (err, p) => (err ? reject(err) : resolve(p))));
    return { server, port };
  };

  const { server, port } = await serve(options.listen, options.tls ? facadeCredentials(options.tls) : grpc.ServerCredentials.createInsecure(), tokenAdmission(authorityOf(options)));
  log.info(`facade listening on ${options.listen.replace(/:\d+$/, `:${port}`)} (${options.tls ? 'TLS' : 'PLAINTEXT'}, store: ${options.store.backend})`);
  let legacy: { server: grpc.Server; port: number } | undefined;
  if (options.legacy) {
    try {
      legacy = await serve(options.legacy.listen, grpc.ServerCredentials.createInsecure(), fixedAdmission(options.legacy.role));
    } catch (err) {
      server.forceShutdown();
      await watchCache.close();
      throw err;
    }
    const banner = '!'.repeat(78);
    log.warn(`${banner}\nLEGACY LISTENER on ${options.legacy.listen.replace(/:\d+$/, `:${legacy.port}`)}: PLAINTEXT, NO AUTHENTICATION. Every call there acts as\n${options.legacy.role.toUpperCase()} (--legacy-role), for the original n0cli and other seed-era clients.\n${banner}`);
  }
  const shutdown = (s: grpc.Server) => new Promise<void>((resolve) => {
    const timer = setTimeout(() => { s.forceShutdown(); resolve(); }, 5000);
    s.tryShutdown(() => { clearTimeout(timer); resolve(); });
  });
  return {
    port,
    server,
    legacyPort: legacy?.port,
    stop: () => Promise.all([shutdown(server), legacy && shutdown(legacy.server)]).then(() => watchCache.close()),
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
