// A bounded fuzz of the node agent with its real drivers (networks and VMs inside a test network
// namespace): random and hostile requests to every unary RPC over mTLS, built from
// proto/agent.proto's descriptors, each from a caller drawn from a mix: the controllers (the only
// ones allowed), the node's own certificate and another node's (refused: nodes may not drive
// agents), a certificate of a foreign CA and none at all (no TLS session); then random bytes on
// the wire to every RPC. Invariants: the agent answers every call and still serves after, no
// INTERNAL or UNKNOWN code escapes, only the controllers get past PERMISSION_DENIED, and nothing is
// created outside its data dir (the hostile names include `../`). Short mode (CI): 10,000 calls;
// N0STACK_FUZZ_LONG=1: 100,000; N0STACK_FUZZ_CALLS sets any count, N0STACK_FUZZ_SEED replays a
// run; it prints what came back.
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createCa, ensureAgentIdentity, ensureCertBundle, issueClientCert, readTlsMaterial } from '../api/pki';
import { openStore, type Store } from '../api/store';
import { NetnsLab } from '../e2e/netns';
import { runAgent, type RunningAgent } from './main';
import { StoreNodeRegistrar } from './registration';
import { sendRandomFrame } from '../api/server/testing/raw-grpc';

const CALLS = Number(process.env.N0STACK_FUZZ_CALLS ?? (process.env.N0STACK_FUZZ_LONG ? 100_000 : 10_000));
jest.setTimeout(Math.max(300_000, CALLS * 60));

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

const STRINGS = ['', '..', '../x', '../../etc/passwd', '/etc/passwd', 'a/b', 'a\0b', ' ', 'A', 'fz', 'fz-net', 'x'.repeat(64 * 1024), '😀', `${'x'.repeat(63)}😀`, '-rf', '$(reboot)', 'a'.repeat(254), 'serial', 'vnc', 'reboot', 'http://127.0.0.1:1/x', 'file:///etc/passwd', '10.0.0.0/8', '52:54:00:00:00:01', 'br0', 'true'];
const NUMBERS = [0, -1, 1, 2 ** 31 - 1, -(2 ** 31), 2 ** 40, 2 ** 53, -(2 ** 53), 4095, 4096];

type Field = { name: string; type: string; label: string; typeName: string };

let tmp: string;
let dataDir: string;
let lab: NetnsLab;
let store: Store;
let agent: RunningAgent;
const stop = new AbortController();
let definition: protoLoader.PackageDefinition;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-agent-fuzz-'));
  dataDir = path.join(tmp, 'data');
  const pkiDir = path.join(tmp, 'pki');
  ensureCertBundle(pkiDir, { clients: [{ name: 'controllers' }] });
  lab = new NetnsLab();
  const ns = await lab.create();
  store = await openStore({ backend: 'embedded', dataDir: path.join(tmp, 'db') });
  agent = await runAgent({
    listen: '127.0.0.1:0', dataDir, nodeName: 'fuzz-node', address: '127.0.0.1', netns: ns,
    tls: ensureAgentIdentity(pkiDir, 'fuzz-node', ['127.0.0.1']), registrar: new StoreNodeRegistrar(store), signal: stop.signal,
  });
  definition = protoLoader.loadSync(path.join(__dirname, '..', 'proto', 'agent.proto'), { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
});

