// A bounded fuzz of the facade as production runs it (TLS, the admin token, a viewer token from
// the token file, node client certificates): random and mutated requests to every unary RPC
// (built from the proto's own descriptors), hostile strings and numbers, and random bytes on the
// wire, each call with one caller drawn from a mix: admin, viewer, a node's certificate, a wrong or
// garbage token, no credentials at all. Invariants: the server answers every call, no INTERNAL or
// UNKNOWN code escapes, a call refused with INVALID_ARGUMENT, PERMISSION_DENIED or UNAUTHENTICATED
// leaves every stored byte (every key and value under the store's prefix) as it was, and no file
// appears outside the data dir. Short mode (CI): 10,000 calls; N0STACK_FUZZ_LONG=1: 100,000;
// N0STACK_FUZZ_CALLS sets any count, N0STACK_FUZZ_SEED replays a run. It prints what came back.
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createCa, ensureAgentIdentity, ensureCertBundle, issueServerCert, NODE_ORGANIZATION, readTlsMaterial, type TlsMaterial } from '../pki';
import { LmdbBackend } from '../store/embedded';
import { KvStore } from '../store/kv';
import { DEFAULT_PREFIX } from '../store';
import { isReadOnly, TokenFile } from './auth';
import { loadFacadeProto } from './proto';
import { startFacade, type Facade } from './server';
import { sendRandomFrame } from './testing/raw-grpc';

const CALLS = Number(process.env.N0STACK_FUZZ_CALLS ?? (process.env.N0STACK_FUZZ_LONG ? 100_000 : 10_000));
jest.setTimeout(Math.max(300_000, CALLS * 60));

const KINDS = ['Node', 'Network', 'BlockStorage', 'Image', 'VirtualMachine'] as const;

/** A small deterministic PRNG, so a failure can be replayed with the printed seed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

const HOSTILE_STRINGS = ['', '../etc/passwd', '..', '/', 'a/b', 'a\0b', '\0', ' ', 'A', 'vm-host1', 'x'.repeat(64 * 1024), '😀', '%00', '-rf', '$(reboot)', 'a'.repeat(254), '10.0.0.0/8', '::/0', '999.1.1.1/33', 'true', '{}', 'null',
  // Cut at 64 or 4096 code units these split a surrogate pair (a lone surrogate once crashed grpc-js's status encoding).
  `${'x'.repeat(63)}😀`, '😀'.repeat(40), `${'y'.repeat(4095)}😀`];
const HOSTILE_NUMBERS = [0, -1, 1, 2 ** 31 - 1, -(2 ** 31), 2 ** 53, -(2 ** 53), 1e308, -1e308, 0.5, Number.MAX_SAFE_INTEGER];

type Field = { name: string; type: string; label: string; typeName: string };
type Definition = ReturnType<typeof loadFacadeProto>;

/** A message's fields by its (possibly package-qualified) type name, whatever the proto package is called. */
function messageFields(definition: Definition, typeName: string): Field[] | undefined {
  const all = definition as Record<string, { type?: { field?: Field[] } }>;
  const bare = typeName.replace(/^\./, '');
  const key = all[bare] ? bare : Object.keys(all).find((k) => k.endsWith(`.${bare.split('.').pop()}`));
  return key ? all[key].type?.field : undefined;
}

