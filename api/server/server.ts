// The gRPC facade: authenticates, turns each RPC into a handler call bounded by the client's
// deadline, maps errors to gRPC statuses in one place, and serves reflection for generic clients.
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { timingSafeEqual } from 'node:crypto';
import { logger } from '../log';
import { WatchCacheStore } from '../store/watch-cache';
import { toServiceError } from './status';
import { loadFacadeProto } from './proto';
import type { CallInfo, FacadeContext, Handler, ServiceHandlers } from './context';
import { nodeService } from './node';
import { networkService } from './network';
import { blockStorageService } from './blockstorage';
import { imageService } from './image';
import { virtualMachineService } from './virtualmachine';
import { resourceService } from './resource';
import { rpcDuration } from './metrics';

export interface FacadeOptions extends FacadeContext {
  listen: string;
  /** Bearer token required on every call; undefined disables authentication (tests only). */
  token?: string;
  tls?: { cert: Buffer; key: Buffer };
}

export interface Facade {
  port: number;
  server: grpc.Server;
  stop(): Promise<void>;
}

function authenticate(metadata: grpc.Metadata, token: string | undefined): void {
  if (token === undefined) return;
  const header = String(metadata.get('authorization')[0] ?? '');
  const presented = Buffer.from(header.replace(/^Bearer\s+/i, ''));
  const expected = Buffer.from(token);
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
    throw Object.assign(new Error('missing or wrong bearer token (n0ctl reads it from ~/.n0stack/config)'), { grpcCode: grpc.status.UNAUTHENTICATED });
  }
}

function unary(service: string, method: string, handler: Handler, options: FacadeOptions): grpc.handleUnaryCall<any, any> {
  const log = logger('facade');
  return (call, callback) => {
    const started = process.hrtime.bigint();
    const controller = new AbortController();
    call.on('cancelled', () => controller.abort());
    const deadline = call.getDeadline();
    const deadlineMs = deadline instanceof Date ? deadline.getTime() : Number.isFinite(deadline) ? Number(deadline) : Date.now() + options.defaultWaitMs;
    const info: CallInfo = { deadline: deadlineMs, signal: controller.signal };
    Promise.resolve()
      .then(() => authenticate(call.metadata, options.token))
      .then(() => handler(call.request, info))
      .then((response) => {
        rpcDuration.observe({ method: `${service}/${method}`, code: 'OK' }, Number(process.hrtime.bigint() - started) / 1e9);
        callback(null, response);
      }, (err) => {
        const status = (err as { grpcCode?: number }).grpcCode !== undefined
          ? { code: (err as { grpcCode: number }).grpcCode, details: (err as Error).message }
          : toServiceError(err);
        rpcDuration.observe({ method: `${service}/${method}`, code: grpc.status[status.code!] }, Number(process.hrtime.bigint() - started) / 1e9);
        if (status.code === grpc.status.INTERNAL) log.error(`${service}/${method} failed`, { error: (err as Error).stack });
        else log.debug(`${service}/${method}: ${status.details}`);
        callback(status as grpc.ServiceError);
      });
  };
}

export async function startFacade(given: FacadeOptions): Promise<Facade> {
  // Every waiting RPC watches its kind: one shared watch per kind serves them all.
  const watchCache = new WatchCacheStore(given.store);
  const options = { ...given, store: watchCache };
  const definition = loadFacadeProto();
  const proto = grpc.loadPackageDefinition(definition) as any;
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
  const services: Record<string, ServiceHandlers> = {
    NodeService: nodeService(options),
    NetworkService: networkService(options),
    BlockStorageService: blockStorageService(options),
    ImageService: imageService(options),
    VirtualMachineService: virtualMachineService(options),
  };
  for (const [name, handlers] of Object.entries(services)) {
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const [method, handler] of Object.entries(handlers)) implementation[method] = unary(name, method, handler, options);
    server.addService(proto.n0stack[name].service, implementation);
  }
  const resources = resourceService(options);
  const { Watch, ...resourceUnary } = resources;
  const resourceImpl: grpc.UntypedServiceImplementation = {};
  for (const [method, handler] of Object.entries(resourceUnary)) resourceImpl[method] = unary('ResourceService', method, handler as Handler, options);
  resourceImpl.Watch = (call: grpc.ServerWritableStream<any, any>) => {
    try { authenticate(call.metadata, options.token); } catch (err) {
      call.destroy(Object.assign(err as Error, { code: grpc.status.UNAUTHENTICATED }));
      return;
    }
    Watch(call);
  };
  server.addService(proto.n0stack.ResourceService.service, resourceImpl);
  new ReflectionService(definition).addToServer(server);

  const credentials = options.tls
    ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: options.tls.cert, private_key: options.tls.key }], false)
    : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(options.listen, credentials, (err, p) => (err ? reject(err) : resolve(p))));
  logger('facade').info(`facade listening on ${options.listen.replace(/:\d+$/, `:${port}`)} (store: ${options.store.backend})`);
  return {
    port,
    server,
    stop: () => new Promise<void>((resolve) => {
      const timer = setTimeout(() => { server.forceShutdown(); resolve(); }, 5000);
      server.tryShutdown(() => { clearTimeout(timer); resolve(); });
    }).then(() => watchCache.close()),
  };
}
