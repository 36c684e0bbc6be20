// The facade client: services loaded at runtime from the n0proto files, a bearer token on every
// call, optional TLS, and gRPC failures turned into one readable line ("NOT_FOUND: ...").
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError } from '../api/errors';
import { ipTargetTls } from '../api/pki';
import type { Resource } from '../api/types';
import type { Connection } from './config';
import { grpcService } from '../api/server/proto';
import { facadeDefinition, methodInfo } from './proto';

export const DEFAULT_DEADLINE_MS = 10 * 60 * 1000;

/** A failed call, with the gRPC code's name first so users and scripts can tell failures apart. */
export class CallError extends Error {
  constructor(readonly code: grpc.status, readonly codeName: string, readonly details: string, readonly endpoint?: string) {
    super(`${codeName}: ${details}`);
    this.name = 'CallError';
  }
}

export function statusName(code: number): string {
  return (grpc.status as unknown as Record<number, string>)[code] ?? `CODE_${code}`;
}

/** "NOT_FOUND: BlockStorage "x" not found", with a hint for the failures a user can fix locally. */
export function formatCallError(err: { code?: number; details?: string; message?: string }, endpoint?: string, deadlineMs?: number): CallError {
  const code = typeof err.code === 'number' ? err.code : grpc.status.UNKNOWN;
  let details = err.details || err.message || 'unknown error';
  if (code === grpc.status.UNAVAILABLE && /certificate|SSL routines|self.signed|unable to verify/i.test(details)) {
    details = `${details}; the facade's certificate did not verify: set the CA that signed it with --ca or N0STACK_CA (n0stack up writes it into the config)`;
  } else if (code === grpc.status.UNAVAILABLE && endpoint && /No connection established|ECONNREFUSED|connect|Name resolution/i.test(details)) {
    details = `cannot reach the n0stack API at ${endpoint} (${details}); is it running? set --api-endpoint or N0STACK_API_ENDPOINT`;
  } else if (code === grpc.status.DEADLINE_EXCEEDED && deadlineMs !== undefined) {
    details = `no answer within ${Math.round(deadlineMs / 1000)}s (${details}); raise --timeout if the operation is just slow`;
  } else if (code === grpc.status.UNAUTHENTICATED && !/token/i.test(details)) {
    details = `${details}; check --token-file, N0STACK_TOKEN or the context's token`;
  }
  return new CallError(code, statusName(code), details, endpoint);
}

export interface CallOptions {
  deadlineMs?: number;
  signal?: AbortSignal;
}

type UnaryMethod = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => grpc.ClientUnaryCall;
type StreamMethod = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<unknown>;

/**
 * `host:port` or `https://host:port`: TLS, verified against the context's CA (`--ca`) or else the
 * system's roots. Plaintext only when asked for by name: `http://host:port`.
 */
export function parseEndpoint(endpoint: string): { target: string; tls: boolean } {
  const m = /^(?:(https?|grpcs?):\/\/)?([^/\s]+?)\/?$/.exec(endpoint.trim());
  if (!m) throw new InvalidArgumentError(`API endpoint ${JSON.stringify(endpoint)} must be host:port, https://host:port or http://host:port (plaintext)`, '--api-endpoint');
  const scheme = m[1];
  const hostPort = m[2];
  if (!/:\d+$/.test(hostPort) && !scheme) throw new InvalidArgumentError(`API endpoint ${JSON.stringify(endpoint)} needs a port (the facade listens on 20180 by default)`, '--api-endpoint');
  return { target: hostPort, tls: scheme !== 'http' && scheme !== 'grpc' };
}

export class FacadeClient {
  private readonly clients = new Map<string, grpc.Client>();
  private readonly credentials: grpc.ChannelCredentials;
  private readonly target: string;
  private readonly tlsOptions: Record<string, string> = {};

  constructor(readonly connection: Connection, readonly defaultDeadlineMs = DEFAULT_DEADLINE_MS) {
    const { target, tls } = parseEndpoint(connection.endpoint);
    this.target = target;
    if (!tls) {
      this.credentials = grpc.credentials.createInsecure();
    } else {
      let ca: Buffer | undefined;
      if (connection.ca) {
        try { ca = fs.readFileSync(connection.ca); } catch (err) {
          throw new InvalidArgumentError(`CA file ${connection.ca}: ${(err as Error).message}`, '--ca');
        }
      }
      const ip = ipTargetTls(target);
      this.tlsOptions = ip.channelOptions;
      this.credentials = grpc.credentials.createSsl(ca ?? null, null, null, ip.checkServerIdentity ? { checkServerIdentity: ip.checkServerIdentity } : undefined);
    }
  }