afterAll(async () => {
  // Whatever the fuzz made that is real (a VM, a network in the namespace) goes with the agent's own calls.
  const o = await agent?.agent.observe().catch(() => undefined);
  for (const vm of o?.vms ?? []) await agent.agent.deleteVm(vm.name).catch(() => undefined);
  for (const n of o?.networks ?? []) await agent.agent.deleteNetwork(n.name).catch(() => undefined);
  stop.abort();
  await agent?.done.catch(() => undefined);
  await store?.close();
  await lab?.cleanupAll().catch(() => undefined);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function fields(typeName: string): Field[] {
  const all = definition as Record<string, { type?: { field?: Field[] } }>;
  const key = Object.keys(all).find((k) => k.endsWith(`.${typeName}`));
  return (key && all[key].type?.field) || [];
}

function value(field: Field, rnd: () => number, depth: number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const one = (): unknown => {
    switch (field.type) {
      case 'TYPE_STRING': return pick(STRINGS);
      case 'TYPE_BOOL': return rnd() < 0.5;
      case 'TYPE_BYTES': return Buffer.from(pick(STRINGS));
      case 'TYPE_MESSAGE': return depth > 3 ? {} : message(field.typeName, rnd, depth + 1);
      case 'TYPE_ENUM': return Math.floor(rnd() * 6) - 1;
      case 'TYPE_DOUBLE': case 'TYPE_FLOAT': return pick(NUMBERS);
      default: {
        const unsigned = /UINT|FIXED/.test(field.type) && !/SFIXED/.test(field.type);
        const n = Math.max(unsigned ? 0 : -(2 ** 53), pick(NUMBERS));
        return /32/.test(field.type) ? Math.max(unsigned ? 0 : -(2 ** 31), Math.min(unsigned ? 2 ** 32 - 1 : 2 ** 31 - 1, n)) : String(n);
      }
    }
  };
  return field.label === 'LABEL_REPEATED' ? Array.from({ length: Math.floor(rnd() * 3) }, one) : one();
}

function message(typeName: string, rnd: () => number, depth = 0): Record<string, unknown> {
  const msg: Record<string, unknown> = {};
  for (const f of fields(typeName)) if (rnd() < 0.8) msg[f.name] = value(f, rnd, depth);
  return msg;
}

test(`${CALLS} random and hostile calls to every unary agent RPC: no INTERNAL/UNKNOWN, nothing outside the data dir`, async () => {
  const seed = Number(process.env.N0STACK_FUZZ_SEED ?? Date.now() % 1_000_000);
  const rnd = prng(seed);
  const outside = (): string => [fs.readdirSync(tmp).sort().join(','), fs.statSync('/etc/passwd').mtimeMs].join('|');
  const before = outside();
  const serviceKey = Object.keys(definition).find((k) => k.endsWith('.Agent'))!;
  const service = definition[serviceKey] as Record<string, { requestStream: boolean; responseStream: boolean; requestType: { type: { name: string } } }>;
  // ProbeAccelerator boots a guest for seconds; it is exercised by the accelerator tests.
  const methods = Object.entries(service).filter(([name, m]) => !m.requestStream && !m.responseStream && name !== 'ProbeAccelerator').map(([name, m]) => ({ name, requestType: m.requestType.type.name }));
  const Ctor = grpc.loadPackageDefinition(definition)[serviceKey.split('.')[0]] as grpc.GrpcObject;
  const Agent = serviceKey.split('.').slice(1).reduce((o: any, k) => o[k], Ctor) as grpc.ServiceClientConstructor;
  const pkiDir = path.join(tmp, 'pki');
  const tls = readTlsMaterial(pkiDir, 'controllers');
  const foreignPair = issueClientCert(createCa({ commonName: 'fuzz attacker CA' }), { commonName: 'controllers' });
  const certs = {
    controllers: tls,
    'own-node': ensureAgentIdentity(pkiDir, 'fuzz-node', ['127.0.0.1']),
    'other-node': ensureAgentIdentity(pkiDir, 'fuzz-other', ['127.0.0.1']),
    'foreign-cert': { cert: Buffer.from(foreignPair.certPem), key: Buffer.from(foreignPair.keyPem) },
    'no-cert': undefined,
  };
  type Caller = keyof typeof certs;
  const CALLERS: Caller[] = [...Array(16).fill('controllers'), 'own-node', 'other-node', 'foreign-cert', 'no-cert'];
  const clients = new Map<Caller, any>();
  const clientOf = (caller: Caller) => {
    if (!clients.has(caller)) {
      const c = certs[caller];
      clients.set(caller, new Agent(agent.endpoint, grpc.credentials.createSsl(tls.ca, c?.key ?? null, c?.cert ?? null), { 'grpc.ssl_target_name_override': 'fuzz-node' }));
    }
    return clients.get(caller);
  };
  const client = clientOf('controllers');
  const codes: Record<string, number> = {};
  const byCaller: Record<string, Record<string, number>> = {};
  const escaped: string[] = [];
  const overreach: string[] = [];
  try {
    for (let i = 0; i < CALLS; i++) {
      const { name, requestType } = methods[i % methods.length];
      const caller = CALLERS[Math.floor(rnd() * CALLERS.length)];
      const request = message(requestType, rnd);
      const code = await new Promise<number>((resolve) => {
        try {
          clientOf(caller)[name](request, new grpc.Metadata(), { deadline: Date.now() + 15_000 }, (err: grpc.ServiceError | null) => resolve(err ? err.code : grpc.status.OK));
        } catch {
          resolve(-1);
        }
      });
      const codeName = code === -1 ? 'NOT_SENT' : grpc.status[code];
      codes[codeName] = (codes[codeName] ?? 0) + 1;
      (byCaller[caller] ??= {})[codeName] = (byCaller[caller][codeName] ?? 0) + 1;
      if (code === grpc.status.INTERNAL || code === grpc.status.UNKNOWN) escaped.push(`${name} as ${caller}: ${codeName} ${JSON.stringify(request).slice(0, 300)}`);
      // Nodes are refused per call; a foreign certificate or none gets no TLS session (UNAVAILABLE).
      const allowed = caller === 'controllers' ? undefined : caller.endsWith('node') ? [grpc.status.PERMISSION_DENIED, -1] : [grpc.status.UNAVAILABLE, -1];
      if (allowed && !allowed.includes(code)) overreach.push(`${name} as ${caller}: ${codeName}`);
    }
    // Random bytes on the wire to every RPC (streams too), as the controllers and as a node.
    const paths = Object.values(service).map((m) => (m as unknown as { path: string }).path);
    let rawSent = 0;
    let rawAnswered = 0;
    for (const caller of ['controllers', 'own-node'] as const) {
      const c = certs[caller];
      const session = http2.connect(`https://${agent.endpoint}`, { ca: tls.ca, cert: c.cert, key: c.key, servername: 'fuzz-node' });
      for (const rpcPath of paths) {
        rawSent++;
        const status = await sendRandomFrame(session, rpcPath, rnd);
        if (status !== '') rawAnswered++;
        const rawName = `raw ${grpc.status[Number(status)] ?? 'none'}`;
        codes[rawName] = (codes[rawName] ?? 0) + 1;
        if (status === String(grpc.status.UNKNOWN) || status === String(grpc.status.INTERNAL)) escaped.push(`${rpcPath} as ${caller} raw bytes: ${rawName}`);
      }
      session.close();
    }
    const fmt = (c: Record<string, number>) => Object.entries(c).sort().map(([k, v]) => `${k} ${v}`).join(', ');
    process.stderr.write(`agent fuzz (seed ${seed}, mTLS): ${CALLS} calls to ${methods.length} RPCs: ${fmt(codes)}; raw-byte frames answered ${rawAnswered}/${rawSent}\n`
      + Object.entries(byCaller).sort().map(([caller, c]) => `  as ${caller}: ${fmt(c)}`).join('\n') + '\n');
    expect(rawAnswered).toBe(rawSent);
    expect(overreach).toEqual([]);
    const alive = await new Promise((resolve) => client.Observe({}, (err: Error | null) => resolve(err ? err.message : 'ok')));
    expect(escaped).toEqual([]);
    expect(alive).toBe('ok');
    expect(outside()).toBe(before);
  } finally {
    for (const c of clients.values()) c.close();
  }
});
