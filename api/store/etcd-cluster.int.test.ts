// The etcd backend on a real three-member cluster: the Raft leader is killed with SIGKILL in the
// middle of a burst of concurrent creates. Every create the store acknowledged must exist
// afterwards (read through the surviving members), every unacknowledged one must exist whole or
// not at all, and the store must keep working (creates and a watch) on the two survivors.
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { isN0Error } from '../errors';
import { validateDocument } from '../schema';
import type { Network } from '../types';
import { EtcdBackend } from './etcd';
import { startEtcdCluster, type EtcdCluster } from './etcd-process';
import { KvStore } from './kv';

const BURST = 400;
const CONCURRENCY = 32;

function net(name: string): Network {
  return { apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name, labels: { burst: 'yes' } }, spec: { ipv4_cidr: '10.0.0.0/24' } };
}

/** The index of the member that is the Raft leader now, asked of each member itself. */
async function leaderIndex(cluster: EtcdCluster): Promise<number> {
  for (let i = 0; i < cluster.members.length; i++) {
    const c = new Etcd3({ hosts: [cluster.members[i].endpoint], defaultCallOptions: () => ({ deadline: Date.now() + 3000 }) });
    try {
      const status = await c.maintenance.status();
      if (status.leader === status.header.member_id) return i;
    } finally {
      c.close();
    }
  }
  throw new Error('no member says it is the leader');
}

describe('etcd store on a three-member cluster', () => {
  let cluster: EtcdCluster | undefined;
  const stores: KvStore[] = [];
  afterAll(async () => {
    for (const s of stores) await s.close().catch(() => undefined);
    await cluster?.stop();
  }, 30_000);

  it('loses no acknowledged create when the leader is killed mid-burst, and carries on', async () => {
    cluster = await startEtcdCluster(3);
    const prefix = `/n0stack-test-${randomBytes(4).toString('hex')}`;
    const backend = new EtcdBackend({ endpoints: cluster.endpoints, timeoutMs: 3000 });
    const store = new KvStore('etcd', backend, prefix);
    stores.push(store);
    const victim = await leaderIndex(cluster);

    const acked = new Map<string, Network>();
    const failed = new Map<string, string>();
    let next = 0;
    let killedAt = -1;
    let kill: Promise<void> | undefined;
    const worker = async () => {
      while (next < BURST) {
        const name = `burst-${String(next++).padStart(4, '0')}`;
        // A quarter into the burst, with CONCURRENCY creates in flight, the leader dies.
        if (!kill && acked.size >= BURST / 4) {
          killedAt = acked.size;
          kill = cluster!.members[victim].kill('SIGKILL');
        }
        try {
          acked.set(name, await store.create(net(name)));
        } catch (err) {
          failed.set(name, `${(err as Error).name}: ${(err as Error).message}`);
        }
      }
    };
    const started = Date.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    await kill;
    const burstMs = Date.now() - started;
    expect(killedAt).toBeGreaterThan(0);
    expect(cluster.members[victim].alive).toBe(false);
    // The two survivors keep quorum: nearly everything must have gone through.
    expect(acked.size).toBeGreaterThan(BURST * 0.9);
    for (const reason of failed.values()) expect(reason).toMatch(/Unavailable|DeadlineExceeded/);

    // Read back only through the members that are still alive.
    const survivors = cluster.members.filter((m) => m.alive).map((m) => m.endpoint);
    expect(survivors).toHaveLength(2);
    const reader = new KvStore('etcd', new EtcdBackend({ endpoints: survivors, timeoutMs: 5000 }), prefix);
    stores.push(reader);
    const { items } = await reader.list('Network', { labelSelector: 'burst=yes' });
    const stored = new Map(items.map((i) => [i.metadata.name, i]));
    for (const [name, doc] of acked) {
      const got = stored.get(name);
      expect(got?.metadata.uid).toBe(doc.metadata.uid);
      expect(got?.metadata.resourceVersion).toBe(doc.metadata.resourceVersion);
    }
    for (const name of failed.keys()) {
      const got = stored.get(name);
      if (got) expect(() => validateDocument(got)).not.toThrow();
    }
    expect(stored.size).toBeLessThanOrEqual(BURST);
    for (const name of stored.keys()) expect(acked.has(name) || failed.has(name)).toBe(true);

    // The store that saw the kill keeps working: creates and a watch that sees them.
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 15_000);
    const seen: string[] = [];
    const watching = (async () => {
      for await (const e of store.watch('Network', { signal: controller.signal })) {
        if (e.object.metadata.name.startsWith('after-')) seen.push(e.object.metadata.name);
        if (seen.length === 5) break;
      }
    })();
    await new Promise((r) => setTimeout(r, 200)); // let the watch start before the writes
    for (let i = 0; i < 5; i++) await store.create(net(`after-${i}`));
    await watching;
    clearTimeout(timer);
    controller.abort();
    expect(seen.sort()).toEqual(['after-0', 'after-1', 'after-2', 'after-3', 'after-4']);
    expect((await reader.get('Network', 'after-4')).metadata.name).toBe('after-4');
    expect(isN0Error(await store.create(net('after-0')).catch((e) => e), 'AlreadyExists')).toBe(true);
    // eslint-disable-next-line no-console
    console.log(`etcd cluster: killed the leader (member ${victim}) after ${killedAt} acknowledged creates; ${acked.size} acknowledged, ${failed.size} failed of ${BURST} in ${burstMs} ms; ${backend.stats.retries} retries, ${backend.stats.recoveredWrites} writes found committed after a failed attempt`);
  }, 90_000);
});
