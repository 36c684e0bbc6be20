// A bounded fuzz of the facade: random and mutated requests to every unary RPC (built from the
// proto's own descriptors), hostile strings and numbers, and random bytes on the wire. Invariants:
// the server answers every call, no INTERNAL or UNKNOWN code escapes, and a call refused with
// INVALID_ARGUMENT leaves every kind's list revision as it was. N0STACK_FUZZ_CALLS sets the
// count (default 10,000; CI's short mode); it prints what came back.
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { openStore } from '../store';
import type { Store } from '../store/store';
import { loadFacadeProto } from './proto';
import { startFacade, type Facade } from './server';

const CALLS = Number(process.env.N0STACK_FUZZ_CALLS ?? 10_000);
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

function messageFields(definition: Definition, typeName: string): Field[] | undefined {
  const entry = (definition as Record<string, { type?: { field?: Field[] } }>)[`n0stack.${typeName}`] ?? (definition as Record<string, { type?: { field?: Field[] } }>)[typeName];
  return entry?.type?.field;
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
let store: Store;
let facade: Facade;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-fuzz-'));
  store = await openStore({ backend: 'embedded', dataDir: path.join(dir, 'store') });
  // No controllers: a valid write is answered within its short deadline, not waited out.
  facade = await startFacade({ store, listen: '127.0.0.1:0', defaultWaitMs: 200 });
});

afterAll(async () => {
  await facade?.stop();
  await store?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function revisions(): Promise<string> {
  return (await Promise.all(KINDS.map(async (k) => (await store.list(k)).resourceVersion))).join(',');
}

test(`${CALLS} random and mutated calls to every unary RPC: no INTERNAL/UNKNOWN, INVALID_ARGUMENT writes nothing`, async () => {
  const seed = Number(process.env.N0STACK_FUZZ_SEED ?? Date.now() % 1_000_000);
  const rnd = prng(seed);
  const definition = loadFacadeProto();
  const pkg = grpc.loadPackageDefinition(definition).n0stack as grpc.GrpcObject;
  const methods: { service: string; method: string; requestType: string }[] = [];
  for (const [key, value] of Object.entries(definition)) {
    if (!key.startsWith('n0stack.') || !key.endsWith('Service')) continue;
    for (const [method, m] of Object.entries(value as Record<string, { requestStream: boolean; responseStream: boolean; requestType: { type: { name: string } } }>)) {
      if (m.requestStream || m.responseStream) continue;
      methods.push({ service: key.slice('n0stack.'.length), method, requestType: m.requestType.type.name });
    }
  }
  const clients = new Map<string, grpc.Client>();
  const client = (service: string): grpc.Client => {
    if (!clients.has(service)) clients.set(service, new (pkg[service] as grpc.ServiceClientConstructor)(`127.0.0.1:${facade.port}`, grpc.credentials.createInsecure()));
    return clients.get(service)!;
  };
  const codes: Record<string, number> = {};
  const escaped: string[] = [];
  const wrote: string[] = [];
  for (let i = 0; i < CALLS; i++) {
    const { service, method, requestType } = methods[i % methods.length];
    const request = randomMessage(definition, requestType, rnd);
    const before = await revisions();
    const code = await new Promise<number>((resolve) => {
      try {
        (client(service) as any)[method](request, new grpc.Metadata(), { deadline: Date.now() + 1000 }, (err: grpc.ServiceError | null) => resolve(err ? err.code : grpc.status.OK));
      } catch {
        resolve(-1); // the client refused to serialize it; nothing was sent
      }
    });
    const name = code === -1 ? 'NOT_SENT' : grpc.status[code];
    codes[name] = (codes[name] ?? 0) + 1;
    if (code === grpc.status.INTERNAL || code === grpc.status.UNKNOWN) escaped.push(`${service}.${method} ${name} ${JSON.stringify(request).slice(0, 300)}`);
    if (code === grpc.status.INVALID_ARGUMENT && (await revisions()) !== before) wrote.push(`${service}.${method} ${JSON.stringify(request).slice(0, 300)}`);
  }
  // Random bytes on the wire: a raw HTTP/2 stream with a garbage gRPC frame to every method.
  let rawAnswered = 0;
  const session = http2.connect(`http://127.0.0.1:${facade.port}`);
  for (const { service, method } of methods) {
    const body = Buffer.concat([Buffer.from([0, 0, 0, 0, 64]), Buffer.from(Array.from({ length: 64 }, () => Math.floor(rnd() * 256)))]);
    const status = await new Promise<string>((resolve) => {
      const req = session.request({ ':method': 'POST', ':path': `/n0stack.${service}/${method}`, 'content-type': 'application/grpc', te: 'trailers' });
      let grpcStatus = '';
      req.on('response', (h) => { grpcStatus = String(h['grpc-status'] ?? grpcStatus); });
      req.on('trailers', (h) => { grpcStatus = String(h['grpc-status'] ?? grpcStatus); });
      req.on('close', () => resolve(grpcStatus));
      req.on('error', () => resolve(grpcStatus));
      req.end(body);
    });
    if (status !== '') rawAnswered++;
    if (status === String(grpc.status.UNKNOWN)) escaped.push(`${service}.${method} raw bytes: UNKNOWN`);
  }
  session.close();
  process.stderr.write(`fuzz (seed ${seed}): ${CALLS} calls to ${methods.length} RPCs: ${Object.entries(codes).sort().map(([k, v]) => `${k} ${v}`).join(', ')}; raw-byte frames answered ${rawAnswered}/${methods.length}\n`);
  expect(escaped).toEqual([]);
  expect(wrote).toEqual([]);
  expect(rawAnswered).toBe(methods.length);
  // The facade still serves after all of it.
  const alive = await new Promise((resolve) => (client('NodeService') as any).ListNodes({}, (err: Error | null) => resolve(err ? err.message : 'ok')));
  for (const c of clients.values()) c.close();
  expect(alive).toBe('ok');
});
