// StoreNodeRegistrar and Heartbeater against the real embedded store (LMDB).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openStore, type Store } from '../api/store';
import { ANNOTATIONS } from '../api/types';
import { Heartbeater, StoreNodeRegistrar, hostCapacity, nodeDocument, readyStatus } from './registration';

let dir: string;
let store: Store;

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0reg-'));
  store = await openStore({ backend: 'embedded', dataDir: path.join(dir, 'db') });
});
afterEach(async () => {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function facts() {
  return { nodeName: 'node1', address: '127.0.0.1', agentEndpoint: '127.0.0.1:20181', accelerator: 'tcg' as const, agentVersion: '0.1.0', capacity: hostCapacity(dir) };
}

test('hostCapacity measures this host', () => {
  const c = hostCapacity(dir);
  expect(c.cpuMilliCores).toBe(os.cpus().length * 1000);
  expect(c.memoryBytes).toBe(os.totalmem());
  expect(c.storageBytes).toBeGreaterThan(0);
});

test('register creates the Node, then updates it without dropping what others wrote', async () => {
  const registrar = new StoreNodeRegistrar(store);
  await registrar.register(nodeDocument(facts()));
  let node = await store.get('Node', 'node1');
  expect(node.spec).toMatchObject({ address: '127.0.0.1', agent_endpoint: '127.0.0.1:20181', cpu_milli_cores: os.cpus().length * 1000 });
  expect(node.metadata.annotations?.[ANNOTATIONS.agentVersion]).toBe('0.1.0');
  expect(node.status).toMatchObject({ state: 'Ready', accelerator: 'tcg', agent_version: '0.1.0' });

  // An admin cordons the node and the controller reserves capacity; a re-registration keeps both.
  node = await store.update({ ...node, spec: { ...node.spec, unschedulable: true } });
  await store.update({ ...node, status: { ...node.status, reserved_computes: { vm1: { request_cpu_milli_core: 100 } } } }, { subresource: 'status' });
  await registrar.register(nodeDocument({ ...facts(), agentEndpoint: '127.0.0.1:30000', agentVersion: '0.2.0' }));
  node = await store.get('Node', 'node1');
  expect(node.spec).toMatchObject({ unschedulable: true, agent_endpoint: '127.0.0.1:30000' });
  expect(node.metadata.annotations?.[ANNOTATIONS.agentVersion]).toBe('0.2.0');
  expect(node.status?.reserved_computes).toEqual({ vm1: { request_cpu_milli_core: 100 } });
  expect(node.status?.agent_version).toBe('0.2.0');
});

test('heartbeats retry on conflicts with concurrent status writers', async () => {
  const registrar = new StoreNodeRegistrar(store, { maxAttempts: 50 });
  await registrar.register(nodeDocument(facts()));
  // 20 heartbeats racing 20 reservation writers (who also retry): every write must land.
  const writers = Array.from({ length: 20 }, async (_, i) => {
    for (;;) {
      const n = await store.get('Node', 'node1');
      try {
        await store.update({ ...n, status: { ...n.status, reserved_storages: { ...(n.status?.reserved_storages ?? {}), [`d${i}`]: { request_bytes: i } } } }, { subresource: 'status' });
        return;
      } catch { /* conflict: read again */ }
    }
  });
  const beats = Array.from({ length: 20 }, () => registrar.heartbeat('node1', readyStatus(facts())));
  await Promise.all([...writers, ...beats]);
  const node = await store.get('Node', 'node1');
  expect(Object.keys(node.status?.reserved_storages ?? {})).toHaveLength(20);
  expect(node.status?.state).toBe('Ready');
});

test('the Heartbeater beats every interval until aborted and re-registers a deleted Node', async () => {
  const registrar = new StoreNodeRegistrar(store);
  await registrar.register(nodeDocument(facts()));
  const before = (await store.get('Node', 'node1')).status!.last_heartbeat_time!;
  const registered = (await store.get('Node', 'node1')).metadata.resourceVersion;
  const hb = new Heartbeater({ registrar, nodeName: 'node1', intervalMs: 100, status: () => readyStatus(facts()), node: () => nodeDocument(facts()) });
  const ac = new AbortController();
  const running = hb.run(ac.signal);
  await new Promise((r) => setTimeout(r, 1_150));
  expect(hb.beats).toBeGreaterThanOrEqual(5);
  expect(hb.failures).toBe(0);
  // The beats renew the lease; the Node, which they leave as it was, is not written.
  const lease = await store.get('NodeLease', 'node1');
  expect(lease.spec).toMatchObject({ holder_identity: 'node1' });
  expect(lease.spec.renew_time! > before).toBe(true);
  expect((await store.get('Node', 'node1')).metadata.resourceVersion).toBe(registered);

  await store.delete('Node', 'node1');
  await new Promise((r) => setTimeout(r, 300));
  expect((await store.get('Node', 'node1')).status?.state).toBe('Ready');

  ac.abort();
  await running;
  const count = hb.beats;
  await new Promise((r) => setTimeout(r, 300));
  expect(hb.beats).toBe(count);
});