function randomValue(definition: Definition, field: Field, rnd: () => number, depth: number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const one = (): unknown => {
    switch (field.type) {
      case 'TYPE_STRING': return rnd() < 0.7 ? pick(HOSTILE_STRINGS) : rnd().toString(36).slice(2, 2 + Math.floor(rnd() * 12));
      case 'TYPE_BOOL': return rnd() < 0.5;
      case 'TYPE_BYTES': return Buffer.from(pick(HOSTILE_STRINGS));
      case 'TYPE_DOUBLE': case 'TYPE_FLOAT': return pick(HOSTILE_NUMBERS);
      case 'TYPE_ENUM': return Math.floor(rnd() * 8) - 1;
      case 'TYPE_MESSAGE': return depth > 3 ? {} : randomMessage(definition, field.typeName, rnd, depth + 1);
      default: {
        // Integers: the serializer refuses what the wire cannot hold, so stay within 64 bits.
        const n = pick(HOSTILE_NUMBERS);
        const unsigned = /UINT|FIXED/.test(field.type) && !/SFIXED/.test(field.type);
        const int = Math.trunc(Math.max(unsigned ? 0 : -(2 ** 53), Math.min(2 ** 53, n)));
        return /32/.test(field.type) ? Math.max(unsigned ? 0 : -(2 ** 31), Math.min(unsigned ? 2 ** 32 - 1 : 2 ** 31 - 1, int)) : String(int);
      }
    }
  };
  if (field.label === 'LABEL_REPEATED') return Array.from({ length: Math.floor(rnd() * 4) }, one);
  return one();
}

function randomMessage(definition: Definition, typeName: string, rnd: () => number, depth = 0): Record<string, unknown> {
  const fields = messageFields(definition, typeName) ?? [];
  const msg: Record<string, unknown> = {};
  for (const f of fields) if (rnd() < 0.8) msg[f.name] = randomValue(definition, f, rnd, depth);
  // Document-carrying RPCs get mostly-JSON documents with hostile parts.
  if ('document_json' in msg && rnd() < 0.7) {
    msg.document_json = JSON.stringify({
      apiVersion: rnd() < 0.8 ? 'n0stack.io/v1alpha1' : 'x/v1', kind: KINDS[Math.floor(rnd() * KINDS.length)],
      metadata: { name: HOSTILE_STRINGS[Math.floor(rnd() * HOSTILE_STRINGS.length)], labels: rnd() < 0.3 ? { '../x': '\0' } : undefined },
      spec: rnd() < 0.5 ? { ipv4_cidr: '10.9.0.0/24', request_bytes: -1, limit_bytes: 'big', nics: [{}], block_storage_names: [null] } : 'spec',
    });
  }
  return msg;
}

let dir: string;
let kv: LmdbBackend;
let store: KvStore;
let facade: Facade;
let ca: Buffer;
let node: TlsMaterial;
let foreign: { cert: Buffer; key: Buffer };
let viewer: string;
const ADMIN = 'fuzz-admin-token-0123456789';

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-fuzz-'));
  const pkiDir = path.join(dir, 'pki');
  ensureCertBundle(pkiDir, { servers: [{ name: 'facade', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }] });
  const served = readTlsMaterial(pkiDir, 'facade');
  ca = served.ca;
  node = ensureAgentIdentity(pkiDir, 'vm-host1', ['127.0.0.1']);
  const forged = issueServerCert(createCa({ commonName: 'fuzz attacker CA' }), { commonName: 'vm-host1', dnsNames: ['vm-host1'], clientAuth: true, organization: NODE_ORGANIZATION });
  foreign = { cert: Buffer.from(forged.certPem), key: Buffer.from(forged.keyPem) };
  viewer = TokenFile.create(path.join(dir, 'tokens.json'), 'viewer').token;
  // The store's own backend, so the invariant can compare every stored byte.
  kv = new LmdbBackend(path.join(dir, 'store'));
  store = new KvStore('embedded', kv, DEFAULT_PREFIX);
  // No controllers: a valid write is answered within its short deadline, not waited out.
  facade = await startFacade({
    store, listen: '127.0.0.1:0', defaultWaitMs: 200, token: ADMIN, tokens: new TokenFile(path.join(dir, 'tokens.json')),
    tls: { cert: served.cert, key: served.key, clientCa: served.ca },
  });
});

