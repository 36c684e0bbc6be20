// The admission rules for writes that do not pass the facade: kubectl against the Kubernetes API
// server (the stand-in, api/store/testing/fake-apiserver.ts, calling the webhook as a
// ValidatingWebhookConfiguration with failurePolicy Fail would) reaches the facade's
// /admission/validate over TLS, and the same admit* functions judge it.
import { startApi, type RunningApi } from '../../cli/controlplane';
import { createCa, issueServerCert } from '../pki';
import { KubernetesStore } from '../store/kubernetes';
import { FakeApiServer } from '../store/testing/fake-apiserver';
import { API_VERSION, type AnyResource } from '../types';

jest.setTimeout(60_000);

const FACADE_USER = 'system:serviceaccount:n0stack:n0-api';
let fake: FakeApiServer;
let api: RunningApi;
let facadeStore: KubernetesStore;
let kubectl: KubernetesStore;

const doc = (kind: AnyResource['kind'], name: string, spec: Record<string, unknown>) => ({ apiVersion: API_VERSION, kind, metadata: { name }, spec }) as unknown as AnyResource;
const disk = (name: string) => doc('BlockStorage', name, { request_bytes: 1 << 20, limit_bytes: 1 << 20 });
const vm = (name: string, disks: string[]) => doc('VirtualMachine', name, { request_cpu_milli_core: 1000, limit_cpu_milli_core: 1000, request_memory_bytes: 512 << 20, limit_memory_bytes: 512 << 20, block_storage_names: disks, nics: [] });

beforeAll(async () => {
  const ca = createCa();
  const serving = issueServerCert(ca, { commonName: 'n0-api', ipAddresses: ['127.0.0.1'] });
  // The webhook's address is known once the facade listens; the stand-in reads it at each call.
  const hook = { url: '', ca: ca.certPem };
  fake = await FakeApiServer.start({ users: { 'facade-token': FACADE_USER, 'alice-token': 'alice' }, admissionWebhook: hook });
  facadeStore = new KubernetesStore({ server: fake.url, token: 'facade-token', requestTimeoutMs: 10_000 });
  kubectl = new KubernetesStore({ server: fake.url, token: 'alice-token', requestTimeoutMs: 10_000 });
  api = await startApi({
    store: facadeStore, listen: '127.0.0.1:0', token: 'admin', consoleListen: '127.0.0.1:0',
    tls: { cert: Buffer.from(serving.certPem), key: Buffer.from(serving.keyPem) },
    agents: () => { throw new Error('no agents in this test'); },
    admissionTrustedUsers: [FACADE_USER],
  });
  hook.url = `https://127.0.0.1:${api.consoles!.listenPort}/admission/validate`;
});
afterAll(async () => {
  await api?.stop();
  await kubectl?.close();
  await fake?.stop();
});

test('kubectl create of a VM naming a disk that does not exist is refused naming the field; the same with the disk there passes', async () => {
  await expect(kubectl.create(vm('web', ['missing-disk']))).rejects.toThrow(/admission webhook "validate.n0stack.io" denied the request: .*block_storage_names\[0\].*missing-disk/);
  await expect(kubectl.get('VirtualMachine', 'web')).rejects.toMatchObject({ code: 'NotFound' });
  await kubectl.create(disk('web-disk'));
  await expect(kubectl.create(vm('web', ['web-disk']))).resolves.toMatchObject({ metadata: { name: 'web' } });
});

test('kubectl delete of a disk a VM names is refused up front, and the disk is untouched', async () => {
  await expect(kubectl.delete('BlockStorage', 'web-disk')).rejects.toThrow(/denied the request: .*BlockStorage "web-disk" is still needed by VirtualMachine "web"/);
  const kept = await kubectl.get('BlockStorage', 'web-disk');
  expect(kept.metadata.deletionTimestamp).toBeUndefined();
  // Once the VM is gone, the delete passes.
  await kubectl.delete('VirtualMachine', 'web');
  await expect(kubectl.delete('BlockStorage', 'web-disk')).resolves.toBeUndefined();
});

test('kubectl update breaking a transition rule is refused by the webhook too; the facade\'s own writes are let through as admitted', async () => {
  const created = await kubectl.create(vm('db', [])) as any;
  const changed = { ...created, spec: { ...created.spec, nics: [{ network_name: 'other' }] } };
  await expect(kubectl.update(changed)).rejects.toThrow(/nics cannot change after creation/);
  // The facade's service account: no review is judged (its writes went through AdmittingStore).
  await expect(facadeStore.delete('VirtualMachine', 'db')).resolves.toBeUndefined();
});

test('a review that is not one is a 400, and the webhook answers only POST', async () => {
  const url = `https://127.0.0.1:${api.consoles!.listenPort}/admission/validate`;
  const https = await import('node:https');
  const post = (body: string) => new Promise<number>((resolve, reject) => {
    const req = https.request(url, { method: 'POST', rejectUnauthorized: false, headers: { 'Content-Type': 'application/json' } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.on('error', reject);
    req.end(body);
  });
  expect(await post(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }))).toBe(400);
  expect(await post('{"not":"a review"}')).toBe(400);
});
