// The REST/JSON gateway and the web UI, served on the facade's HTTP side (the console server).
// Every /api/v0 route comes from the mapping table (routes.ts) and calls, in process, the same
// service handlers the gRPC facade serves, after the same authentication and authorization
// (api/server/auth.ts): a bearer token, or a session cookie made from one (with a CSRF token on
// every mutating request). Requests and responses pass through the proto's codecs, so the JSON
// has exactly the messages' field names and what a handler sees is what gRPC would hand it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import { logger } from '../log';
import type { Store } from '../store/store';
import { WatchCacheStore } from '../store/watch-cache';
import type { AnyResource, Kind } from '../types';
import { loadFacadeProto, serviceDefinition } from '../server/proto';
import { toServiceError } from '../server/status';
import { anyOf, authenticate, authorize, singleToken, type Principal, type TokenAuthority } from '../server/auth';
import { DOWNLOAD_PATH, type ConsoleIssuer, type DiskContent, type Handler, type ServiceHandlers } from '../server/context';
import { downloadableOn } from '../server/blockstorage';
import { validateName } from '../names';
import { nodeService } from '../server/node';
import { networkService } from '../server/network';
import { blockStorageService } from '../server/blockstorage';
import { imageService } from '../server/image';
import { virtualMachineService } from '../server/virtualmachine';
import { blockStorageMessage, imageMessage, networkMessage, nodeMessage, virtualMachineMessage } from '../server/convert';
import { match, requestOf, ROUTES, WATCH_KINDS, type Route } from './routes';
import { openApiDocument } from './openapi';
import { networkWatch } from './network-watch';
import { SessionStore, SESSION_COOKIE } from './session';
import { AdmissionReviewError, reviewAdmission, type AdmissionReview } from '../admission';

/** grpc-gateway's runtime.HTTPStatusFromCode. */
export const HTTP_STATUS: Record<number, number> = {
  [grpc.status.OK]: 200, [grpc.status.CANCELLED]: 499, [grpc.status.UNKNOWN]: 500, [grpc.status.INVALID_ARGUMENT]: 400,
  [grpc.status.DEADLINE_EXCEEDED]: 504, [grpc.status.NOT_FOUND]: 404, [grpc.status.ALREADY_EXISTS]: 409,
  [grpc.status.PERMISSION_DENIED]: 403, [grpc.status.RESOURCE_EXHAUSTED]: 429, [grpc.status.FAILED_PRECONDITION]: 400,
  [grpc.status.ABORTED]: 409, [grpc.status.OUT_OF_RANGE]: 400, [grpc.status.UNIMPLEMENTED]: 501, [grpc.status.INTERNAL]: 500,
  [grpc.status.UNAVAILABLE]: 503, [grpc.status.DATA_LOSS]: 500, [grpc.status.UNAUTHENTICATED]: 401,
};

export interface GatewayOptions {
  store: Store;
  defaultWaitMs: number;
  consoles?: ConsoleIssuer;
  /** The admin token and the token file, as the facade has them; both undefined: no authentication (tests only). */
  token?: string;
  tokens?: TokenAuthority;
  /** Served over TLS: the session cookie is Secure. */
  secure: boolean;
  /** The built UI (default: dist/web next to this module or the repository's). */
  webRoot?: string;
  /**
   * Users (AdmissionReview userInfo.username) whose writes the admission webhook lets through:
   * the facade's and controllers' service accounts, whose writes are admitted already.
   */
  admissionTrustedUsers?: readonly string[];
  /** Reads a disk's file from its node's agent (DownloadBlockStorage's URL); absent: no downloads. */
  readBlockStorage?: (nodeName: string, name: string, signal: AbortSignal) => Promise<DiskContent>;
}

class HttpError extends Error {
  constructor(readonly grpcCode: number, message: string) { super(message); }
}

