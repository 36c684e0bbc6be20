import { randomBytes } from 'node:crypto';
import { describeStoreConformance } from './conformance';
import { EtcdBackend } from './etcd';
import { Etcd3 } from 'etcd3';
import { KvStore } from './kv';
import { LeaderElection } from './leader';
import { startEtcd, type EtcdProcess } from './testing/etcd';

// A shared etcd (hack/test.sh) or our own; a unique prefix per run keeps runs apart.
async function etcdEndpoint(): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  if (process.env.N0STACK_TEST_ETCD) return { endpoint: process.env.N0STACK_TEST_ETCD, stop: async () => undefined };
  const etcd: EtcdProcess = await startEtcd();
  return etcd;
}

let backend: EtcdBackend | undefined;
describeStoreConformance('etcd', async () => {
  const etcd = await etcdEndpoint();
  backend = new EtcdBackend({ endpoints: [etcd.endpoint] });
  const store = new KvStore('etcd', backend, `/n0stack-test-${randomBytes(4).toString('hex')}`);
  return { store, cleanup: async () => { await store.close(); await etcd.stop(); } };
}, { supportsCompaction: async () => async (revision) => backend!.compact(Number(revision)) });

describe('leader election on an etcd lease', () => {
  let etcd: { endpoint: string; stop: () => Promise<void> };
  const clients: Etcd3[] = [];
  const prefix = `/n0stack-test-${randomBytes(4).toString('hex')}`;
  beforeAll(async () => { etcd = await etcdEndpoint(); }, 30_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await etcd?.stop();
  });
  const client = () => { const c = new Etcd3({ hosts: [etcd.endpoint] }); clients.push(c); return c; };
  const within = async <T>(p: Promise<T>, ms: number, what: string): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms); })]);
    } finally {
      clearTimeout(timer);
    }
  };

  it('elects one leader, hands over on resign and on a lost lease, and honours abort', async () => {
    const a = new LeaderElection(client(), 'controllers', { ttlSeconds: 2, prefix });
    const b = new LeaderElection(client(), 'controllers', { ttlSeconds: 2, prefix });
    const c = new LeaderElection(client(), 'controllers', { ttlSeconds: 2, prefix });
    await within(a.campaign('a'), 5000, 'a elected');
    expect(a.isLeader()).toBe(true);

    let bElected = false;
    const bCampaign = b.campaign('b').then(() => { bElected = true; });
    await new Promise((r) => setTimeout(r, 500));
    expect(bElected).toBe(false);
    expect(b.isLeader()).toBe(false);

    await a.resign();
    expect(a.isLeader()).toBe(false);
    await within(bCampaign, 5000, 'b elected after a resigned');
    expect(b.isLeader()).toBe(true);

    // A leader whose lease is revoked learns it through onLost; the next candidate takes over.
    const lost = new Promise<Error>((resolve) => b.onLost(resolve));
    const cCampaign = c.campaign('c');
    const key = (await b.campaignKey())!;
    const leaseId = key.split('/').pop()!;
    await clients[0].leaseClient.leaseRevoke({ ID: leaseId });
    await within(cCampaign, 8000, 'c elected after b lost its lease');
    expect(c.isLeader()).toBe(true);
    await within(lost, 8000, 'b told it lost the lead');
    expect(b.isLeader()).toBe(false);

    // A campaign that cannot win stops at its deadline.
    const d = new LeaderElection(client(), 'controllers', { ttlSeconds: 2, prefix });
    await expect(d.campaign('d', { signal: AbortSignal.timeout(300) })).rejects.toMatchObject({ code: 'DeadlineExceeded' });
    await c.resign();
  }, 30_000);
});

describe('EtcdBackend.range', () => {
  let etcd: { endpoint: string; stop: () => Promise<void> };
  let kv: EtcdBackend;
  const prefix = `/n0stack-test-range-${randomBytes(4).toString('hex')}/`;
  beforeAll(async () => { etcd = await etcdEndpoint(); kv = new EtcdBackend({ endpoints: [etcd.endpoint] }); }, 30_000);
  afterAll(async () => { await kv?.close(); await etcd?.stop(); });

  it('reads more than one gRPC message can carry, in pages of one snapshot', async () => {
    // 450 values of 12 KiB: 5.4 MiB, past gRPC's default 4 MiB, and three pages.
    const value = 'x'.repeat(12 * 1024);
    const names = Array.from({ length: 450 }, (_, i) => `${prefix}k${String(i).padStart(4, '0')}`);
    for (let i = 0; i < names.length; i += 50) await Promise.all(names.slice(i, i + 50).map((k) => kv.put(k, value, 0)));
    const { entries, revision } = await kv.range(prefix);
    expect(entries.map((e) => e.key)).toEqual(names);
    expect(entries.every((e) => e.value.length === value.length && e.modRevision <= revision)).toBe(true);
    // A neighbouring prefix stays out.
    await kv.put(`${prefix.slice(0, -1)}x/other`, 'v', 0);
    expect((await kv.range(prefix)).entries).toHaveLength(450);
  });
});
