// The REST gateway against a real control plane (TestCloud: facade, controllers, an agent, the
// embedded store), over TLS on the facade's HTTP side, as curl would call it.
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { TestCloud } from '../../e2e/cloud';
import { startApi, type RunningApi } from '../../cli/controlplane';
import { TokenFile } from '../server/auth';
import { ROUTES, WATCH_PATH } from './routes';
import { addressObject, seedHolder } from '../addresses';

jest.setTimeout(300_000);

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: any; text: string }

function call(port: number, ca: string, method: string, url: string, options: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = https.request({
      host: '127.0.0.1', port, method, path: url, ca: fs.readFileSync(ca), servername: 'localhost',
      headers: {
        ...(options.token ? { Authorization: `Bearer ${options.token}` } : {}),
        ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } : {}),
        ...options.headers,
      },
    }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let body: unknown;
        try { body = JSON.parse(text); } catch { body = undefined; }
        resolve({ status: res.statusCode!, headers: res.headers, body, text });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

describe('REST gateway', () => {
  let cloud: TestCloud;
  let port: number;
  let viewerApi: RunningApi;
  let viewerPort: number;
  let viewerToken: string;
  const req = (method: string, url: string, options: { token?: string; body?: unknown; headers?: Record<string, string> } = {}) => call(port, cloud.caFile, method, url, options);

  beforeAll(async () => {
    cloud = await TestCloud.start({ store: 'embedded', nodes: ['vm-host1'], underlay: false });
    port = cloud.api.consoles!.listenPort;
    // A second facade on the same store with a token file, for the viewer role.
    const tokenFile = path.join(cloud.dir, 'tokens.json');
    viewerToken = TokenFile.create(tokenFile, 'viewer').token;
    const pki = path.join(cloud.dir, 'pki');
    viewerApi = await startApi({
      store: cloud.store, listen: '127.0.0.1:0', token: cloud.token, tokens: new TokenFile(tokenFile), consoleListen: '127.0.0.1:0',
      tls: { cert: fs.readFileSync(path.join(pki, 'facade.crt')), key: fs.readFileSync(path.join(pki, 'facade.key')) },
      agents: cloud.controllers!.agents, defaultWaitMs: 120_000,
    });
    viewerPort = viewerApi.consoles!.listenPort;
  });
  afterAll(async () => {
    await viewerApi?.stop();
    await cloud?.stop();
  });

  it('refuses an unauthenticated or wrongly authenticated request with 401 and changes nothing', async () => {
    const before = await cloud.store.list('Network');
    for (const token of [undefined, 'not-a-token']) {
      const put = await req('PUT', '/api/v0/network/unauth-net', { token, body: { ipv4_cidr: '10.91.0.0/24' } });
      expect(put.status).toBe(401);
      expect(put.body).toEqual({ code: 16, message: expect.stringMatching(/bearer token/) });
      const list = await req('GET', '/api/v0/virtual_machine', { token });
      expect(list.status).toBe(401);
    }
    // (resourceVersion is the store's revision: node heartbeats move it, so compare the objects.)
    const after = await cloud.store.list('Network');
    expect(after.items).toEqual(before.items);
    await expect(cloud.store.get('Network', 'unauth-net')).rejects.toThrow(/not found/);
  });

  it('lets a viewer token read but not write (403), and changes nothing', async () => {
    const list = await call(viewerPort, cloud.caFile, 'GET', '/api/v0/node', { token: viewerToken });
    expect(list.status).toBe(200);
    expect(list.body.nodes.map((n: any) => n.name)).toContain('vm-host1');
    const before = await cloud.store.list('Network');
    const put = await call(viewerPort, cloud.caFile, 'PUT', '/api/v0/network/viewer-net', { token: viewerToken, body: { ipv4_cidr: '10.92.0.0/24' } });
    expect(put.status).toBe(403);
    expect(put.body.code).toBe(7);
    expect(put.body.message).toMatch(/viewer token may only read/);
    expect((await cloud.store.list('Network')).items).toEqual(before.items);
  });

  it('creates a network, a disk and a VM, lists the VM as JSON with the token, and deletes them', async () => {
    const token = cloud.token;
    const net = await req('PUT', '/api/v0/network/gw-net', { token, body: { ipv4_cidr: '10.93.0.0/24' } });
    expect(net.status).toBe(200);
    expect(net.body).toMatchObject({ name: 'gw-net', ipv4_cidr: '10.93.0.0/24', state: 'AVAILABLE' });
    const disk = await req('POST', '/api/v0/block_storage', { token, body: { name: 'gw-disk', request_bytes: 64 * 1024 ** 2, limit_bytes: '67108864' } });
    expect(disk.status).toBe(200);
    // proto3 JSON: uint64 as a string
    expect(disk.body).toMatchObject({ name: 'gw-disk', request_bytes: '67108864', state: 'AVAILABLE' });
    const vm = await req('POST', '/api/v0/virtual_machine', {
      token,
      body: {
        name: 'gw-vm', request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 64 * 1024 ** 2, limit_memory_bytes: 64 * 1024 ** 2,
        block_storage_names: ['gw-disk'], nics: [{ network_name: 'gw-net' }],
      },
    });
    expect(vm.status).toBe(200);
    expect(vm.body).toMatchObject({ name: 'gw-vm', state: 'RUNNING', block_storage_names: ['gw-disk'] });

    const list = await req('GET', '/api/v0/virtual_machine', { token });
    expect(list.status).toBe(200);
    expect(list.headers['content-type']).toMatch(/application\/json/);
    expect(list.body.virtual_machines).toEqual([expect.objectContaining({ name: 'gw-vm', state: 'RUNNING', compute_node_name: 'vm-host1' })]);

    const again = await req('POST', '/api/v0/virtual_machine', { token, body: { name: 'gw-vm', request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 64 * 1024 ** 2, limit_memory_bytes: 64 * 1024 ** 2, block_storage_names: ['gw-disk'] } });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe(6);

    const console = await req('POST', '/api/v0/virtual_machine/gw-vm:open_console', { token });
    expect(console.status).toBe(200);
    expect(console.body.console_url).toMatch(new RegExp(`^wss://127\\.0\\.0\\.1:${port}/console\\?ticket=`));

    // The disk is attached: its delete is a failed precondition (400, as grpc-gateway maps it).
    const busy = await req('DELETE', '/api/v0/block_storage/gw-disk', { token });
    expect(busy.status).toBe(400);
    expect(busy.body.code).toBe(9);

    expect((await req('DELETE', '/api/v0/virtual_machine/gw-vm', { token })).status).toBe(200);
    expect((await req('GET', '/api/v0/virtual_machine/gw-vm', { token })).status).toBe(404);
    expect((await req('DELETE', '/api/v0/block_storage/gw-disk', { token })).status).toBe(200);
    expect((await req('DELETE', '/api/v0/network/gw-net', { token })).status).toBe(200);
  });

  it('maps bad input to 400, unknown routes to 404 and wrong methods to 405, with {code, message}', async () => {
    const token = cloud.token;
    const bad = await req('PUT', '/api/v0/network/bad-net', { token, body: { ipv4_cidr: 'not-a-cidr' } });
    expect(bad.status).toBe(400);
    expect(bad.body).toEqual({ code: 3, message: expect.stringMatching(/ipv4_cidr/) });
    const notJson = await req('POST', '/api/v0/block_storage', { token, headers: { 'Content-Type': 'application/json' }, body: undefined });
    expect(notJson.status).toBe(400);
    const typed = await req('POST', '/api/v0/virtual_machine', { token, body: { name: 'x', block_storage_names: 'not-a-list' } });
    expect(typed.status).toBe(400);
    expect((await req('GET', '/api/v0/nothing', { token })).status).toBe(404);
    const wrong = await req('PATCH', '/api/v0/network/x', { token });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.allow).toMatch(/GET/);
    expect((await req('GET', '/api/v0/node/no-such-node', { token })).body.code).toBe(5);
  });

  it('serves an OpenAPI document with every route of the mapping table', async () => {
    const doc = await req('GET', '/api/v0/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toMatch(/^3\./);
    for (const route of ROUTES) {
      const op = doc.body.paths[route.path]?.[route.method.toLowerCase()];
      expect({ route: `${route.method} ${route.path}`, operationId: op?.operationId }).toEqual({ route: `${route.method} ${route.path}`, operationId: `${route.service}_${route.rpc}` });
    }
    expect(doc.body.paths[WATCH_PATH].get).toBeDefined();
    expect(doc.body.components.schemas['provisioning.CreateVirtualMachineRequest'].properties.block_storage_names).toEqual({ type: 'array', items: { type: 'string' } });
  });

  it('keeps a browser session in an HttpOnly SameSite=Strict cookie and requires the CSRF token to write', async () => {
    const login = await req('POST', '/api/v0/session', { body: { token: cloud.token } });
    expect(login.status).toBe(200);
    const setCookie = String(login.headers['set-cookie']);
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).toMatch(/Secure/);
    expect(setCookie).not.toContain(cloud.token);
    const cookie = setCookie.split(';')[0];
    const csrf = login.body.csrf_token as string;
    expect((await req('GET', '/api/v0/node', { headers: { Cookie: cookie } })).status).toBe(200);
    const noCsrf = await req('PUT', '/api/v0/network/csrf-net', { headers: { Cookie: cookie }, body: { ipv4_cidr: '10.94.0.0/24' } });
    expect(noCsrf.status).toBe(403);
    await expect(cloud.store.get('Network', 'csrf-net')).rejects.toThrow(/not found/);
    const withCsrf = await req('PUT', '/api/v0/network/csrf-net', { headers: { Cookie: cookie, 'X-CSRF-Token': csrf }, body: { ipv4_cidr: '10.94.0.0/24' } });
    expect(withCsrf.status).toBe(200);
    expect((await req('DELETE', '/api/v0/network/csrf-net', { headers: { Cookie: cookie, 'X-CSRF-Token': csrf } })).status).toBe(200);
    expect((await req('POST', '/api/v0/session', { body: { token: 'wrong' } })).status).toBe(401);
    expect((await req('DELETE', '/api/v0/session', { headers: { Cookie: cookie, 'X-CSRF-Token': csrf } })).status).toBe(200);
    expect((await req('GET', '/api/v0/session', { headers: { Cookie: cookie } })).status).toBe(401);
  });

  it('streams a kind as Server-Sent Events from the store\'s watch', async () => {
    const events: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const r = https.request({ host: '127.0.0.1', port, path: '/api/v0/watch/network', ca: fs.readFileSync(cloud.caFile), servername: 'localhost', headers: { Authorization: `Bearer ${cloud.token}` } }, (res) => {
        expect(res.headers['content-type']).toBe('text/event-stream');
        res.on('data', (chunk) => {
          events.push(String(chunk));
          if (events.join('').includes('"sse-net"') && events.join('').includes('"DELETED"')) { r.destroy(); resolve(); }
        });
      });
      r.on('error', (err) => (events.join('').includes('DELETED') ? resolve() : reject(err)));
      r.end();
    });
    await new Promise((r) => setTimeout(r, 300));
    expect((await req('PUT', '/api/v0/network/sse-net', { token: cloud.token, body: { ipv4_cidr: '10.95.0.0/24' } })).status).toBe(200);
    // An address lent is a change of the Network's view, though not of its document.
    const lent = await cloud.store.create(addressObject('sse-net', 'ipv4', '10.95.0.7', seedHolder('port-x')));
    await new Promise((r) => setTimeout(r, 300));
    await cloud.store.delete('NetworkAddress', lent.metadata.name);
    expect((await req('DELETE', '/api/v0/network/sse-net', { token: cloud.token })).status).toBe(200);
    await done;
    const text = events.join('');
    expect(text).toMatch(/^retry: \d+\nevent: sync\ndata: \{"items":/);
    expect(text).toMatch(/"type":"ADDED","object":\{[^\n]*"name":"sse-net"/);
    expect(text).toMatch(/"type":"DELETED","object":\{[^\n]*"name":"sse-net"/);
    expect(text).toMatch(/"type":"MODIFIED","object":\{[^\n]*"reserved_network_interfaces":\{"port-x":\{[^\n]*"ipv4_address":"10\.95\.0\.7"[^\n]*"name":"sse-net"/);
    const unauth = await req('GET', '/api/v0/watch/network');
    expect(unauth.status).toBe(401);
  });

  it('streams the controllers\' Events (Kubernetes-shaped) with the same auth', async () => {
    const sync = await new Promise<any>((resolve, reject) => {
      const r = https.request({ host: '127.0.0.1', port, path: '/api/v0/watch/event', ca: fs.readFileSync(cloud.caFile), servername: 'localhost', headers: { Authorization: `Bearer ${cloud.token}` } }, (res) => {
        let text = '';
        res.on('data', (chunk) => {
          text += chunk;
          const m = /event: sync\ndata: (.*)\n\n/.exec(text);
          if (m) { r.destroy(); resolve(JSON.parse(m[1])); }
        });
      });
      r.on('error', reject);
      r.end();
    });
    // gw-vm of the test above was scheduled and started (Events outlive their object for an hour).
    const reasons = sync.items.filter((e: any) => e.involvedObject.kind === 'VirtualMachine' && e.involvedObject.name === 'gw-vm').map((e: any) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['Started']));
    expect((await req('GET', '/api/v0/watch/event')).status).toBe(401);
  });
});