// Only the kinds the gateway watches (WATCH_KINDS) have a message; internal kinds (NodeLease) have none.
const MESSAGES: Partial<Record<Kind, (doc: any) => Record<string, unknown>>> = {
  Node: nodeMessage, Network: networkMessage, BlockStorage: blockStorageMessage, Image: imageMessage, VirtualMachine: virtualMachineMessage,
};
const GET_RPC: Record<Kind, Route> = Object.fromEntries(
  (Object.values(WATCH_KINDS) as Kind[]).map((kind) => [kind, ROUTES.find((r) => r.method === 'GET' && r.path.endsWith('{name}') && r.rpc === `Get${kind}`)!]),
) as Record<Kind, Route>;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png', '.map': 'application/json',
};
const SECURITY_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  // xterm.js writes <style> elements for its theme, hence 'unsafe-inline' for styles only.
  'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
};
const MAX_BODY = 1024 * 1024;
/** Where the chart's ValidatingWebhookConfiguration sends the API server's AdmissionReviews. */
export const ADMISSION_PATH = '/admission/validate';

export function defaultWebRoot(): string {
  for (const candidate of [path.resolve(__dirname, '..', '..', 'web'), path.resolve(__dirname, '..', '..', 'dist', 'web')]) {
    if (fs.existsSync(path.join(candidate, 'index.html'))) return candidate;
  }
  return path.resolve(__dirname, '..', '..', 'dist', 'web');
}

type Codec = { requestSerialize(v: unknown): Buffer; requestDeserialize(b: Buffer): any; responseSerialize(v: unknown): Buffer };

export class Gateway {
  private readonly log = logger('gateway');
  private readonly store: WatchCacheStore;
  private readonly services: Record<string, ServiceHandlers>;
  /** Decodes requests as the gRPC server does (uint64 as numbers, defaults filled in). */
  private readonly facadeProto: PackageDefinition;
  /** Renders responses as proto3 JSON does (uint64 as strings, enums by name). */
  private readonly jsonProto: PackageDefinition;
  private readonly tokens: TokenAuthority | undefined;
  readonly sessions = new SessionStore();
  private readonly streams = new Set<AbortController>();
  private openapi?: string;
  private readonly webRoot: string;
  private readonly trustedUsers: ReadonlySet<string>;

  constructor(private readonly options: GatewayOptions) {
    this.store = new WatchCacheStore(options.store);
    const ctx = { store: this.store, defaultWaitMs: options.defaultWaitMs, consoles: options.consoles };
    this.services = {
      NodeService: nodeService(ctx), NetworkService: networkService(ctx), BlockStorageService: blockStorageService(ctx),
      ImageService: imageService(ctx), VirtualMachineService: virtualMachineService(ctx),
    };
    this.facadeProto = loadFacadeProto();
    this.jsonProto = loadFacadeProto({ longs: String });
    this.tokens = options.token === undefined && options.tokens === undefined
      ? undefined : anyOf(options.token !== undefined ? singleToken(options.token) : undefined, options.tokens);
    this.webRoot = options.webRoot ?? defaultWebRoot();
    this.trustedUsers = new Set(options.admissionTrustedUsers ?? []);
    for (const route of ROUTES) if (!this.services[route.service][route.rpc]) throw new Error(`gateway route ${route.method} ${route.path}: no handler ${route.service}.${route.rpc}`);
  }

