// waitFor on a real (embedded) store: a wait for an outcome ends at once when the object goes
// into deletion, and a wait for the deletion itself is not cut short by it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openStore, type Store } from '../store';
import { API_VERSION, type Network } from '../types';
import { waitFor } from './wait';

let dir: string;
let store: Store;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0-wait-'));
  store = await openStore({ backend: 'embedded', dataDir: dir });
});
afterAll(async () => { await store.close(); fs.rmSync(dir, { recursive: true, force: true }); });

const network = (name: string): Network => ({ apiVersion: API_VERSION, kind: 'Network', metadata: { name, finalizers: ['test.n0stack.io/hold'] }, spec: { ipv4_cidr: '10.0.0.0/24' } } as Network);
const available = (net: Network | undefined) => (net?.status?.state === 'AVAILABLE' ? { done: net } : undefined);

test('a wait for AVAILABLE ends with FAILED_PRECONDITION as soon as the object is being deleted', async () => {
  await store.create(network('held'));
  const started = Date.now();
  const waiting = waitFor(store, 'Network', 'held', available, { deadline: Date.now() + 20_000, what: 'become AVAILABLE' });
  await new Promise((r) => setTimeout(r, 100));
  await store.delete('Network', 'held');
  await expect(waiting).rejects.toMatchObject({ code: 'FailedPrecondition', message: expect.stringMatching(/^Network "held" is being deleted; it cannot become AVAILABLE/) });
  expect(Date.now() - started).toBeLessThan(5_000);
  // Already in deletion when the wait begins: the same answer, at once.
  await expect(waitFor(store, 'Network', 'held', available, { deadline: Date.now() + 20_000, what: 'become AVAILABLE' })).rejects.toThrow(/is being deleted/);
});

test('a wait for the deletion waits through it until the object is gone', async () => {
  await store.create(network('going'));
  await store.delete('Network', 'going');
  const gone = waitFor(store, 'Network', 'going', (obj) => (obj ? undefined : { done: true }), { deadline: Date.now() + 20_000, what: 'be deleted', untilDeleted: true });
  const held = await store.get('Network', 'going');
  await store.update({ ...held, metadata: { ...held.metadata, finalizers: [] } });
  await expect(gone).resolves.toBe(true);
});
