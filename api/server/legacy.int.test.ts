// The legacy listener for seed-era clients: plaintext without metadata, every call acting with the
// operator's role through the same admission as the main (TLS, token) listener.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ensureCertBundle, readTlsMaterial } from '../pki';
import { openStore } from '../store';
import type { Store } from '../store/store';
import { grpcService, loadFacadeProto } from './proto';
import { startFacade, type Facade } from './server';

jest.setTimeout(60_000);

const ADMIN = 'admin-token-for-legacy-test';
const definition = loadFacadeProto();
let dir: string;
let store: Store;
let ca: Buffer;
const facades: Facade[] = [];
const clients: grpc.Client[] = [];

function call(port: number, service: string, method: string, request: unknown, creds = grpc.credentials.createInsecure()): Promise<any> {
  const client = new (grpcService(definition, service))(`127.0.0.1:${port}`, creds);
  clients.push(client);
  return new Promise((resolve, reject) => {
    (client as any)[method](request, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)));
  });
}

const code = (p: Promise<unknown>) => p.then(() => 'OK', (e: grpc.ServiceError) => `${grpc.status[e.code]}: ${e.details}`);

async function facadeWith(role: 'viewer' | 'admin'): Promise<Facade> {
  const served = readTlsMaterial(path.join(dir, 'pki'), 'facade');
  const facade = await startFacade({
    store, listen: '127.0.0.1:0', token: ADMIN, defaultWaitMs: 5000,
    tls: { cert: served.cert, key: served.key, clientCa: served.ca }, legacy: { listen: '127.0.0.1:0', role },
  });
  facades.push(facade);
  return facade;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-legacy-'));
  ensureCertBundle(path.join(dir, 'pki'), { servers: [{ name: 'facade', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }], clients: [{ name: 'controllers' }] });
  ca = readTlsMaterial(path.join(dir, 'pki'), 'facade').ca;
  store = await openStore({ backend: 'embedded', dataDir: path.join(dir, 'store') });
});

afterAll(async () => {
  for (const c of clients) c.close();
  for (const f of facades) await f.stop();
  await store?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a viewer legacy listener reads without credentials and refuses writes with PERMISSION_DENIED, changing nothing', async () => {
  const facade = await facadeWith('viewer');
  expect(facade.legacyPort).toBeGreaterThan(0);
  expect(facade.legacyPort).not.toBe(facade.port);
  expect(await call(facade.legacyPort!, 'NodeService', 'ListNodes', {})).toEqual({ nodes: [] });
  const before = (await store.list('Node')).resourceVersion;
  expect(await code(call(facade.legacyPort!, 'NodeService', 'ApplyNode', { name: 'legacy-node', address: '10.0.0.1' })))
    .toMatch(/^PERMISSION_DENIED: NodeService\.ApplyNode changes state and a viewer token may only read/);
  expect(await code(call(facade.legacyPort!, 'ResourceService', 'Apply', { document_json: '{}' }))).toMatch(/^PERMISSION_DENIED/);
  expect((await store.list('Node')).resourceVersion).toBe(before);
  // The main listener still asks for TLS and a token.
  expect(await code(call(facade.port, 'NodeService', 'ListNodes', {}, grpc.credentials.createSsl(ca)))).toMatch(/^UNAUTHENTICATED/);
  expect(await code(call(facade.port, 'NodeService', 'ListNodes', {}))).toMatch(/^UNAVAILABLE/);
});

test('an admin legacy listener writes, as the operator chose', async () => {
  const facade = await facadeWith('admin');
  const node = await call(facade.legacyPort!, 'NodeService', 'ApplyNode', { name: 'legacy-node', address: '10.0.0.1', rack: 'r7' });
  expect(node).toMatchObject({ name: 'legacy-node', address: '10.0.0.1', rack: 'r7', state: 'NotReady', exact_state: 'Unknown' });
  expect((await store.get('Node', 'legacy-node')).spec).toMatchObject({ address: '10.0.0.1', rack: 'r7' });
  await call(facade.legacyPort!, 'NodeService', 'DeleteNode', { name: 'legacy-node' });
});

test('beyond loopback only when forced; the role is one of the token roles', async () => {
  const served = readTlsMaterial(path.join(dir, 'pki'), 'facade');
  const base = { store, listen: '127.0.0.1:0', token: ADMIN, defaultWaitMs: 5000, tls: { cert: served.cert, key: served.key } };
  await expect(startFacade({ ...base, legacy: { listen: '0.0.0.0:0', role: 'viewer' } })).rejects.toThrow(/--legacy-listen 0\.0\.0\.0:0: .*loopback only.*--legacy-listen-force/);
  await expect(startFacade({ ...base, legacy: { listen: '127.0.0.1:0', role: 'node' as never } })).rejects.toThrow(/--legacy-role must be one of admin, viewer/);
});
