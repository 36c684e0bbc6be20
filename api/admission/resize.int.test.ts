// Resizing a placed VM on a real etcd: a raise its node cannot hold is refused by the VM's one
// admission module whatever the entrance (the seed's UpdateVirtualMachine, ResourceService.Apply as
// n0ctl apply sends it, the admission webhook's review of a store write), FAILED_PRECONDITION naming
// the field, and nothing is written; a raise that fits is written.
import type { Store } from '../store';
import { openTestEtcdStore } from '../store/testing/etcd';
import { API_VERSION, type Node, type VirtualMachine } from '../types';
import { virtualMachineService } from '../server/virtualmachine';
import { resourceService } from '../server/resource';
import { reviewAdmission } from './review';

jest.setTimeout(60_000);
const GiB = 2 ** 30;

let store: Store;
let close: () => Promise<void>;
beforeAll(async () => {
  ({ store, close } = await openTestEtcdStore('resize'));
  const node = await store.create({ apiVersion: API_VERSION, kind: 'Node', metadata: { name: 'n1' }, spec: { address: '10.255.0.1', cpu_milli_cores: 4000, memory_bytes: 8 * GiB, storage_bytes: 100 * GiB } } as Node);
  await store.update({ ...node, status: { state: 'Ready' } }, { subresource: 'status' });
  // Two VMs placed on n1 (as their controller leaves them), one core and 1 GiB each: 2 cores and 6 GiB free.
  for (const name of ['vm1', 'vm2']) {
    const vm = await store.create({ apiVersion: API_VERSION, kind: 'VirtualMachine', metadata: { name }, spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: GiB, block_storage_names: [], nics: [] } } as unknown as VirtualMachine);
    await store.update({ ...vm, status: { node_name: 'n1', state: 'RUNNING' } }, { subresource: 'status' });
  }
});
afterAll(async () => { await close?.(); });

const call = () => ({ deadline: Date.now() + 5_000, signal: new AbortController().signal });
const context = () => ({ store, defaultWaitMs: 1_000 });
const refusal = (p: Promise<unknown>) => p.then(() => undefined, (err) => ({ code: (err as { code?: string }).code, field: (err as { field?: string }).field, message: (err as Error).message }));

test('the seed\'s UpdateVirtualMachine: a raise past the node is FAILED_PRECONDITION naming the field, nothing written; one that fits is written', async () => {
  const before = await store.get('VirtualMachine', 'vm1');
  const vms = virtualMachineService(context());
  expect(await refusal(vms.UpdateVirtualMachine({ name: 'vm1', limit_cpu_milli_core: 4000 }, call()))).toMatchObject({
    code: 'FailedPrecondition', field: 'limit_cpu_milli_core', message: expect.stringMatching(/^limit_cpu_milli_core: node n1 cannot hold the increase \(limit_cpu_milli_core, request_cpu_milli_core\): node n1 has 3 cores CPU free, 4 cores requested$/),
  });
  expect(await refusal(vms.UpdateVirtualMachine({ name: 'vm1', limit_memory_bytes: 8 * GiB }, call()))).toMatchObject({ code: 'FailedPrecondition', field: 'limit_memory_bytes' });
  expect((await store.get('VirtualMachine', 'vm1')).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  await vms.UpdateVirtualMachine({ name: 'vm1', limit_cpu_milli_core: 3000 }, call());
  expect((await store.get('VirtualMachine', 'vm1')).spec.limit_cpu_milli_core).toBe(3000);
});

test('ResourceService.Apply (n0ctl apply), dry run or not: the same refusal, nothing written', async () => {
  const before = await store.get('VirtualMachine', 'vm2');
  const apply = (dryRun: boolean) => resourceService(context()).Apply({
    document_json: JSON.stringify({ apiVersion: API_VERSION, kind: 'VirtualMachine', metadata: { name: 'vm2' }, spec: { ...before.spec, limit_cpu_milli_core: 2000 } }), dry_run: dryRun,
  }, call());
  // vm1 took 3 of the 4 cores above: one more core for vm2 does not fit.
  for (const dryRun of [true, false]) expect(await refusal(apply(dryRun))).toMatchObject({ code: 'FailedPrecondition', field: 'limit_cpu_milli_core' });
  expect((await store.get('VirtualMachine', 'vm2')).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
});

test('the admission webhook (a store write through kubectl): refused with the same message', async () => {
  const old = await store.get('VirtualMachine', 'vm2');
  const review = (cores: number) => reviewAdmission(store, {
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: { uid: `u-${cores}`, operation: 'UPDATE', kind: { group: 'n0stack.io', version: 'v1alpha1', kind: 'VirtualMachine' }, userInfo: { username: 'alice' }, oldObject: old, object: { ...old, spec: { ...old.spec, limit_cpu_milli_core: cores * 1000 } } },
  } as never, new Set());
  expect((await review(2)).response).toMatchObject({ allowed: false, status: { code: 400, message: expect.stringMatching(/^limit_cpu_milli_core: node n1 cannot hold the increase/) } });
  expect((await review(1)).response).toMatchObject({ allowed: true });
});
