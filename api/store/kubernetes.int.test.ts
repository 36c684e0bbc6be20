// The kubernetes backend against the in-process stand-in API server (no real cluster can run
// here): the shared conformance suite, plus what only this backend does (bearer token, server-side
// stream ends with resume, bookmarks, errors from the server rather than from local validation).
import { describeStoreConformance } from './conformance';
import { KubernetesStore } from './kubernetes';
import { FakeApiServer } from './testing/fake-apiserver';
import { isN0Error } from '../errors';
import { ANNOTATIONS, type BlockStorage, type Network, type VirtualMachine } from '../types';

describe('kubernetes store: conformance against the stand-in API server', () => {
  let fake: FakeApiServer | undefined;
  describeStoreConformance('kubernetes', async () => {
    fake = await FakeApiServer.start({ token: 'conformance-token' });
    const store = new KubernetesStore({ server: fake.url, token: 'conformance-token', requestTimeoutMs: 10_000 });
    return { store, cleanup: async () => { await store.close(); await fake?.stop(); } };
  }, { supportsCompaction: async () => async (revision) => fake!.compact(revision) });
});

const net = (name: string, labels?: Record<string, string>): Network =>
  ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name, ...(labels ? { labels } : {}) }, spec: { ipv4_cidr: '10.0.0.0/24' } });