afterAll(async () => {
  await facade?.stop();
  await store?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Every key and value under the store's prefix: kinds, Events, the secret area. */
async function stored(): Promise<string> {
  const { entries } = await kv.range(`${DEFAULT_PREFIX}/`);
  return entries.map((e) => `${e.key}\0${e.modRevision}\0${e.value}`).join('\n');
}

/** Who calls: the mix of production callers, and callers that are nobody. */
const CALLERS = ['admin', 'admin', 'admin', 'admin', 'admin', 'viewer', 'node', 'garbage-token', 'no-credentials', 'foreign-cert'] as const;
type Caller = typeof CALLERS[number];

function garbageToken(rnd: () => number): string {
  const pick = HOSTILE_STRINGS[Math.floor(rnd() * HOSTILE_STRINGS.length)];
  // Metadata values must be printable ASCII, or grpc-js refuses to send them (NOT_SENT).
  return [`${ADMIN}x`, ADMIN.slice(0, -1), 'Bearer', '', ' ', encodeURIComponent(pick).slice(0, 8192), rnd().toString(36)][Math.floor(rnd() * 7)];
}

test(`${CALLS} random and mutated calls to every unary RPC by every kind of caller: no INTERNAL/UNKNOWN, refusals write nothing`, async () => {
  const seed = Number(process.env.N0STACK_FUZZ_SEED ?? Date.now() % 1_000_000);
  const rnd = prng(seed);
  const definition = loadFacadeProto();
  const loaded = grpc.loadPackageDefinition(definition);
  type MethodDef = { path: string; requestStream: boolean; responseStream: boolean; requestType: { type: { name: string } } };
  const methods: { service: string; method: string; path: string; requestType: string }[] = [];
  const paths: string[] = [];
  const streams = new Set<string>();
  for (const [key, value] of Object.entries(definition)) {
    if (!key.endsWith('Service')) continue;
    for (const [method, m] of Object.entries(value as Record<string, MethodDef>)) {
      paths.push(m.path);
      if (m.requestStream || m.responseStream) { streams.add(m.path); continue; }
      methods.push({ service: key, method, path: m.path, requestType: m.requestType.type.name });
    }
  }
  expect(methods.length).toBeGreaterThan(40);
  const clients = new Map<string, grpc.Client>();
  const client = (service: string, caller: Caller): grpc.Client => {
    const id = `${service}|${caller === 'node' || caller === 'foreign-cert' ? caller : 'tls'}`;
    if (!clients.has(id)) {
      const Ctor = service.split('.').reduce((o: any, k) => o[k], loaded) as grpc.ServiceClientConstructor;
      const cert = caller === 'node' ? node : caller === 'foreign-cert' ? foreign : undefined;
      clients.set(id, new Ctor(`127.0.0.1:${facade.port}`, grpc.credentials.createSsl(ca, cert?.key ?? null, cert?.cert ?? null), { 'grpc.ssl_target_name_override': 'localhost' }));
    }
    return clients.get(id)!;
  };
  const tmpBefore = fs.readdirSync(dir).sort().join(',');
  const cwdBefore = fs.readdirSync(process.cwd()).sort().join(',');
  const passwd = fs.statSync('/etc/passwd').mtimeMs;
  const codes: Record<string, number> = {};
  const byCaller: Record<string, Record<string, number>> = {};
  const escaped: string[] = [];
  const wrote: string[] = [];
  const overreach: string[] = [];
  for (let i = 0; i < CALLS; i++) {
    const { service, method, requestType } = methods[i % methods.length];
    const caller = CALLERS[Math.floor(rnd() * CALLERS.length)];
    const request = randomMessage(definition, requestType, rnd);
    // A node mostly names itself, so its own RPCs get past the name check too.
    if (caller === 'node' && rnd() < 0.5) request.name = 'vm-host1';
    const metadata = new grpc.Metadata();
    const token = caller === 'admin' ? ADMIN : caller === 'viewer' ? viewer : caller === 'garbage-token' ? garbageToken(rnd) : undefined;
    const before = await stored();
    const code = await new Promise<number>((resolve) => {
      try {
        if (token !== undefined) metadata.set('authorization', caller === 'garbage-token' && rnd() < 0.5 ? token : `Bearer ${token}`);
        (client(service, caller) as any)[method](request, metadata, { deadline: Date.now() + 1000 }, (err: grpc.ServiceError | null) => resolve(err ? err.code : grpc.status.OK));
      } catch {
        resolve(-1); // the client refused to serialize it; nothing was sent
      }
    });
    const name = code === -1 ? 'NOT_SENT' : grpc.status[code];
    codes[name] = (codes[name] ?? 0) + 1;
    (byCaller[caller] ??= {})[name] = (byCaller[caller][name] ?? 0) + 1;
    if (code === grpc.status.INTERNAL || code === grpc.status.UNKNOWN) escaped.push(`${service}.${method} as ${caller}: ${name} ${JSON.stringify(request).slice(0, 300)}`);
    const bare = service.split('.').pop()!;
    const outOfRole = (caller === 'viewer' && !isReadOnly(bare, method)) || (caller === 'node' && !(bare === 'NodeService' && (method === 'ApplyNode' || method === 'HeartbeatNode')));
    if (outOfRole && code !== grpc.status.PERMISSION_DENIED && code !== -1) overreach.push(`${service}.${method} as ${caller}: ${name}`);
    const refusal = code === grpc.status.INVALID_ARGUMENT || code === grpc.status.PERMISSION_DENIED || code === grpc.status.UNAUTHENTICATED;
    if (refusal && (await stored()) !== before) wrote.push(`${service}.${method} as ${caller}: ${name} ${JSON.stringify(request).slice(0, 300)}`);
  }
  // Random bytes on the wire: a raw HTTP/2 stream with a garbage gRPC frame to every method, with
  // the admin token (so it reaches the decoder) and with none.
  let rawSent = 0;
  let rawAnswered = 0;
  const session = http2.connect(`https://127.0.0.1:${facade.port}`, { ca, servername: 'localhost' });
  for (const rpcPath of paths) {
    for (const auth of [`Bearer ${ADMIN}`, undefined]) {
      rawSent++;
      const status = await sendRandomFrame(session, rpcPath, rnd, auth ? { authorization: auth } : {});
      // Random bytes can decode into a valid watch: the admin's then stays open, waiting for events.
      const watching = status === '' && auth !== undefined && streams.has(rpcPath);
      if (status !== '' || watching) rawAnswered++;
      const rawName = `raw ${watching ? 'watching' : status === '' ? 'none' : grpc.status[Number(status)]}`;
      codes[rawName] = (codes[rawName] ?? 0) + 1;
      if (status === String(grpc.status.UNKNOWN) || status === String(grpc.status.INTERNAL)) escaped.push(`${rpcPath} raw bytes: ${rawName}`);
    }
  }
  session.close();
  const fmt = (c: Record<string, number>) => Object.entries(c).sort().map(([k, v]) => `${k} ${v}`).join(', ');
  process.stderr.write(`facade fuzz (seed ${seed}, TLS + tokens): ${CALLS} calls to ${methods.length} RPCs: ${fmt(codes)}; raw-byte frames answered ${rawAnswered}/${rawSent}\n`
    + Object.entries(byCaller).sort().map(([caller, c]) => `  as ${caller}: ${fmt(c)}`).join('\n') + '\n');
  expect(escaped).toEqual([]);
  expect(wrote).toEqual([]);
  expect(rawAnswered).toBe(rawSent);
  // Nobody who is nobody got anything but UNAUTHENTICATED (or a request the client would not send).
  for (const who of ['garbage-token', 'no-credentials', 'foreign-cert']) {
    expect({ who, codes: Object.keys(byCaller[who] ?? {}).filter((k) => k !== 'UNAUTHENTICATED' && k !== 'NOT_SENT') }).toEqual({ who, codes: [] });
  }
  expect(overreach).toEqual([]);
  expect(fs.readdirSync(dir).sort().join(',')).toBe(tmpBefore);
  expect(fs.readdirSync(process.cwd()).sort().join(',')).toBe(cwdBefore);
  expect(fs.statSync('/etc/passwd').mtimeMs).toBe(passwd);
  // The facade still serves after all of it.
  const alive = await new Promise((resolve) => {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${ADMIN}`);
    (client(methods.find((m) => m.method === 'ListNodes')!.service, 'admin') as any).ListNodes({}, md, (err: Error | null) => resolve(err ? err.message : 'ok'));
  });
  for (const c of clients.values()) c.close();
  expect(alive).toBe('ok');
});
