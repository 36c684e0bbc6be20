// The secret area on the shapes several facade replicas share (etcd; the Kubernetes API through
// the stand-in): two store clients stand for two replicas. A key is made once and every client
// gets the same, even when they race; a claim succeeds once in all; sweep deletes expired claims only.
import { randomBytes } from 'node:crypto';
import { EtcdBackend } from './etcd';
import { KvStore } from './kv';
import type { Store } from './store';
import { FakeApiServer } from './testing/fake-apiserver';
import { startEtcd } from './testing/etcd';
import type { SecretStore } from './secrets';

jest.setTimeout(60_000);

type Pair = { a: SecretStore; b: SecretStore; close: () => Promise<void> };

const shapes: [string, () => Promise<Pair>][] = [
  ['etcd', async () => {
    const etcd = process.env.N0STACK_TEST_ETCD ? { endpoint: process.env.N0STACK_TEST_ETCD, stop: async () => undefined } : await startEtcd();
    const prefix = `/n0stack-test-${randomBytes(4).toString('hex')}`;
    const stores: Store[] = [0, 1].map(() => new KvStore('etcd', new EtcdBackend({ endpoints: [etcd.endpoint] }), prefix));
    return { a: stores[0].secrets!, b: stores[1].secrets!, close: async () => { for (const s of stores) await s.close(); await etcd.stop(); } };
  }],
  ['kubernetes', async () => {
    const fake = await FakeApiServer.start({ token: 't' });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { KubernetesStore } = require('./kubernetes') as typeof import('./kubernetes');
    const stores = [0, 1].map(() => new KubernetesStore({ server: fake.url, token: 't', requestTimeoutMs: 5_000, eventNamespace: 'n0stack-system' }));
    return { a: stores[0].secrets, b: stores[1].secrets, close: async () => { for (const s of stores) await s.close(); await fake.stop(); } };
  }],
];

describe.each(shapes)('secret area on %s', (_shape, open) => {
  let pair: Pair;
  beforeAll(async () => { pair = await open(); });
  afterAll(async () => { await pair?.close(); });

  it('makes a key once: racing clients and later ones all get the same 32 bytes', async () => {
    const [x, y] = await Promise.all([pair.a.ensureKey('race-key'), pair.b.ensureKey('race-key')]);
    expect(x).toHaveLength(32);
    expect(y.equals(x)).toBe(true);
    expect((await pair.b.ensureKey('race-key')).equals(x)).toBe(true);
    expect((await pair.a.ensureKey('other-key')).equals(x)).toBe(false);
  });

  it('a claim succeeds once across clients; sweep deletes only the expired', async () => {
    const now = Date.now();
    expect(await pair.a.claim('ticket-1', now + 60_000)).toBe(true);
    expect(await pair.b.claim('ticket-1', now + 60_000)).toBe(false);
    expect(await pair.a.claim('ticket-1', now + 60_000)).toBe(false);
    const racing = await Promise.all([pair.a.claim('ticket-2', now + 60_000), pair.b.claim('ticket-2', now + 60_000)]);
    expect(racing.sort()).toEqual([false, true]);
    expect(await pair.b.claim('old-ticket', now - 1)).toBe(true);
    expect(await pair.a.sweep(now)).toBe(1);
    expect(await pair.b.sweep(now)).toBe(0);
    expect(await pair.a.claim('ticket-1', now + 60_000)).toBe(false);
    // Swept, the old id may be recorded again (its ticket has long expired: the signature check refuses it first).
    expect(await pair.a.claim('old-ticket', now + 60_000)).toBe(true);
  });

  it('refuses names that are not DNS subdomains', async () => {
    await expect(pair.a.claim('../x', Date.now())).rejects.toThrow(/id "..\/x" must be a DNS subdomain name/);
    await expect(pair.a.ensureKey('A_B')).rejects.toThrow(/name "A_B"/);
  });
});
