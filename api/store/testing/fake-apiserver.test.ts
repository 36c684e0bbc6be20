// The stand-in API server's own semantics, over raw HTTP (no client library in between), so the
// kubernetes backend's tests rest on checked behaviour: optimistic concurrency, status subresource,
// finalizers, watch history and compaction, pruning, Status error bodies.
import { FakeApiServer, structuralProblems } from './fake-apiserver';
import { mergePatch } from '../kv';

// Response bodies are whatever JSON the server sent; the assertions check their shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const base = '/apis/n0stack.io/v1alpha1/networks';
const net = (name: string, extra: Record<string, unknown> = {}) =>
  ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name, ...extra }, spec: { ipv4_cidr: '10.0.0.0/24' } });

describe('FakeApiServer', () => {
  let fake: FakeApiServer;
  const call = async (method: string, path: string, body?: unknown, contentType = 'application/json') => {
    const res = await fetch(fake.url + path, {
      method, headers: { 'Content-Type': contentType }, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(5_000),
    });
    return { code: res.status, body: (await res.json()) as Json, headers: res.headers };
  };
  /** Reads a watch stream until `count` lines arrived (or the server ended it), within a deadline. */
  const watchLines = async (query: string, count: number) => {
    const res = await fetch(`${fake.url}${base}?watch=true&${query}`, { signal: AbortSignal.timeout(5_000) });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let text = '';
    const lines = () => text.split('\n').filter(Boolean);
    while (lines().length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString('utf8');
    }
    await reader.cancel();
    return lines().map((l) => JSON.parse(l) as { type: string; object: { metadata: { name?: string; resourceVersion?: string }; code?: number; reason?: string } });
  };

  beforeEach(async () => { fake = await FakeApiServer.start({ bookmarkIntervalMs: 20 }); });
  afterEach(async () => { await fake.stop(); });

  it('creates with server-assigned fields, drops status, and answers a second create with 409 AlreadyExists', async () => {
    const created = await call('POST', base, { ...net('a'), status: { state: 'AVAILABLE' } });
    expect(created.code).toBe(201);
    expect(created.body.metadata).toMatchObject({ name: 'a', generation: 1, resourceVersion: '1' });
    expect(created.body.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.body.status).toBeUndefined();
    const again = await call('POST', base, net('a'));
    expect(again.code).toBe(409);
    expect(again.body).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'AlreadyExists', code: 409 });
    expect((await call('POST', base, { ...net('b'), metadata: { name: 'b', resourceVersion: '7' } })).code).toBe(500);
  });

  it('refuses a PUT with a stale resourceVersion (409 Conflict) or none (422), and keeps status on the main resource', async () => {
    const v1 = (await call('POST', base, net('a'))).body;
    const v2 = await call('PUT', `${base}/a`, { ...v1, spec: { ipv4_cidr: '10.1.0.0/24' }, status: { state: 'FAILED' } });
    expect(v2.code).toBe(200);
    expect(v2.body.metadata.generation).toBe(2);
    expect(v2.body.status).toBeUndefined();
    const stale = await call('PUT', `${base}/a`, { ...v1, spec: { ipv4_cidr: '10.2.0.0/24' } });
    expect(stale.code).toBe(409);
    expect(stale.body).toMatchObject({ kind: 'Status', reason: 'Conflict', code: 409 });
    expect(stale.body.message).toMatch(/the object has been modified/);
    const { resourceVersion: _rv, ...noRv } = v2.body.metadata;
    const missing = await call('PUT', `${base}/a`, { ...v2.body, metadata: noRv });
    expect(missing.code).toBe(422);
    expect(missing.body.details.causes[0].field).toBe('metadata.resourceVersion');
    // /status writes only status and never bumps generation.
    const st = await call('PUT', `${base}/a/status`, { ...v2.body, spec: { ipv4_cidr: '10.9.0.0/24' }, status: { state: 'AVAILABLE' } });
    expect(st.body).toMatchObject({ spec: { ipv4_cidr: '10.1.0.0/24' }, status: { state: 'AVAILABLE' }, metadata: { generation: 2 } });
    // A no-op write stores nothing: same resourceVersion.
    const noop = await call('PUT', `${base}/a`, st.body);
    expect(noop.body.metadata.resourceVersion).toBe(st.body.metadata.resourceVersion);
  });

  it('treats a resourceVersion set by a patch as a precondition, and a failed JSON Patch test as 422', async () => {
    const v1 = (await call('POST', base, net('a'))).body;
    const ok = await call('PATCH', `${base}/a`, { spec: { domain: 'x.example' }, metadata: { resourceVersion: v1.metadata.resourceVersion } }, 'application/merge-patch+json');
    expect(ok.code).toBe(200);
    const stale = await call('PATCH', `${base}/a`, { spec: { domain: 'y.example' }, metadata: { resourceVersion: v1.metadata.resourceVersion } }, 'application/merge-patch+json');
    expect(stale.code).toBe(409);
    const test = await call('PATCH', `${base}/a`, [{ op: 'test', path: '/spec/domain', value: 'nope' }, { op: 'remove', path: '/spec/domain' }], 'application/json-patch+json');
    expect(test.code).toBe(422);
    expect(test.body.message).toMatch(/^testing value \/spec\/domain failed/);
    expect((await call('PATCH', `${base}/a`, {}, 'application/strategic-merge-patch+json')).code).toBe(415);
    expect((await call('GET', `${base}/a`)).body.spec.domain).toBe('x.example');
  });

  it('deletes with finalizers in two steps and checks delete preconditions', async () => {
    await call('POST', base, net('f', { finalizers: ['n0stack.io/x'] }));
    expect((await call('DELETE', `${base}/f`, { preconditions: { resourceVersion: '999' } })).code).toBe(409);
    const marked = await call('DELETE', `${base}/f`);
    expect(marked.body.metadata.deletionTimestamp).toBeDefined();
    const adding = await call('PUT', `${base}/f`, { ...marked.body, metadata: { ...marked.body.metadata, finalizers: ['n0stack.io/x', 'n0stack.io/new'] } });
    expect(adding.code).toBe(422);
    const emptied = await call('PUT', `${base}/f`, { ...marked.body, metadata: { ...marked.body.metadata, finalizers: [] } });
    expect(emptied.code).toBe(200);
    expect((await call('GET', `${base}/f`)).code).toBe(404);
    const plain = await call('POST', base, net('p'));
    const gone = await call('DELETE', `${base}/p`, { preconditions: { resourceVersion: plain.body.metadata.resourceVersion } });
    expect(gone.body).toMatchObject({ kind: 'Status', status: 'Success', details: { name: 'p' } });
  });

  it('streams history after a revision, the current state without one, and bookmarks on request', async () => {
    const a = (await call('POST', base, net('a'))).body;
    await call('PATCH', `${base}/a`, { metadata: { labels: { k: 'v' } } }, 'application/merge-patch+json');
    await call('DELETE', `${base}/a`);
    await call('POST', base, net('b'));
    const fromA = await watchLines(`resourceVersion=${a.metadata.resourceVersion}`, 3);
    expect(fromA.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['MODIFIED a', 'DELETED a', 'ADDED b']);
    expect(fromA.map((e) => e.object.metadata.resourceVersion)).toEqual(['2', '3', '4']);
    const now = await watchLines('', 1);
    expect(now.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['ADDED b']);
    const bookmarks = await watchLines('resourceVersion=4&allowWatchBookmarks=true', 1);
    expect(bookmarks[0]).toMatchObject({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '4' } } });
  });

  it('answers a watch from a compacted revision with an ERROR event carrying 410 Expired', async () => {
    const first = (await call('POST', base, net('a'))).body;
    await call('POST', base, net('b'));
    fake.compact(fake.revision);
    const events = await watchLines(`resourceVersion=${first.metadata.resourceVersion}`, 2);
    expect(events).toHaveLength(1); // the server ends the stream after the error
    expect(events[0]).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
    expect(await watchLines(`resourceVersion=${fake.revision}&allowWatchBookmarks=true`, 1)).toMatchObject([{ type: 'BOOKMARK' }]);
  });

  it('prunes unknown fields with a warning, refuses them under Strict, and refuses schema violations with 422', async () => {
    const pruned = await call('POST', base, { ...net('a'), spec: { ipv4_cidr: '10.0.0.0/24', nonsense: 1 } });
    expect(pruned.code).toBe(201);
    expect(pruned.body.spec).toEqual({ ipv4_cidr: '10.0.0.0/24' });
    expect(pruned.headers.get('warning')).toMatch(/unknown field \\"spec.nonsense\\"/);
    const strict = await call('POST', `${base}?fieldValidation=Strict`, { ...net('b'), spec: { nonsense: 1 } });
    expect(strict.code).toBe(400);
    expect(strict.body.message).toMatch(/strict decoding error: unknown field "spec.nonsense"/);
    const bad = await call('POST', base, { ...net('c'), spec: { ipv4_cidr: 5 } });
    expect(bad.code).toBe(422);
    expect(bad.body).toMatchObject({ kind: 'Status', reason: 'Invalid' });
    expect((await call('POST', base, net('under_score'))).code).toBe(422);
    const seedKey = await call('POST', base, net('d', { annotations: { 'n0core/provisioning/virtual_machine/vlan_id': '100' } }));
    expect(seedKey.code).toBe(422);
    expect(seedKey.body.message).toMatch(/metadata\.annotations.*at most one \//);
    expect((await call('GET', `${base}?labelSelector=${encodeURIComponent('a in (b)')}`)).code).toBe(400);
  });

  it("evaluates the CRDs' CEL rules on create and update: 422 naming the field with the rule's message, transition rules on update only", async () => {
    const bsBase = '/apis/n0stack.io/v1alpha1/blockstorages';
    const bs = (spec: Record<string, unknown>) => ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'BlockStorage', metadata: { name: 'd1' }, spec });
    const bad = await call('POST', bsBase, bs({ request_bytes: 2048, limit_bytes: 1024 }));
    expect(bad.code).toBe(422);
    expect(bad.body.reason).toBe('Invalid');
    expect(bad.body.message).toBe('BlockStorage.n0stack.io "d1" is invalid: spec.request_bytes: Invalid value: "object": request_bytes must be between 0 and limit_bytes');
    expect(bad.body.details.causes).toEqual([{ reason: 'FieldValueInvalid', field: 'spec.request_bytes', message: 'Invalid value: "object": request_bytes must be between 0 and limit_bytes' }]);
    const created = await call('POST', bsBase, bs({ request_bytes: 1024, limit_bytes: 2048 }));
    expect(created.code).toBe(201);
    const rv = created.body.metadata.resourceVersion;
    const shrink = await call('PUT', `${bsBase}/d1`, { ...bs({ request_bytes: 1024, limit_bytes: 1024 }), metadata: { name: 'd1', resourceVersion: rv } });
    expect(shrink.code).toBe(422);
    expect(shrink.body.message).toMatch(/spec\.limit_bytes: Invalid value: "object": limit_bytes can only grow/);
    // Two broken rules are both reported, as the API server aggregates them.
    const both = await call('PUT', `${bsBase}/d1`, { ...bs({ request_bytes: 1, limit_bytes: 1024 }), metadata: { name: 'd1', resourceVersion: rv } });
    expect(both.body.message).toMatch(/is invalid: \[spec\.limit_bytes: .*can only grow.*, spec\.request_bytes: .*can only grow.*\]$/);
    const grow = await call('PUT', `${bsBase}/d1`, { ...bs({ request_bytes: 1024, limit_bytes: 4096 }), metadata: { name: 'd1', resourceVersion: rv } });
    expect(grow.code).toBe(200);
    // A transition rule on a whole object (self == oldSelf): a NetworkAddress never changes.
    const addrBase = '/apis/n0stack.io/v1alpha1/networkaddresses';
    const spec = { network_name: 'cel', family: 'ipv4', address: '10.0.0.5', holder_key: 'vm1.0' };
    const addr = await call('POST', addrBase, { apiVersion: 'n0stack.io/v1alpha1', kind: 'NetworkAddress', metadata: { name: 'cel.ipv4.10.0.0.5' }, spec });
    expect(addr.code).toBe(201);
    const moved = await call('PUT', `${addrBase}/cel.ipv4.10.0.0.5`, { ...addr.body, spec: { ...spec, holder_key: 'vm2.0' } });
    expect(moved.code).toBe(422);
    expect(moved.body.message).toMatch(/spec\.address: Invalid value: "object": a NetworkAddress is immutable/);
    expect(moved.body.details.causes[0].reason).toBe('FieldValueInvalid');
    expect((await call('PUT', `${addrBase}/cel.ipv4.10.0.0.5`, addr.body)).code).toBe(200);
    // A spec rule on create: neither CIDR.
    expect((await call('POST', base, { ...net('nocidr'), spec: {} })).body.message).toMatch(/spec\.ipv4_cidr: Invalid value: "object": ipv4_cidr \(or ipv6_cidr\) is required/);
  });

  it('requires the bearer token when it has one', async () => {
    const guarded = await FakeApiServer.start({ token: 's3cret' });
    try {
      expect((await fetch(`${guarded.url}${base}`)).status).toBe(401);
      expect((await fetch(`${guarded.url}${base}`, { headers: { Authorization: 'Bearer s3cret' } })).status).toBe(200);
    } finally {
      await guarded.stop();
    }
  });
});

describe('structuralProblems and mergePatch', () => {
  it('finds additionalProperties next to properties, which a real server refuses in a CRD', () => {
    expect(structuralProblems({ type: 'object', properties: { spec: { type: 'object', additionalProperties: false, properties: { a: { type: 'string' } } } } }))
      .toEqual(['.spec: additionalProperties and properties are mutually exclusive']);
    expect(structuralProblems({ type: 'object', properties: { labels: { type: 'object', additionalProperties: { type: 'string' } } } })).toEqual([]);
  });
  it('applies RFC 7386 merge patches', () => {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 }, e: [1] }, { b: { c: null, x: 1 }, e: [2], f: 'n' })).toEqual({ a: 1, b: { d: 3, x: 1 }, e: [2], f: 'n' });
  });
});