describe('kubernetes store: what only this backend does', () => {
  let fake: FakeApiServer;
  let store: KubernetesStore;
  beforeEach(async () => {
    fake = await FakeApiServer.start({ token: 't0ken', bookmarkIntervalMs: 50 });
    store = new KubernetesStore({ server: fake.url, token: 't0ken', requestTimeoutMs: 5_000 });
  });
  afterEach(async () => { await store.close(); await fake.stop(); });

  it('sends the bearer token, and a wrong one is a FailedPrecondition naming the cause', async () => {
    await store.create(net('tok'));
    const wrong = new KubernetesStore({ server: fake.url, token: 'nope', requestTimeoutMs: 5_000 });
    let caught: unknown;
    try { await wrong.get('Network', 'tok'); } catch (err) { caught = err; }
    expect(isN0Error(caught, 'FailedPrecondition')).toBe(true);
    expect((caught as Error).message).toMatch(/HTTP 401/);
  });

  it('resumes a watch the server ended, from the last revision, without gaps or duplicates', async () => {
    const { resourceVersion } = await store.list('Network');
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 10_000);
    const seen: string[] = [];
    const done = (async () => {
      for await (const e of store.watch('Network', { resourceVersion, signal: controller.signal })) {
        seen.push(`${e.type} ${e.object.metadata.name} ${e.object.metadata.resourceVersion}`);
        if (seen.length === 4) controller.abort();
      }
    })();
    const a = await store.create(net('a'));
    await waitFor(() => seen.length === 1);
    fake.closeWatches(); // the server's watch timeout
    const b = await store.create(net('b'));
    await new Promise((r) => setTimeout(r, 200)); // let bookmarks arrive on the new stream
    fake.closeWatches();
    const b2 = await store.patch('Network', 'b', { type: 'merge', value: { metadata: { labels: { x: 'y' } } } });
    expect(await store.delete('Network', 'a')).toBeUndefined();
    await done;
    clearTimeout(timer);
    expect(seen).toEqual([`ADDED a ${a.metadata.resourceVersion}`, `ADDED b ${b.metadata.resourceVersion}`,
      `MODIFIED b ${b2.metadata.resourceVersion}`, `DELETED a ${Number(b2.metadata.resourceVersion) + 1}`]);
  });

  it('a watch resumed from a bookmark is not TooOld after compaction of what it already saw', async () => {
    const { resourceVersion } = await store.list('Network');
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 10_000);
    const seen: string[] = [];
    const done = (async () => {
      for await (const e of store.watch('Network', { resourceVersion, signal: controller.signal })) {
        seen.push(e.object.metadata.name);
        if (seen.length === 2) controller.abort();
      }
    })();
    await store.create(net('one'));
    await waitFor(() => seen.length === 1);
    // Writes to another kind move the revision; only bookmarks tell this watch about them.
    await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Image', metadata: { name: 'img' }, spec: {} });
    await new Promise((r) => setTimeout(r, 200));
    fake.compact(fake.revision);
    fake.closeWatches();
    await store.create(net('two'));
    await done;
    clearTimeout(timer);
    expect(seen).toEqual(['one', 'two']);
  });

  it('a watch without resourceVersion starts from now (no replay of existing objects), and close() ends it quietly', async () => {
    await store.create(net('before'));
    const seen: string[] = [];
    const timer = setTimeout(() => void store.close(), 10_000);
    const done = (async () => {
      for await (const e of store.watch('Network')) seen.push(`${e.type} ${e.object.metadata.name}`);
    })();
    await new Promise((r) => setTimeout(r, 200));
    await store.create(net('after'));
    await waitFor(() => seen.length > 0);
    // Closed only once the create has its answer: the stand-in sends the watch event before the
    // create's response, and closing then cut the create's socket ("socket hang up").
    await store.close();
    await done; // would throw if close() surfaced as an error
    clearTimeout(timer);
    expect(seen).toEqual(['ADDED after']);
  });

  it('maps server-side refusals (not caught locally) to typed errors', async () => {
    // A label prefix api/names.ts accepts but a real API server refuses: prefixes are DNS subdomains (no '_').
    let caught: unknown;
    try { await store.create(net('lbl', { 'under_score.io/x': 'y' })); } catch (err) { caught = err; }
    expect(isN0Error(caught, 'InvalidArgument')).toBe(true);
    expect((caught as Error).message).toMatch(/metadata\.labels.*RFC 1123/);
    await expect(store.get('Network', 'lbl')).rejects.toMatchObject({ code: 'NotFound' });
  });

  it("the server's CEL rules (from the CRDs) refuse an update breaking a transition rule, naming the field; a valid update passes", async () => {
    const bs: BlockStorage = { apiVersion: 'n0stack.io/v1alpha1', kind: 'BlockStorage', metadata: { name: 'disk1' }, spec: { request_bytes: 1024, limit_bytes: 2048 } };
    const created = await store.create(bs);
    await expect(store.update({ ...created, spec: { ...created.spec, limit_bytes: 1024 } })).rejects.toMatchObject({
      code: 'InvalidArgument', field: 'spec.limit_bytes', message: expect.stringContaining('limit_bytes can only grow (a disk is never shrunk under its guest)'),
    });
    const grown = await store.update({ ...created, spec: { ...created.spec, limit_bytes: 4096 } });
    expect(grown.spec.limit_bytes).toBe(4096);
    const vm: VirtualMachine = { apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name: 'vm1' }, spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: 1 << 20, block_storage_names: ['disk1'] } };
    const v = await store.create(vm);
    await expect(store.update({ ...v, spec: { ...v.spec, block_storage_names: ['disk1', 'disk2'] } })).rejects.toMatchObject({
      code: 'InvalidArgument', field: 'spec.block_storage_names', message: expect.stringContaining('block_storage_names cannot change after creation'),
    });
    await expect(store.patch('VirtualMachine', 'vm1', { type: 'merge', value: { spec: { limit_cpu_milli_core: 1500 } } })).rejects.toMatchObject({ code: 'InvalidArgument', field: 'spec.limit_cpu_milli_core' });
    const more = await store.update({ ...v, spec: { ...v.spec, limit_cpu_milli_core: 2000 } });
    expect(more.spec.limit_cpu_milli_core).toBe(2000);
  });

  it("refuses names with '_' before the server sees them, for every call that takes a name", async () => {
    const message = /the kubernetes store cannot hold names with '_' — Kubernetes object names are DNS subdomains/;
    await expect(store.create(net('debug_ipv6'))).rejects.toMatchObject({ code: 'InvalidArgument', field: 'metadata.name', message });
    await expect(store.get('Network', 'debug_ipv6')).rejects.toMatchObject({ code: 'InvalidArgument', message });
    await expect(store.patch('Network', 'debug_ipv6', { type: 'merge', value: { metadata: { labels: { a: 'b' } } } })).rejects.toMatchObject({ code: 'InvalidArgument', message });
    await expect(store.delete('Network', 'debug_ipv6')).rejects.toMatchObject({ code: 'InvalidArgument', message });
    // The stand-in refuses it too, as a real server does.
    const res = await fetch(`${fake.url}/apis/n0stack.io/v1alpha1/networks`, { method: 'POST', headers: { authorization: 'Bearer t0ken', 'content-type': 'application/json' }, body: JSON.stringify(net('debug_ipv6')) });
    expect(res.status).toBe(422);
  });

  it('stores the canonical annotation keys as they are, and refuses the seed\'s multi-slash keys itself (they are translated at the edges)', async () => {
    const node = ANNOTATIONS.vmRequestNodeName;
    const vlan = ANNOTATIONS.vlanId;
    const created = await store.create({ ...net('seed'), metadata: { name: 'seed', annotations: { [vlan]: '100', plain: 'x' } } });
    expect(created.metadata.annotations).toEqual({ [vlan]: '100', plain: 'x' });
    // On the server: the same keys, nothing transcoded.
    const raw = await (await fetch(`${fake.url}/apis/n0stack.io/v1alpha1/networks/seed`, { headers: { authorization: 'Bearer t0ken' } })).json() as { metadata: { annotations: Record<string, string> } };
    expect(raw.metadata.annotations).toEqual({ [vlan]: '100', plain: 'x' });
    const merged = await store.patch('Network', 'seed', { type: 'merge', value: { metadata: { annotations: { plain: null, [node]: 'node1' } } } });
    expect(merged.metadata.annotations).toEqual({ [vlan]: '100', [node]: 'node1' });
    const seedKey = 'n0core/provisioning/virtual_machine/vlan_id';
    const refused = { code: 'InvalidArgument', message: expect.stringContaining(`"${seedKey}" cannot be stored in Kubernetes`) };
    await expect(store.create({ ...net('legacy'), metadata: { name: 'legacy', annotations: { [seedKey]: '100' } } })).rejects.toMatchObject(refused);
    await expect(store.patch('Network', 'seed', { type: 'merge', value: { metadata: { annotations: { [seedKey]: '1' } } } })).rejects.toMatchObject(refused);
    await expect(store.patch('Network', 'seed', { type: 'json', ops: [{ op: 'add', path: '/metadata/annotations/n0core~1provisioning~1virtual_machine~1vlan_id', value: '1' }] })).rejects.toMatchObject(refused);
    // The stand-in refuses such a key too, as a real server does.
    const res = await fetch(`${fake.url}/apis/n0stack.io/v1alpha1/networks`, { method: 'POST', headers: { authorization: 'Bearer t0ken', 'content-type': 'application/json' }, body: JSON.stringify({ ...net('legacy'), metadata: { name: 'legacy', annotations: { [seedKey]: '100' } } }) });
    expect(res.status).toBe(422);
  });

  it('a request to a server that is gone fails as Unavailable, not a hang', async () => {
    await fake.stop();
    let caught: unknown;
    try { await store.get('Network', 'x'); } catch (err) { caught = err; }
    expect(isN0Error(caught, 'Unavailable')).toBe(true);
    fake = await FakeApiServer.start(); // for afterEach
  });
});

async function waitFor(cond: () => boolean, deadlineMs = 5_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met within deadline');
    await new Promise((r) => setTimeout(r, 10));
  }
}
