// The real facade over TLS with node client certificates: each refusal of the roles, seen by a
// plain gRPC client, and the store unchanged after it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createCa, ensureAgentIdentity, ensureCertBundle, issueServerCert, NODE_ORGANIZATION, readTlsMaterial, type TlsMaterial } from '../pki';
import { openStore } from '../store';
import type { Store } from '../store/store';
import { TokenFile } from './auth';
import { grpcService, loadFacadeProto } from './proto';
import { startFacade, type Facade } from './server';

jest.setTimeout(60_000);

const ADMIN = 'admin-token-for-auth-test';
let dir: string;
let store: Store;
let facade: Facade;
let ca: Buffer;
let hostA: TlsMaterial;
let viewer: string;
const definition = loadFacadeProto();
const clients: grpc.Client[] = [];

type Creds = { token?: string; cert?: TlsMaterial | { cert: Buffer; key: Buffer }; plaintext?: boolean };

function call(service: string, method: string, request: unknown, creds: Creds): Promise<any> {
  const Ctor = grpcService(definition, service);
  const credentials = creds.plaintext ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(ca, creds.cert?.key ?? null, creds.cert?.cert ?? null);
  const client = new Ctor(`127.0.0.1:${facade.port}`, credentials);
  clients.push(client);
  const md = new grpc.Metadata();
  if (creds.token) md.set('authorization', `Bearer ${creds.token}`);
  return new Promise((resolve, reject) => {
    (client as any)[method](request, md, { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)));
  });
}

async function refused(promise: Promise<unknown>, code: grpc.status, message?: RegExp): Promise<grpc.ServiceError> {
  const err = await promise.then(() => undefined, (e: grpc.ServiceError) => e);
  expect(err).toBeDefined();
  expect(grpc.status[err!.code]).toBe(grpc.status[code]);
  if (message) expect(err!.details).toMatch(message);
  return err!;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-auth-'));
  const pkiDir = path.join(dir, 'pki');
  ensureCertBundle(pkiDir, { servers: [{ name: 'facade', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }], clients: [{ name: 'controllers' }] });
  const served = readTlsMaterial(pkiDir, 'facade');
  ca = served.ca;
  hostA = ensureAgentIdentity(pkiDir, 'host-a', ['10.0.0.1']);
  const tokens = path.join(dir, 'tokens.json');
  viewer = TokenFile.create(tokens, 'viewer').token;
  store = await openStore({ backend: 'embedded', dataDir: path.join(dir, 'store') });
  facade = await startFacade({
    store, listen: '127.0.0.1:0', token: ADMIN, tokens: new TokenFile(tokens), defaultWaitMs: 5000,
    tls: { cert: served.cert, key: served.key, clientCa: served.ca },
  });
  // host-a and host-b exist, registered as their agents would.
  for (const name of ['host-a', 'host-b']) {
    await call('NodeService', 'ApplyNode', { name, address: '10.0.0.9', agent_endpoint: `10.0.0.9:20181`, cpu_milli_cores: 1000, memory_bytes: 2 ** 30, storage_bytes: 2 ** 30 }, { token: ADMIN });
  }
});

