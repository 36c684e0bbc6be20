// Console tickets with two facade replicas over one etcd, as the chart runs them: TLS and tokens
// on, as `n0stack up` serves them. The ticket key is the store's (made by the first replica, loaded
// by the second), a ticket used at one replica is refused at the other, a ticket names the user who
// asked for it and someone else's credentials cannot spend it, and the URL carries no token.
import { createHmac, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { WebSocket } from 'ws';
import { ensureCertBundle, readTlsMaterial, type TlsMaterial } from '../api/pki';
import { openStore, type Store } from '../api/store';
import { startEtcd } from '../api/store/testing/etcd';
import { TokenFile } from '../api/server/auth';
import { CONSOLE_KEY_NAME, type ConsoleStream } from '../api/server/console';
import type { AgentApi } from '../agent/api';
import { FacadeClient } from './client';
import { startApi, type RunningApi } from './controlplane';

jest.setTimeout(60_000);

const ADMIN = randomBytes(24).toString('base64url');
let dir: string;
let etcd: { endpoint: string; stop: () => Promise<void> };
let stores: Store[];
let replicas: RunningApi[];
let clients: FacadeClient[];
let tls: TlsMaterial;
let otherAdmin: { token: string; id: string };
const opened: string[] = [];

/** Echoes what it is sent, so a round trip proves the relay reached the "agent". */
const agents = (node: string) => ({
  openConsole: async (vm: string): Promise<ConsoleStream> => {
    opened.push(`${node}/${vm}`);
    let onData: (c: Buffer) => void = () => undefined;
    return { onData: (l) => { onData = l; }, onEnd: () => undefined, write: (c) => onData(Buffer.concat([Buffer.from('echo:'), c])), close: () => undefined };
  },
}) as unknown as AgentApi;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-console-replicas-'));
  etcd = process.env.N0STACK_TEST_ETCD ? { endpoint: process.env.N0STACK_TEST_ETCD, stop: async () => undefined } : await startEtcd();
  const prefix = `/n0stack-test-${randomBytes(4).toString('hex')}`;
  ensureCertBundle(path.join(dir, 'pki'), { servers: [{ name: 'facade', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }] });
  tls = readTlsMaterial(path.join(dir, 'pki'), 'facade');
  const tokensFile = path.join(dir, 'tokens.json');
  otherAdmin = TokenFile.create(tokensFile, 'admin');
  stores = [await openStore({ backend: 'etcd', etcdEndpoints: [etcd.endpoint], prefix }), await openStore({ backend: 'etcd', etcdEndpoints: [etcd.endpoint], prefix })];
  replicas = [];
  for (const store of stores) {
    replicas.push(await startApi({
      store, listen: '127.0.0.1:0', consoleListen: '127.0.0.1:0', token: ADMIN, tokens: new TokenFile(tokensFile),
      tls: { cert: tls.cert, key: tls.key }, agents, defaultWaitMs: 5_000,
    }));
  }
  fs.writeFileSync(path.join(dir, 'ca.crt'), tls.ca);
  clients = [];
  const vm = await stores[0].create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name: 'vm1' }, spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: 268435456 } } as never);
  await stores[0].update({ ...(vm as object), status: { node_name: 'host-a', state: 'RUNNING' } } as never, { subresource: 'status' });
});

afterAll(async () => {
  for (const c of clients ?? []) c.close();
  for (const r of replicas ?? []) await r.stop();
  for (const s of stores ?? []) await s.close();
  await etcd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Opens the URL (with extra headers), sends "hi": the reply, or the close code and reason when refused. */
function roundTrip(url: string, headers: Record<string, string> = {}): Promise<{ reply?: string; closed?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { ca: tls.ca, headers });
    ws.on('open', () => ws.send(Buffer.from('hi')));
    ws.on('message', (d: Buffer) => { resolve({ reply: d.toString() }); ws.close(); });
    ws.on('close', (code, reason) => resolve({ closed: `${code} ${reason.toString()}` }));
    ws.on('error', reject);
  });
}

