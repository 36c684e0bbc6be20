// The agent's gRPC server in front of a simulated agent: the controllers' certificate gets in, a
// node's certificate (same CA, valid, a client certificate too) is PERMISSION_DENIED.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureAgentIdentity, ensureCertBundle, readTlsMaterial } from '../api/pki';
import { AgentClient } from './client';
import { SimulatedAgent } from './drivers/simulated';
import { AgentServer } from './server';

let dir: string;
let server: AgentServer;
const clients: AgentClient[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-peer-auth-'));
  ensureCertBundle(dir, { clients: [{ name: 'controllers' }] });
  server = await AgentServer.start({ agent: new SimulatedAgent({ nodeName: 'host-a' }), listen: '127.0.0.1:0', tls: ensureAgentIdentity(dir, 'host-a', ['127.0.0.1']) });
});

afterAll(async () => {
  for (const c of clients) c.close();
  await server?.stop(100);
  fs.rmSync(dir, { recursive: true, force: true });
});

const client = (tls: { ca: Buffer; cert: Buffer; key: Buffer }): AgentClient => {
  const c = new AgentClient({ endpoint: server.endpoint, tls, nodeName: 'host-a', deadlineMs: 5000 });
  clients.push(c);
  return c;
};

test('the controllers\' certificate may call the agent', async () => {
  expect((await client(readTlsMaterial(dir, 'controllers')).observe()).vms).toEqual([]);
});

test('another node\'s certificate may not, whatever the RPC', async () => {
  const other = client(ensureAgentIdentity(dir, 'host-b', ['127.0.0.1']));
  await expect(other.observe()).rejects.toThrow(/Observe: node "host-b" may not call an agent; only the controllers may/);
  await expect(other.deleteVm('x')).rejects.toThrow(/DeleteVm: node "host-b" may not call an agent/);
});