afterAll(async () => {
  for (const c of clients) c.close();
  await facade?.stop();
  await store?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('a viewer reads, and any write is PERMISSION_DENIED naming the RPC, with nothing written', async () => {
  expect((await call('NodeService', 'ListNodes', {}, { token: viewer })).nodes.map((n: any) => n.name).sort()).toEqual(['host-a', 'host-b']);
  await refused(call('NetworkService', 'ApplyNetwork', { name: 'viewer-net', ipv4_cidr: '10.9.0.0/24' }, { token: viewer }),
    grpc.status.PERMISSION_DENIED, /^NetworkService\.ApplyNetwork changes state and a viewer token may only read/);
  await refused(call('ResourceService', 'Apply', { document_json: JSON.stringify({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Image', metadata: { name: 'viewer-img' }, spec: {} }) }, { token: viewer }),
    grpc.status.PERMISSION_DENIED, /^ResourceService\.Apply /);
  await refused(call('NodeService', 'DeleteNode', { name: 'host-b' }, { token: viewer }), grpc.status.PERMISSION_DENIED, /NodeService\.DeleteNode/);
  expect((await store.list('Network')).items).toEqual([]);
  expect((await store.list('Image')).items).toEqual([]);
  expect((await store.list('Node')).items).toHaveLength(2);
});

test('a node certificate heartbeats its own Node but may not write another node\'s Node', async () => {
  const own = await call('NodeService', 'HeartbeatNode', { name: 'host-a', accelerator: 'tcg', agent_version: '1' }, { cert: hostA });
  expect(own.name).toBe('host-a');
  const before = await store.get('Node', 'host-b');
  await refused(call('NodeService', 'ApplyNode', { name: 'host-b', address: '10.6.6.6', agent_endpoint: '10.6.6.6:20181' }, { cert: hostA }),
    grpc.status.PERMISSION_DENIED, /^NodeService\.ApplyNode of Node "host-b" is not allowed for node "host-a"/);
  await refused(call('NodeService', 'HeartbeatNode', { name: 'host-b' }, { cert: hostA }), grpc.status.PERMISSION_DENIED, /HeartbeatNode of Node "host-b"/);
  await refused(call('NodeService', 'DeleteNode', { name: 'host-a' }, { cert: hostA }), grpc.status.PERMISSION_DENIED, /NodeService\.DeleteNode is not allowed for node "host-a"/);
  expect((await store.get('Node', 'host-b')).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
});

test('a node may not cordon or uncordon itself, nor set or drop the labels under node-restriction.n0stack.io/', async () => {
  await call('NodeService', 'ApplyNode', { name: 'host-a', labels: { 'node-restriction.n0stack.io/tier': 'secure', rack: 'r1' }, unschedulable: true }, { token: ADMIN });
  const before = await store.get('Node', 'host-a');
  await refused(call('NodeService', 'ApplyNode', { name: 'host-a', labels: { 'node-restriction.n0stack.io/tier': 'secure' }, unschedulable: true }, { cert: hostA }),
    grpc.status.PERMISSION_DENIED, /^NodeService\.ApplyNode: unschedulable is not allowed for node "host-a": cordoning is an admin's decision/);
  await refused(call('NodeService', 'ApplyNode', { name: 'host-a', labels: { 'node-restriction.n0stack.io/tier': 'gpu' } }, { cert: hostA }),
    grpc.status.PERMISSION_DENIED, /label "node-restriction\.n0stack\.io\/tier" is not allowed for node "host-a": labels under node-restriction\.n0stack\.io\/ are set by admins only/);
  expect((await store.get('Node', 'host-a')).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  // Its own labels it may change; the restricted one and the cordon stay as the admin left them.
  await call('NodeService', 'ApplyNode', { name: 'host-a', address: '10.0.0.9', agent_endpoint: '10.0.0.9:20181', labels: { rack: 'r2' } }, { cert: hostA });
  const after = await store.get('Node', 'host-a');
  expect(after.metadata.labels).toEqual({ 'node-restriction.n0stack.io/tier': 'secure', rack: 'r2' });
  expect(after.spec.unschedulable).toBe(true);
  // The admin's ApplyNode still replaces the labels whole.
  await call('NodeService', 'ApplyNode', { name: 'host-a', labels: { rack: 'r3' } }, { token: ADMIN });
  expect((await store.get('Node', 'host-a')).metadata.labels).toEqual({ rack: 'r3' });
});

test('a node certificate may not write any other kind', async () => {
  await refused(call('NetworkService', 'ApplyNetwork', { name: 'node-net', ipv4_cidr: '10.8.0.0/24' }, { cert: hostA }),
    grpc.status.PERMISSION_DENIED, /^NetworkService\.ApplyNetwork is not allowed for node "host-a"/);
  await refused(call('VirtualMachineService', 'DeleteVirtualMachine', { name: 'x' }, { cert: hostA }), grpc.status.PERMISSION_DENIED, /VirtualMachineService\.DeleteVirtualMachine/);
  await refused(call('ResourceService', 'Apply', { document_json: JSON.stringify({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Node', metadata: { name: 'host-a' }, spec: {} }) }, { cert: hostA }),
    grpc.status.PERMISSION_DENIED, /ResourceService\.Apply is not allowed for node "host-a"/);
  expect((await store.list('Network')).items).toEqual([]);
});

test('a certificate claiming a node but signed by another CA is no identity; nor is a non-node client certificate', async () => {
  const foreignCa = createCa({ commonName: 'attacker CA' });
  const forged = issueServerCert(foreignCa, { commonName: 'host-b', dnsNames: ['host-b'], clientAuth: true, organization: NODE_ORGANIZATION });
  await refused(call('NodeService', 'HeartbeatNode', { name: 'host-b' }, { cert: { cert: Buffer.from(forged.certPem), key: Buffer.from(forged.keyPem) } }),
    grpc.status.UNAUTHENTICATED, /missing bearer token or node client certificate/);
  const controllers = readTlsMaterial(path.join(dir, 'pki'), 'controllers');
  await refused(call('NodeService', 'ListNodes', {}, { cert: controllers }), grpc.status.UNAUTHENTICATED);
  await refused(call('NodeService', 'ListNodes', {}, { token: 'not-a-token' }), grpc.status.UNAUTHENTICATED, /wrong bearer token/);
});

test('the Watch stream answers its refusals (it once left a refused caller waiting forever)', async () => {
  const watch = (creds: Creds, request: unknown = { kind: 'Node' }) => new Promise<string>((resolve) => {
    const client = new (grpcService(definition, 'ResourceService'))(`127.0.0.1:${facade.port}`, grpc.credentials.createSsl(ca, creds.cert?.key ?? null, creds.cert?.cert ?? null));
    clients.push(client);
    const md = new grpc.Metadata();
    if (creds.token) md.set('authorization', `Bearer ${creds.token}`);
    const stream = (client as any).Watch(request, md, { deadline: Date.now() + 5000 });
    // Still open after a second, with nothing refused: it is watching.
    const open = setTimeout(() => { resolve('watching'); stream.cancel(); }, 1000);
    stream.on('error', (err: grpc.ServiceError) => { clearTimeout(open); resolve(`${grpc.status[err.code]} ${err.details}`); });
  });
  expect(await watch({})).toMatch(/^UNAUTHENTICATED missing bearer token/);
  expect(await watch({ token: 'nope' })).toMatch(/^UNAUTHENTICATED wrong bearer token/);
  expect(await watch({ cert: hostA })).toMatch(/^PERMISSION_DENIED ResourceService\.Watch is not allowed for node "host-a"/);
  expect(await watch({ token: viewer })).toBe('watching');
});

test('plaintext to the TLS facade gets no answer at all', async () => {
  const err = await refused(call('NodeService', 'ListNodes', {}, { token: ADMIN, plaintext: true }), grpc.status.UNAVAILABLE);
  expect(err.details).not.toMatch(/host-a/);
});
