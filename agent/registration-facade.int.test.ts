// A remote agent registers and heartbeats through the TLS facade with its own node certificate
// alone, and that certificate lets it write nothing but its own Node.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openStore } from '../api/store';
import type { Store } from '../api/store/store';
import { startApi, type RunningApi } from '../cli/controlplane';
import { ensureAgentIdentity, ensureCertBundle, readTlsMaterial, type TlsMaterial } from '../api/pki';
import { FacadeNodeRegistrar } from './registration-facade';
import { nodeDocument } from './registration';
import { ANNOTATIONS } from '../api/types';

jest.setTimeout(60_000);

let dir: string;
let store: Store;
let api: RunningApi;
let host2: TlsMaterial;
let endpoint: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-regfacade-'));
  store = await openStore({ backend: 'embedded', dataDir: dir });
  const pkiDir = path.join(dir, 'pki');
  ensureCertBundle(pkiDir, { servers: [{ name: 'facade', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }] });
  const facade = readTlsMaterial(pkiDir, 'facade');
  host2 = ensureAgentIdentity(pkiDir, 'host2', ['10.0.0.2']);
  api = await startApi({ store, listen: '127.0.0.1:0', token: 'secret-token', tls: { cert: facade.cert, key: facade.key, clientCa: facade.ca } });
  endpoint = `127.0.0.1:${api.facade.port}`;
});
afterAll(async () => {
  await api?.stop();
  await store?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const facts = (endpoint = '10.0.0.2:20181') => ({
  nodeName: 'host2', address: '10.0.0.2', agentEndpoint: endpoint, accelerator: 'tcg' as const, agentVersion: '9.9.9',
  capacity: { cpuMilliCores: 4000, memoryBytes: 8 * 2 ** 30, storageBytes: 100 * 2 ** 30 },
});

test('register writes the Node spec and a Ready status; heartbeats renew the lease, not the Node', async () => {
  const registrar = new FacadeNodeRegistrar({ endpoint, ca: host2.ca, cert: host2.cert, key: host2.key });
  try {
    await registrar.register(nodeDocument(facts()));
    const node = await store.get('Node', 'host2');
    expect(node.spec).toMatchObject({ address: '10.0.0.2', agent_endpoint: '10.0.0.2:20181', cpu_milli_cores: 4000 });
    expect(node.metadata.annotations?.[ANNOTATIONS.agentVersion]).toBe('9.9.9');
    expect(node.status).toMatchObject({ state: 'Ready', accelerator: 'tcg', agent_version: '9.9.9' });
    const first = node.status!.last_heartbeat_time!;
    await new Promise((r) => setTimeout(r, 1100));
    const written = (await store.get('Node', 'host2')).metadata.resourceVersion;
    await registrar.heartbeat('host2', { accelerator: 'tcg', agent_version: '9.9.9' });
    const after = await store.get('Node', 'host2');
    expect(Date.parse((await store.get('NodeLease', 'host2')).spec.renew_time!)).toBeGreaterThan(Date.parse(first));
    expect(after.metadata.resourceVersion).toBe(written);
    expect(after.status!.conditions!.find((c) => c.type === 'Ready')!.status).toBe('True');
    // Registering again (agent restart) updates the endpoint without duplicating anything.
    await registrar.register(nodeDocument(facts('10.0.0.2:30181')));
    expect((await store.get('Node', 'host2')).spec.agent_endpoint).toBe('10.0.0.2:30181');
    expect((await store.list('Node')).items).toHaveLength(1);
  } finally {
    registrar.close();
  }
});

test('a wrong token is refused and writes nothing', async () => {
  const registrar = new FacadeNodeRegistrar({ endpoint, ca: host2.ca, token: 'wrong' });
  try {
    await expect(registrar.register(nodeDocument({ ...facts(), nodeName: 'intruder' }))).rejects.toThrow(/bearer token/);
    await expect(store.get('Node', 'intruder')).rejects.toThrow(/not found/);
  } finally {
    registrar.close();
  }
});

test('the node certificate of host2 may not register another node nor write another kind', async () => {
  const registrar = new FacadeNodeRegistrar({ endpoint, ca: host2.ca, cert: host2.cert, key: host2.key });
  try {
    await expect(registrar.register(nodeDocument({ ...facts(), nodeName: 'host3' }))).rejects.toThrow(
      /ApplyNode of Node "host3" is not allowed for node "host2": a node identity may only write its own Node/);
    await expect(store.get('Node', 'host3')).rejects.toThrow(/not found/);
    await expect(registrar.heartbeat('host3', {})).rejects.toThrow(/HeartbeatNode of Node "host3" is not allowed for node "host2"/);
  } finally {
    registrar.close();
  }
});

test('plaintext to the TLS facade gets no answer', async () => {
  const registrar = new FacadeNodeRegistrar({ endpoint, token: 'secret-token', insecurePlaintext: true, deadlineMs: 3000 });
  try {
    await expect(registrar.register(nodeDocument({ ...facts(), nodeName: 'plain' }))).rejects.toThrow(/facade 127\.0\.0\.1:\d+ ApplyNode: /);
    await expect(store.get('Node', 'plain')).rejects.toThrow(/not found/);
  } finally {
    registrar.close();
  }
});
