// Issue [I], fencing on a real etcd: the leader's lease is revoked while one of its reconciles is
// in flight (waiting, as on an agent). A follower takes over at once, before the old leader can
// know it from a failed keep-alive; the old leader's reconcile then tries to write, and nothing it
// writes may land after the revocation. Two controller managers in this process, each with its
// own etcd client, store and elector.
import { randomBytes } from 'node:crypto';
import { Registry } from 'prom-client';
import { setCondition } from '../api/conditions';
import { EtcdBackend } from '../api/store/etcd';
import { startEtcd, type EtcdProcess } from '../api/store/etcd-process';
import { KvStore } from '../api/store/kv';
import { LeaderElection } from '../api/store/leader';
import { mutate } from '../api/store/mutate';
import type { Store } from '../api/store/store';
import { Manager, type LeaderElector } from './runtime/manager';
import type { Reconciler } from './runtime/types';

jest.setTimeout(60_000);

describe('a leader whose lease is revoked mid-reconcile', () => {
  let etcd: EtcdProcess | undefined;
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await etcd?.stop();
  });

  // Either mechanism alone must hold: the etcd transaction conditional on the election key (what
  // the controllers use on etcd), and the read of the election before each write (the Kubernetes
  // Lease elector's, which has no such transaction).
  it.each(['election key in the write transaction', 'election read before each write'] as const)('writes nothing after the revocation, though the reconcile was in flight, and the follower takes over (%s)', async (mechanism) => {
    let endpoint = process.env.N0STACK_TEST_ETCD;
    if (!endpoint) { etcd = await startEtcd(); endpoint = etcd.endpoint; }
    const prefix = `/n0stack-fence-${randomBytes(4).toString('hex')}`;
    const adminBackend = new EtcdBackend({ endpoints: [endpoint] });
    const admin = new KvStore('etcd', adminBackend, prefix);
    cleanups.push(() => admin.close());
    await admin.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name: 'net-1' }, spec: { ipv4_cidr: '10.9.0.0/24' } });

    /** Every write that reached etcd, by replica, with when it was acknowledged. */
    const landed: { id: string; at: number; what: string }[] = [];
    let releaseA!: () => void;
    const gateA = new Promise<void>((r) => { releaseA = r; });
    let inFlightA!: () => void;
    const aIsInFlight = new Promise<void>((r) => { inFlightA = r; });
    const refusals: string[] = [];

    const replica = async (id: string) => {
      const backend = new EtcdBackend({ endpoints: [endpoint!], timeoutMs: 3000 });
      const inner = new KvStore('etcd', backend, prefix);
      const logged = new Proxy(inner, {
        get: (t, p, r) => p === 'update'
          ? async (...args: Parameters<Store['update']>) => { const out = await t.update(...args); landed.push({ id, at: Date.now(), what: `${out.kind}/${out.metadata.name}` }); return out; }
          : Reflect.get(t, p, r),
      }) as Store;
      const election = new LeaderElection(backend.client, 'controllers', { ttlSeconds: 2, prefix });
      const elector: LeaderElector = {
        campaign: (signal) => election.campaign(id, { signal }), onLost: (cb) => election.onLost(cb),
        ...(mechanism === 'election key in the write transaction' ? { fenceKey: () => election.fenceKey() } : { stillLeading: () => election.stillLeading() }),
      };
      const reconciler: Reconciler<'Network'> = {
        kind: 'Network',
        async reconcile(name, ctx) {
          // A's first reconcile waits here (an agent call taking long) until the test lets it go.
          if (id === 'a') { inFlightA(); await gateA; }
          try {
            await mutate(ctx.store, 'Network', name, (n) => {
              n.status = { ...n.status, conditions: setCondition(n.status?.conditions, { type: 'Ready', status: 'True', reason: 'Reconciled', message: `by ${id}` }) };
            }, { subresource: 'status' });
          } catch (err) {
            refusals.push(`${id}: ${(err as Error).message}`);
            throw err;
          }
          return {};
        },
      };
      const manager = new Manager({ store: logged, kinds: ['Network'], workersPerKind: 1, registry: new Registry(), shutdownDeadlineMs: 30_000, backoff: { baseMs: 50, maxMs: 200 } });
      manager.register(reconciler);
      const stop = new AbortController();
      await manager.start(stop.signal, elector);
      cleanups.push(async () => { stop.abort(); await manager.stopped; await election.resign().catch(() => undefined); await inner.close(); });
      return { manager, election };
    };

    const a = await replica('a');
    await aIsInFlight;
    expect(a.election.isLeader()).toBe(true);
    const b = await replica('b');
    expect(b.election.isLeader()).toBe(false);

    // Kill A's lease from outside, as an operator or an expiry under a stalled process would.
    const key = await a.election.campaignKey();
    const kv = await adminBackend.client.get(key!).exec();
    const revokedAt = Date.now();
    await adminBackend.client.leaseClient.leaseRevoke({ ID: kv.kvs[0].lease });
    const deadline = Date.now() + 10_000;
    while (!b.election.isLeader() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(b.election.isLeader()).toBe(true);

    // A still believes it leads (no keep-alive has failed yet) and its reconcile goes on to write.
    releaseA();
    const byB = async () => (await admin.get('Network', 'net-1')).status?.conditions?.find((c) => c.type === 'Ready')?.message === 'by b';
    while (!(await byB()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // Time for A's retries (back-off 50-200 ms) and for it to notice the loss.
    await new Promise((r) => setTimeout(r, 3_000));

    expect(landed.filter((w) => w.id === 'a' && w.at >= revokedAt)).toEqual([]);
    expect(refusals.some((r) => /^a: .*not leading/.test(r))).toBe(true);
    expect(a.manager.leading).toBe(false);
    expect(await byB()).toBe(true);
    expect(landed.some((w) => w.id === 'b' && w.what === 'Network/net-1')).toBe(true);
  });
});