const at = (url: string, replica: number): string => url.replace(/:\d+\/console/, `:${replicas[replica].consoles!.listenPort}/console`);
function clientOf(replica: number, token: string): FacadeClient {
  const client = new FacadeClient({ endpoint: `127.0.0.1:${replicas[replica].facade.port}`, token, ca: path.join(dir, 'ca.crt'), sources: { endpoint: 'test' } }, 10_000);
  clients.push(client);
  return client;
}
const open = (replica: number, token = ADMIN) => clientOf(replica, token).call<{ console_url: string; expires_at: string }>('VirtualMachineService', 'OpenConsole', { name: 'vm1' });

it('signs with the store\'s key: a ticket of replica A opens at replica B, once, and is refused at both after', async () => {
  const { console_url: url, expires_at } = await open(0);
  expect(url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/console\?ticket=[\w-]+\.[\w-]+$/);
  expect(url).not.toContain(ADMIN);
  expect(Date.parse(expires_at) - Date.now()).toBeLessThanOrEqual(30_000);
  const [payload, signature] = new URL(url).searchParams.get('ticket')!.split('.');
  const key = await stores[1].secrets!.ensureKey(CONSOLE_KEY_NAME);
  expect(createHmac('sha256', key).update(payload).digest('base64url')).toBe(signature);
  expect(JSON.parse(Buffer.from(payload, 'base64url').toString())).toMatchObject({ vm: 'vm1', node: 'host-a', user: 'admin:token admin' });

  expect(await roundTrip(at(url, 1))).toEqual({ reply: 'echo:hi' });
  expect(await roundTrip(at(url, 0))).toEqual({ closed: '4003 ticket already used; call OpenConsole again' });
  expect(await roundTrip(at(url, 1))).toEqual({ closed: '4003 ticket already used; call OpenConsole again' });
  // A ticket for another VM cannot be made from this one without the key.
  const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), id: randomBytes(16).toString('hex'), vm: 'vm2' })).toString('base64url');
  expect(await roundTrip(at(url, 1).replace(payload, forged))).toEqual({ closed: '4003 bad ticket' });
  expect(opened).toEqual(['host-a/vm1']);
});

it('binds a ticket to its user: another user\'s token or session cannot spend it, its own user can', async () => {
  const { console_url: url } = await open(0);
  const refused = `4003 ticket was issued to admin:token admin, not admin:token ${otherAdmin.id}`;
  expect(await roundTrip(at(url, 1), { authorization: `Bearer ${otherAdmin.token}` })).toEqual({ closed: refused });
  // A browser session of the other user (the web UI's cookie) is refused the same way.
  const cookie = await new Promise<string>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port: replicas[1].consoles!.listenPort, path: '/api/v0/session', method: 'POST', ca: tls.ca, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      resolve(String(res.headers['set-cookie']?.[0] ?? '').split(';')[0]);
    });
    req.on('error', reject);
    req.end(JSON.stringify({ token: otherAdmin.token }));
  });
  expect(cookie).toMatch(/^n0stack_session=/);
  expect(await roundTrip(at(url, 1), { cookie })).toEqual({ closed: refused });
  expect(await roundTrip(at(url, 1), { authorization: 'Bearer wrong' })).toEqual({ closed: expect.stringMatching(/^4003 wrong bearer token/) });
  // Refusals did not spend it: the user it names opens it, with or without saying who they are.
  expect(await roundTrip(at(url, 0), { authorization: `Bearer ${ADMIN}` })).toEqual({ reply: 'echo:hi' });
  const second = await open(1, otherAdmin.token);
  expect(await roundTrip(at(second.console_url, 0))).toEqual({ reply: 'echo:hi' });
});

it('keeps the key out of every RPC: no kind holds it, and a viewer may not open consoles', async () => {
  await expect(clientOf(0, ADMIN).call('ResourceService', 'List', { kind: 'Secret' })).rejects.toThrow(/INVALID_ARGUMENT/);
  const viewer = TokenFile.create(path.join(dir, 'tokens.json'), 'viewer');
  await new Promise((r) => setTimeout(r, 1100)); // the token file is re-read at most once a second
  await expect(open(0, viewer.token)).rejects.toThrow(/PERMISSION_DENIED: VirtualMachineService.OpenConsole changes state and a viewer token may only read/);
});