  private client(service: string): grpc.Client {
    let client = this.clients.get(service);
    if (!client) {
      let ctor: grpc.ServiceClientConstructor;
      try { ctor = grpcService(facadeDefinition(), service); } catch { throw new InvalidArgumentError(`${service} is not a service of the n0stack API`); }
      client = new ctor(this.target, this.credentials, { 'grpc.max_receive_message_length': 64 * 1024 * 1024, ...this.tlsOptions });
      this.clients.set(service, client);
    }
    return client;
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.connection.token) md.set('authorization', `Bearer ${this.connection.token}`);
    return md;
  }

  /** One unary call; rejects with CallError. */
  call<T = Record<string, unknown>>(service: string, method: string, request: unknown, options: CallOptions = {}): Promise<T> {
    const info = methodInfo(service, method);
    if (!info || info.responseStream) return Promise.reject(new InvalidArgumentError(`${service}.${method} is not a unary RPC of the n0stack API`));
    const deadlineMs = options.deadlineMs ?? this.defaultDeadlineMs;
    const fn = (this.client(service) as unknown as Record<string, UnaryMethod>)[method];
    return new Promise<T>((resolve, reject) => {
      if (options.signal?.aborted) { reject(new CallError(grpc.status.CANCELLED, 'CANCELLED', 'cancelled before it started')); return; }
      const call = fn.call(this.client(service), request, this.metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => {
        options.signal?.removeEventListener('abort', onAbort);
        if (err) reject(formatCallError(err, this.connection.endpoint, deadlineMs));
        else resolve(res as T);
      });
      const onAbort = (): void => call.cancel();
      options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** A server stream as an async iterator; breaking out of the loop cancels the call. */
  async *stream<T = Record<string, unknown>>(service: string, method: string, request: unknown, options: CallOptions = {}): AsyncGenerator<T> {
    const fn = (this.client(service) as unknown as Record<string, StreamMethod>)[method];
    const opts: grpc.CallOptions = options.deadlineMs ? { deadline: Date.now() + options.deadlineMs } : {};
    const call = fn.call(this.client(service), request, this.metadata(), opts);
    const onAbort = (): void => call.cancel();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const message of call) yield message as T;
    } catch (err) {
      const e = err as grpc.ServiceError;
      if (e.code === grpc.status.CANCELLED && options.signal?.aborted) return;
      throw formatCallError(e, this.connection.endpoint, options.deadlineMs);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      call.cancel();
    }
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  // Typed helpers for the document service.

  async getDocument(kind: string, name: string, options?: CallOptions): Promise<Resource> {
    const res = await this.call<{ document_json: string }>('ResourceService', 'Get', { kind, name }, options);
    return JSON.parse(res.document_json) as Resource;
  }

  async listDocuments(kind: string, labelSelector = '', options?: CallOptions): Promise<{ items: Resource[]; resourceVersion: string }> {
    const res = await this.call<{ documents_json: string[]; resource_version: string }>('ResourceService', 'List', { kind, label_selector: labelSelector }, options);
    return { items: res.documents_json.map((d) => JSON.parse(d) as Resource), resourceVersion: res.resource_version };
  }

  async applyDocument(doc: unknown, flags: { dryRun?: boolean; wait?: boolean }, options?: CallOptions): Promise<{ document: Resource; result: string; diff: unknown[] }> {
    const res = await this.call<{ document_json: string; result: string; diff_json: string }>('ResourceService', 'Apply', {
      document_json: JSON.stringify(doc), dry_run: flags.dryRun ?? false, wait: flags.wait ?? false,
    }, options);
    return {
      document: res.document_json ? (JSON.parse(res.document_json) as Resource) : (doc as Resource),
      result: res.result,
      diff: res.diff_json ? (JSON.parse(res.diff_json) as unknown[]) : [],
    };
  }

  async deleteDocument(kind: string, name: string, wait: boolean, options?: CallOptions): Promise<void> {
    await this.call('ResourceService', 'Delete', { kind, name, wait }, options);
  }

  watchDocuments(kind: string, labelSelector: string, resourceVersion: string, signal?: AbortSignal): AsyncGenerator<{ type: string; document_json: string }> {
    return this.stream('ResourceService', 'Watch', { kind, label_selector: labelSelector, resource_version: resourceVersion }, { signal });
  }
}
