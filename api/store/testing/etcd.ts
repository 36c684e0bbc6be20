// Tests start their own etcd with this when N0STACK_TEST_ETCD is not set (see hack/test.sh).
import { randomBytes } from 'node:crypto';
import { startEtcd } from '../etcd-process';
import { openStore } from '../index';
import type { Store } from '../store';

export { startEtcd, type EtcdProcess } from '../etcd-process';

/** A store on the shared test etcd (or one of its own), under a prefix of its own; `close` stops what it started. */
export async function openTestEtcdStore(name: string): Promise<{ store: Store; close: () => Promise<void> }> {
  let endpoint = process.env.N0STACK_TEST_ETCD;
  let stop: () => Promise<void> = async () => undefined;
  if (!endpoint) { const etcd = await startEtcd(); endpoint = etcd.endpoint; stop = () => etcd.stop(); }
  const store = await openStore({ backend: 'etcd', etcdEndpoints: [endpoint], prefix: `/n0stack-${name}-${randomBytes(4).toString('hex')}` });
  return { store, close: async () => { await store.close(); await stop(); } };
}
