// core/v1 Events in the Kubernetes shape, through @kubernetes/client-node against the stand-in
// API server (api/store/testing/fake-apiserver.ts): the recorder's aggregation is a create and
// merge patches of one Event in the controllers' namespace, as client-go's is.
import { Recorder } from '../../controllers/runtime/events';
import { KubernetesStore } from './kubernetes';
import { FakeApiServer } from './testing/fake-apiserver';

let fake: FakeApiServer;
let store: KubernetesStore;

beforeAll(async () => {
  fake = await FakeApiServer.start({ token: 'ev-token' });
  store = new KubernetesStore({ server: fake.url, token: 'ev-token', requestTimeoutMs: 5_000, eventNamespace: 'n0stack-system' });
});
afterAll(async () => {
  await store?.close();
  await fake?.stop();
});

const vm = { kind: 'VirtualMachine', apiVersion: 'n0stack.io/v1alpha1', metadata: { name: 'vm1', uid: '7c1d2c5e-0000-4000-8000-000000000001' } };

test('the recorder aggregates on one core/v1 Event (create, then patches of count and lastTimestamp)', async () => {
  const rec = new Recorder(store.events);
  for (let i = 0; i < 3; i++) rec.warning(vm, 'StartFailed', 'QEMU exited (SIGABRT) during start');
  rec.normal(vm, 'Scheduled', 'placed on node vm-host1');
  await rec.flush();
  const { items } = await store.events.list();
  expect(items).toHaveLength(2);
  const failed = items.find((e) => e.reason === 'StartFailed')!;
  expect(failed).toMatchObject({
    apiVersion: 'v1', kind: 'Event', type: 'Warning', count: 3, message: 'QEMU exited (SIGABRT) during start',
    metadata: { namespace: 'n0stack-system', uid: expect.any(String) },
    involvedObject: { kind: 'VirtualMachine', name: 'vm1', uid: vm.metadata.uid, apiVersion: 'n0stack.io/v1alpha1' },
    source: { component: 'n0stack-controllers' },
  });
  expect(failed.metadata.name).toMatch(/^vm1\.[0-9a-f]+$/);
});

test('watch (a poll of the list) reports new and counted Events', async () => {
  const stop = new AbortController();
  const seen: string[] = [];
  const rec = new Recorder(store.events);
  const done = (async () => {
    for await (const ev of store.events.watch({ signal: stop.signal })) {
      seen.push(`${ev.type} ${ev.object.reason} ${ev.object.count}`);
      if (seen.length === 1) { rec.normal(vm, 'Started', 'RUNNING on node vm-host1'); await rec.flush(); }
      if (seen.length === 2) stop.abort();
    }
  })();
  await new Promise((r) => setTimeout(r, 200));
  rec.normal(vm, 'Started', 'RUNNING on node vm-host1');
  await rec.flush();
  await done;
  expect(seen).toEqual(['ADDED Started 1', 'MODIFIED Started 2']);
});

test('the stand-in refuses what a real server refuses: a bad type, a name that is no DNS subdomain', async () => {
  const base = { apiVersion: 'v1' as const, kind: 'Event' as const, involvedObject: { kind: 'Node', name: 'n' }, reason: 'Started', message: 'm', count: 1, firstTimestamp: '2026-12-01T00:00:00Z', lastTimestamp: '2026-12-01T00:00:00Z' };
  await expect(store.events.create({ ...base, metadata: { name: 'Bad_Name.1' }, type: 'Normal' })).rejects.toThrow(/metadata.name/);
  await expect(store.events.update({ ...base, metadata: { name: 'missing.1' }, type: 'Normal' })).rejects.toMatchObject({ code: 'NotFound' });
});
