// A real gRPC server in this process, serving one facade method from the same .proto.
import * as grpc from '@grpc/grpc-js';
import { CallError, FacadeClient, formatCallError, parseEndpoint } from './client';
import { facadeDefinition } from './proto';
import { grpcService } from '../api/server/proto';

describe('endpoint parsing and error lines', () => {
  it('parses host:port and schemes', () => {
    expect(parseEndpoint('127.0.0.1:20180')).toEqual({ target: '127.0.0.1:20180', tls: true });
    expect(parseEndpoint('https://api.example:443/')).toEqual({ target: 'api.example:443', tls: true });
    expect(parseEndpoint('http://h:1')).toEqual({ target: 'h:1', tls: false });
    expect(() => parseEndpoint('api.example')).toThrow('needs a port');
    expect(() => parseEndpoint('a b:1')).toThrow('must be host:port');
  });

  it('puts the code name first and adds hints for local mistakes', () => {
    expect(formatCallError({ code: grpc.status.NOT_FOUND, details: 'BlockStorage "x" not found' }).message).toBe('NOT_FOUND: BlockStorage "x" not found');
    expect(formatCallError({ code: grpc.status.UNAVAILABLE, details: 'No connection established. Last error: connect ECONNREFUSED' }, '127.0.0.1:1').message)
      .toMatch(/^UNAVAILABLE: cannot reach the n0stack API at 127\.0\.0\.1:1 .*--api-endpoint/);
    expect(formatCallError({ code: grpc.status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' }, 'x:1', 600_000).message)
      .toBe('DEADLINE_EXCEEDED: no answer within 600s (Deadline exceeded); raise --timeout if the operation is just slow');
  });
});

describe('FacadeClient against a gRPC server', () => {
  let server: grpc.Server;
  let port: number;
  const seen: { token?: string; request?: unknown }[] = [];

  beforeAll(async () => {
    server = new grpc.Server();
    const service = grpcService(facadeDefinition(), 'BlockStorageService').service;
    server.addService(service, {
      GetBlockStorage: (call: grpc.ServerUnaryCall<{ name: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        seen.push({ token: call.metadata.get('authorization')[0] as string, request: call.request });
        if (call.request.name === 'x') cb({ code: grpc.status.NOT_FOUND, details: 'BlockStorage "x" not found' });
        else if (call.request.name === 'slow') setTimeout(() => cb(null, { name: 'slow' }), 2000);
        else cb(null, { name: call.request.name, limit_bytes: '10737418240', progress_bytes_done: '5' });
      },
    });
    port = await new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  });
  afterAll(() => new Promise<void>((r) => server.tryShutdown(() => r())));

  it('sends the bearer token and decodes uint64 as strings', async () => {
    const client = new FacadeClient({ endpoint: `http://127.0.0.1:${port}`, token: 's3cret', sources: { endpoint: 'test' } });
    try {
      const bs = await client.call('BlockStorageService', 'GetBlockStorage', { name: 'disk' });
      expect(bs).toMatchObject({ name: 'disk', limit_bytes: '10737418240', progress_bytes_done: '5', state: 'UNKNOWN' });
      expect(seen.at(-1)).toEqual({ token: 'Bearer s3cret', request: { name: 'disk' } });
    } finally { client.close(); }
  });

  it('turns a gRPC error into CallError with the code name, and honours deadlines and aborts', async () => {
    const client = new FacadeClient({ endpoint: `http://127.0.0.1:${port}`, sources: { endpoint: 'test' } });
    try {
      const err = await client.call('BlockStorageService', 'GetBlockStorage', { name: 'x' }).catch((e) => e);
      expect(err).toBeInstanceOf(CallError);
      expect(err.message).toBe('NOT_FOUND: BlockStorage "x" not found');
      expect(seen.at(-1)?.token).toBeUndefined();
      const t0 = Date.now();
      await expect(client.call('BlockStorageService', 'GetBlockStorage', { name: 'slow' }, { deadlineMs: 200 })).rejects.toThrow(/^DEADLINE_EXCEEDED: no answer within 0s/);
      expect(Date.now() - t0).toBeLessThan(1500);
      const abort = new AbortController();
      const p = client.call('BlockStorageService', 'GetBlockStorage', { name: 'slow' }, { signal: abort.signal });
      setTimeout(() => abort.abort(), 50);
      await expect(p).rejects.toThrow(/^CANCELLED/);
      await expect(client.call('BlockStorageService', 'NoSuch', {})).rejects.toThrow('BlockStorageService.NoSuch is not a unary RPC of the n0stack API');
    } finally { client.close(); }
  });

  it('says where it tried to connect when nothing listens', async () => {
    const client = new FacadeClient({ endpoint: '127.0.0.1:1', sources: { endpoint: 'test' } });
    try {
      await expect(client.call('BlockStorageService', 'GetBlockStorage', { name: 'a' }, { deadlineMs: 3000 })).rejects.toThrow(/^(UNAVAILABLE: cannot reach the n0stack API at 127\.0\.0\.1:1|DEADLINE_EXCEEDED)/);
    } finally { client.close(); }
  });
});