  /** The http.RequestListener. */
  readonly handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    this.serve(req, res).catch((err) => this.fail(res, err));
  };

  async close(): Promise<void> {
    for (const stream of this.streams) stream.abort();
    await this.store.close();
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway');
    const method = req.method ?? 'GET';
    const pathname = url.pathname;
    if (pathname === ADMISSION_PATH && method === 'POST') return this.serveAdmission(req, res);
    if (pathname.startsWith(`${DOWNLOAD_PATH}/`) && (method === 'GET' || method === 'HEAD')) return this.serveDownload(decodeURIComponent(pathname.slice(DOWNLOAD_PATH.length + 1)), method, req, res);
    if (!pathname.startsWith('/api/')) return this.serveStatic(method, pathname, res);
    if (pathname === '/api/v0/openapi.json' && method === 'GET') {
      this.openapi ??= JSON.stringify(openApiDocument(this.facadeProto), null, 2);
      return this.send(res, 200, this.openapi, 'application/json');
    }
    if (pathname === '/api/v0/session') return this.serveSession(method, req, res);
    const watch = /^\/api\/v0\/watch\/(\w+)$/.exec(pathname);
    if (watch && method === 'GET' && watch[1] === 'event') {
      authorize(this.principal(req, method), 'ResourceService', 'Watch', { kind: 'Event' });
      const events = this.store.events;
      if (!events) throw new HttpError(grpc.status.FAILED_PRECONDITION, 'this store keeps no Events');
      // Events are Kubernetes-shaped documents (api/store/events.ts), streamed as they are.
      return this.stream(req, res, () => events.list(), (rv, signal) => events.watch({ resourceVersion: rv, signal }), (e) => e);
    }
    if (watch && method === 'GET') {
      const kind = (WATCH_KINDS as Record<string, Kind>)[watch[1]];
      if (!kind) throw new HttpError(grpc.status.NOT_FOUND, `no kind ${JSON.stringify(watch[1])} to watch; one of ${Object.keys(WATCH_KINDS).join(', ')}`);
      const principal = this.principal(req, method);
      authorize(principal, 'ResourceService', 'Watch', {});
      return this.serveWatch(kind, req, res);
    }
    const found = match(method, pathname);
    if (!found) throw new HttpError(grpc.status.NOT_FOUND, `no route ${method} ${pathname} (see /api/v0/openapi.json)`);
    if ('allowed' in found) {
      res.setHeader('Allow', found.allowed.join(', '));
      throw Object.assign(new HttpError(grpc.status.UNIMPLEMENTED, `${method} is not allowed on ${pathname}; allowed: ${found.allowed.join(', ')}`), { httpStatus: 405 });
    }
    const { route, params } = found;
    // Authenticate before reading the body: an unauthenticated caller learns nothing and costs little.
    const principal = this.principal(req, method);
    const body = route.body ? await readJson(req) : undefined;
    const codec = this.codec(this.facadeProto, route);
    let request: unknown;
    try {
      request = codec.requestDeserialize(codec.requestSerialize(requestOf(route, params, body)));
    } catch (err) {
      throw new HttpError(grpc.status.INVALID_ARGUMENT, `request body does not fit ${route.service}.${route.rpc}: ${(err as Error).message}`);
    }
    authorize(principal, route.service, route.rpc, request);
    const controller = new AbortController();
    res.on('close', () => { if (!res.writableFinished) controller.abort(); });
    const handler: Handler = this.services[route.service][route.rpc];
    const response = await handler(request, { deadline: Date.now() + this.options.defaultWaitMs, signal: controller.signal, principal });
    const json = (serviceDefinition(this.jsonProto, route.service) as unknown as Record<string, { responseDeserialize(b: Buffer): unknown }>)[route.rpc]
      .responseDeserialize(codec.responseSerialize(response ?? {}));
    this.send(res, 200, JSON.stringify(json), 'application/json');
  }

  private codec(definition: PackageDefinition, route: Route): Codec {
    return (serviceDefinition(definition, route.service) as unknown as Record<string, Codec>)[route.rpc];
  }

  /** A kind's message as the Get RPC's JSON renders it. */
  private render(kind: Kind, doc: AnyResource): unknown {
    const route = GET_RPC[kind];
    const wire = this.codec(this.facadeProto, route).responseSerialize(MESSAGES[kind]!(doc));
    return (serviceDefinition(this.jsonProto, route.service) as unknown as Record<string, { responseDeserialize(b: Buffer): unknown }>)[route.rpc].responseDeserialize(wire);
  }

  /**
   * Who calls: a bearer token decides when one is sent; otherwise the session cookie, whose
   * mutating requests must repeat the session's CSRF token in X-CSRF-Token (a cross-site form or
   * fetch sends the cookie but cannot read the token).
   */
  private principal(req: http.IncomingMessage, method: string): Principal {
    const authorization = req.headers.authorization;
    const metadata = new grpc.Metadata();
    if (authorization) {
      metadata.set('authorization', authorization);
      return authenticate(metadata, undefined, { tokens: this.tokens });
    }
    const session = this.sessions.fromCookie(req.headers.cookie);
    if (session) {
      if (method !== 'GET' && method !== 'HEAD' && !this.sessions.csrfMatches(session, req.headers['x-csrf-token'])) {
        throw new HttpError(grpc.status.PERMISSION_DENIED, 'missing or wrong X-CSRF-Token header (a session\'s mutating requests carry the token GET /api/v0/session gives)');
      }
      metadata.set('authorization', `Bearer ${session.token}`);
      return authenticate(metadata, undefined, { tokens: this.tokens });
    }
    return authenticate(metadata, undefined, { tokens: this.tokens });
  }

  /**
   * Who a console's WebSocket upgrade comes from, when it says (a bearer header, or the browser's
   * session cookie); undefined when it carries only its ticket. A wrong token still throws.
   */
  identify(req: http.IncomingMessage): Principal | undefined {
    if (!req.headers.authorization && !this.sessions.fromCookie(req.headers.cookie)) return undefined;
    return this.principal(req, 'GET');
  }

  private async serveSession(method: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (method === 'POST') {
      const body = await readJson(req) as { token?: unknown } | undefined;
      const token = typeof body?.token === 'string' ? body.token : '';
      if (!token) throw new HttpError(grpc.status.INVALID_ARGUMENT, 'token is required');
      const metadata = new grpc.Metadata();
      metadata.set('authorization', `Bearer ${token}`);
      const principal = authenticate(metadata, undefined, { tokens: this.tokens });
      const session = this.sessions.create(token, principal.role);
      res.setHeader('Set-Cookie', this.sessions.cookie(session, this.options.secure));
      return this.send(res, 200, JSON.stringify({ role: session.role, csrf_token: session.csrf }), 'application/json');
    }
    const session = this.sessions.fromCookie(req.headers.cookie);
    if (method === 'GET') {
      if (!session) throw new HttpError(grpc.status.UNAUTHENTICATED, 'no session; log in with a token');
      // The session's token may have been revoked since.
      this.principal(req, method);
      return this.send(res, 200, JSON.stringify({ role: session.role, csrf_token: session.csrf }), 'application/json');
    }
    if (method === 'DELETE') {
      if (session) {
        this.principal(req, method);
        this.sessions.delete(session);
      }
      res.setHeader('Set-Cookie', `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${this.options.secure ? '; Secure' : ''}`);
      return this.send(res, 200, '{}', 'application/json');
    }
    throw Object.assign(new HttpError(grpc.status.UNIMPLEMENTED, `${method} is not allowed on /api/v0/session`), { httpStatus: 405 });
  }

  /** The list as one `sync` event, then every change, from the store's watch; pings keep proxies from closing it. */
  private serveWatch(kind: Kind, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (kind === 'Network') {
      const networks = networkWatch(this.store);
      return this.stream(req, res, () => networks.list(), (rv, signal) => networks.watch(rv, signal), (d) => this.render(kind, networks.render(d)));
    }
    return this.stream(req, res, () => this.store.list(kind), (rv, signal) => this.store.watch(kind, { resourceVersion: rv, signal }), (d) => this.render(kind, d as AnyResource));
  }

  private async stream<T>(
    req: http.IncomingMessage, res: http.ServerResponse,
    list: () => Promise<{ items: T[]; resourceVersion: string }>,
    watch: (resourceVersion: string, signal: AbortSignal) => AsyncIterable<{ type: string; object: T }>,
    render: (item: T) => unknown,
  ): Promise<void> {
    const controller = new AbortController();
    this.streams.add(controller);
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    const end = () => { clearInterval(ping); controller.abort(); this.streams.delete(controller); };
    req.on('close', end);
    try {
      const listed = await list();
      res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
      res.write(`retry: 2000\nevent: sync\ndata: ${JSON.stringify({ items: listed.items.map(render), resource_version: listed.resourceVersion })}\n\n`);
      for await (const event of watch(listed.resourceVersion, controller.signal)) {
        res.write(`data: ${JSON.stringify({ type: event.type, object: render(event.object) })}\n\n`);
      }
    } catch (err) {
      if (!controller.signal.aborted) {
        if (!res.headersSent) throw err;
        // TooOld or the store gone: the browser's EventSource reconnects and lists again.
        res.write(`event: error\ndata: ${JSON.stringify({ message: (err as Error).message })}\n\n`);
      }
    } finally {
      end();
      res.end();
    }
  }

  private serveStatic(method: string, pathname: string, res: http.ServerResponse): void {
    if (method !== 'GET' && method !== 'HEAD') throw Object.assign(new HttpError(grpc.status.UNIMPLEMENTED, `${method} is not allowed here`), { httpStatus: 405 });
    const relative = pathname === '/' ? 'index.html' : pathname.slice(1);
    const file = path.resolve(this.webRoot, relative);
    // Only files of the built UI: no '..', no dotfiles, nothing outside the folder.
    if (!file.startsWith(this.webRoot + path.sep) || relative.split('/').some((s) => s.startsWith('.') || s === '')) {
      throw new HttpError(grpc.status.NOT_FOUND, 'not found');
    }
    let data: Buffer;
    try { data = fs.readFileSync(file); } catch {
      throw new HttpError(grpc.status.NOT_FOUND, pathname === '/' ? `the web UI is not built (${this.webRoot}); run npm run build` : 'not found');
    }
    res.writeHead(200, {
      ...SECURITY_HEADERS, 'Content-Type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream', 'Content-Length': data.length,
      // Bundles carry a content hash in their names; index.html does not.
      'Cache-Control': relative.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    res.end(method === 'HEAD' ? undefined : data);
  }

  /**
   * A disk's file, streamed from its node's agent: what DownloadBlockStorage's URL points at. The
   * caller authenticates as for the RPC (bearer token, or the web UI's session) and needs what the
   * RPC needs; the disk must be whole (not IN_USE), as the RPC checked when it gave the URL.
   */
  private async serveDownload(name: string, method: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const principal = this.principal(req, 'GET');
    const request = { name: validateName(name, 'name') };
    authorize(principal, 'BlockStorageService', 'DownloadBlockStorage', request);
    if (!this.options.readBlockStorage) throw new HttpError(grpc.status.FAILED_PRECONDITION, 'this facade reaches no agents, so it serves no downloads');
    const node = downloadableOn(await this.store.get('BlockStorage', request.name));
    const controller = new AbortController();
    res.on('close', () => { if (!res.writableFinished) controller.abort(); });
    const { size, chunks } = await this.options.readBlockStorage(node, request.name, controller.signal);
    res.writeHead(200, {
      ...SECURITY_HEADERS, 'Content-Type': 'application/octet-stream', 'Content-Length': size, 'Cache-Control': 'no-store',
      'Content-Disposition': `attachment; filename="${request.name}.qcow2"`,
    });
    if (method === 'HEAD') { controller.abort(); res.end(); return; }
    for await (const chunk of chunks) {
      if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve));
      if (controller.signal.aborted) return;
    }
    res.end();
  }

  /** The Kubernetes API server's call for a kubectl write (api/admission/review.ts); it authenticates by TLS, not tokens. */
  private async serveAdmission(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const review = await readJson(req);
    let answer;
    try {
      answer = await reviewAdmission(this.store, review as AdmissionReview, this.trustedUsers);
    } catch (err) {
      if (err instanceof AdmissionReviewError) throw new HttpError(grpc.status.INVALID_ARGUMENT, err.message);
      throw err;
    }
    if (!answer.response.allowed) this.log.info(`admission webhook refused a write: ${answer.response.status?.message}`);
    this.send(res, 200, JSON.stringify(answer), 'application/json');
  }

  private send(res: http.ServerResponse, status: number, body: string, type: string): void {
    res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }

  private fail(res: http.ServerResponse, err: unknown): void {
    const status = (err as { grpcCode?: number }).grpcCode !== undefined
      ? { code: (err as { grpcCode: number }).grpcCode, details: (err as Error).message }
      : toServiceError(err);
    const code = status.code ?? grpc.status.UNKNOWN;
    if (code === grpc.status.INTERNAL) this.log.error('gateway call failed', { error: (err as Error).stack });
    if (res.headersSent) { res.end(); return; }
    const httpStatus = (err as { httpStatus?: number }).httpStatus ?? HTTP_STATUS[code] ?? 500;
    this.send(res, httpStatus, JSON.stringify({ code, message: String(status.details ?? '') }), 'application/json');
  }
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(grpc.status.INVALID_ARGUMENT, `request body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return undefined;
  const type = String(req.headers['content-type'] ?? '');
  // A cross-site HTML form can only send form encodings: JSON is also a CSRF barrier for cookie sessions.
  if (!/^application\/json\b/i.test(type)) throw new HttpError(grpc.status.INVALID_ARGUMENT, 'the request body must be application/json');
  try { return JSON.parse(text); } catch (err) {
    throw new HttpError(grpc.status.INVALID_ARGUMENT, `request body is not JSON: ${(err as Error).message}`);
  }
}
