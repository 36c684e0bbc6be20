// One controller-manager replica for controllers/ha.int.test.ts, run as its own process
// (`node --require hack/swc-register.js`) so that the test can kill it with SIGKILL. Its
// reconciler only records when each reconcile of a Network starts and ends (CLOCK_MONOTONIC
// nanoseconds, comparable across processes on one machine), one JSON line per event, to the file
// named by N0STACK_HA_LOG, so the test can check that no two reconciles ever overlapped.
import * as fs from 'node:fs';
import { EtcdBackend } from '../../api/store/etcd';
import { KvStore } from '../../api/store/kv';
import { etcdLeaderElector } from '../leader';
import { Manager } from '../runtime/manager';
import { sleep } from '../runtime/sleep';
import type { Reconciler } from '../runtime/types';
import { Registry } from 'prom-client';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

async function main(): Promise<void> {
  const identity = env('N0STACK_HA_ID');
  const fd = fs.openSync(env('N0STACK_HA_LOG'), 'a');
  const record = (event: string, name?: string) => fs.writeSync(fd, `${JSON.stringify({ id: identity, event, name, t: process.hrtime.bigint().toString() })}\n`);
  const prefix = env('N0STACK_HA_PREFIX');
  const backend = new EtcdBackend({ endpoints: env('N0STACK_HA_ETCD').split(','), timeoutMs: 3000 });
  const store = new KvStore('etcd', backend, prefix);
  const reconciler: Reconciler<'Network'> = {
    kind: 'Network',
    async reconcile(name, ctx) {
      record('start', name);
      try {
        // Stands in for an agent call: long enough that overlapping reconciles would show.
        await sleep(40, ctx.signal);
      } finally {
        record('end', name);
      }
      return { requeueAfterMs: 10 };
    },
  };
  const manager = new Manager({ store, kinds: ['Network'], workersPerKind: 2, resyncMs: 60_000, registry: new Registry(), shutdownDeadlineMs: 2000 });
  manager.register(reconciler);
  const elector = etcdLeaderElector(backend.client, { identity, prefix, leaseSeconds: Number(env('N0STACK_HA_LEASE_SECONDS')) });
  const stop = new AbortController();
  process.once('SIGTERM', () => stop.abort());
  await manager.start(stop.signal, elector);
  record('ready');
  await manager.stopped;
  // Only now: a follower must not start while our reconciles are still finishing.
  await elector.resign().catch(() => undefined);
  record('stopped');
  await store.close();
  fs.closeSync(fd);
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`ha-child: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
