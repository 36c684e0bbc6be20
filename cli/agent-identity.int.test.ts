// Controllers talk to the agent of a Node only when that agent presents the Node's own
// certificate: one host's agent cannot pass for another's, even with the same CA and a Node
// whose agent_endpoint points at it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureAgentIdentity, ensureCertBundle, readTlsMaterial } from '../api/pki';
import { openStore } from '../api/store';
import type { Store } from '../api/store/store';
import { SimulatedAgent } from '../agent/drivers/simulated';
import { nodeDocument, StoreNodeRegistrar } from '../agent/registration';
import { AgentServer } from '../agent/server';
import { startControllers, type RunningControllers } from './controlplane';

jest.setTimeout(60_000);

let dir: string;
let store: Store;
let agentB: AgentServer;
let controllers: RunningControllers;
const stop = new AbortController();

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-agent-identity-'));
  const pkiDir = path.join(dir, 'pki');
  ensureCertBundle(pkiDir, { clients: [{ name: 'controllers' }] });
  ensureAgentIdentity(pkiDir, 'host-a', ['127.0.0.1']);
  // host-b's agent, serving with host-b's (valid, same-CA) certificate.
  agentB = await AgentServer.start({ agent: new SimulatedAgent({ nodeName: 'host-b' }), listen: '127.0.0.1:0', tls: ensureAgentIdentity(pkiDir, 'host-b', ['127.0.0.1']) });
  store = await openStore({ backend: 'embedded', dataDir: path.join(dir, 'store') });
  const registrar = new StoreNodeRegistrar(store);
  const facts = (nodeName: string) => ({
    nodeName, address: '127.0.0.1', agentEndpoint: agentB.endpoint, accelerator: 'tcg' as const, agentVersion: '1',
    capacity: { cpuMilliCores: 1000, memoryBytes: 2 ** 30, storageBytes: 2 ** 30 },
  });
  // host-a's Node claims host-b's agent endpoint (what a token holder rewriting agent_endpoint could do).
  await registrar.register(nodeDocument(facts('host-a')));
  await registrar.register(nodeDocument(facts('host-b')));
  controllers = await startControllers({ store, agentTls: readTlsMaterial(pkiDir, 'controllers'), signal: stop.signal });
  const deadline = Date.now() + 10_000;
  while (!controllers.manager.cache.get('Node', 'host-a') || !controllers.manager.cache.get('Node', 'host-b')) {
    if (Date.now() > deadline) throw new Error('the controllers\' cache never saw both Nodes');
    await new Promise((r) => setTimeout(r, 50));
  }
});

afterAll(async () => {
  stop.abort();
  await controllers?.manager.stopped.catch(() => undefined);
  await agentB?.stop(100);
  await store?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('the agent whose certificate names host-b serves host-b', async () => {
  const observed = await controllers.agents('host-b').observe();
  expect(observed.vms).toEqual([]);
});

test('the controllers refuse the same agent as host-a: its certificate names another node', async () => {
  await expect(controllers.agents('host-a').observe()).rejects.toThrow(/presents the certificate of CN "host-b".*not of Node "host-a"/);
});
