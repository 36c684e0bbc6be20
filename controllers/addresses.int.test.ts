// Addresses as objects on the real stores (embedded LMDB and etcd, and the Kubernetes store): uniqueness is the store's
// create-if-absent, whatever the allocators' views say; a pass that died between two creates finds
// its own; a Network stored by the previous version is migrated; orphans are collected.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { listAddresses, releaseAddresses, renderNetwork, reserveAddresses, storeAddressView, vmHolder, addressObject, type AddressView, type Holder } from '../api/addresses';
import { LmdbBackend } from '../api/store/embedded';
import { EtcdBackend } from '../api/store/etcd';
import { KvStore } from '../api/store/kv';
import { KubernetesStore } from '../api/store/kubernetes';
import { FakeApiServer } from '../api/store/testing/fake-apiserver';
import type { Store } from '../api/store/store';
import { startEtcd } from '../api/store/testing/etcd';
import type { Network, VirtualMachine } from '../api/types';
import { NetworkReconciler } from './network';
import { NetworkAddressReconciler } from './networkaddress';
import type { Cache, ReconcileContext } from './runtime/types';

const backends: [string, () => Promise<{ store: Store; cleanup: () => Promise<void> }>][] = [
  ['embedded', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-addr-'));
    const store = new KvStore('embedded', new LmdbBackend(dir), '/n0stack');
    return { store, cleanup: async () => { await store.close(); fs.rmSync(dir, { recursive: true, force: true }); } };
  }],
  ['etcd', async () => {
    const etcd = process.env.N0STACK_TEST_ETCD ? { endpoint: process.env.N0STACK_TEST_ETCD, stop: async () => undefined } : await startEtcd();
    const store = new KvStore('etcd', new EtcdBackend({ endpoints: [etcd.endpoint] }), `/n0stack-test-${randomBytes(4).toString('hex')}`);
    return { store, cleanup: async () => { await store.close(); await etcd.stop(); } };
  }],
  // The Kubernetes store against the fake API server (CRDs from crds/, names and labels checked as kube-apiserver does).
  ['kubernetes', async () => {
    const fake = await FakeApiServer.start({ token: 'addr-token' });
    const store = new KubernetesStore({ server: fake.url, token: 'addr-token', requestTimeoutMs: 10_000 });
    return { store, cleanup: async () => { await store.close(); await fake.stop(); } };
  }],
];

const network = (name: string, spec: Network['spec']): Network => ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name }, spec } as Network);
const holder = (i: number, uid = `uid-${i}`): Holder => vmHolder({ metadata: { name: `vm${i}`, uid } }, 0);
/** A view that has seen nothing: every allocator guesses the same address and only the store decides. */
const blind: AddressView = { held: () => [] };
const emptyCache: Cache = { get: () => undefined, list: () => [], byIndex: () => [] };
const ctxOf = (store: Store): ReconcileContext => ({ store, cache: emptyCache, signal: new AbortController().signal, enqueue: () => undefined });

// Half the allocators are blind: each walks the range refused address by address (two round trips
// each), the worst case; the controllers' views (cache plus what they created) avoid most of it.
jest.setTimeout(60_000);

describe.each(backends)('NetworkAddress allocation on the %s store', (_name, open) => {
  let store: Store;
  let cleanup: () => Promise<void>;
  beforeAll(async () => ({ store, cleanup } = await open()));
  afterAll(async () => cleanup());

  it('50 concurrent NICs on a /26 (61 free) get 50 distinct addresses, also when their views see nothing', async () => {
    const net = await store.create(network('n26', { ipv4_cidr: '10.26.0.0/26', gateway_ipv4: '10.26.0.1' }));
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => reserveAddresses(store, i % 2 ? blind : storeAddressView(store), net, holder(i), {}, 'nics[0]')));
    const ips = results.map((r) => r.ipv4_address);
    expect(new Set(ips).size).toBe(50);
    expect(new Set(results.map((r) => r.hardware_address)).size).toBe(50);
    expect(ips).not.toContain('10.26.0.1');
    const objects = await listAddresses(store, 'n26');
    expect(objects).toHaveLength(100);
    // The lowest free ones: .2 .. .51.
    expect(new Set(ips)).toEqual(new Set(Array.from({ length: 50 }, (_, i) => `10.26.0.${i + 2}`)));
    // Again: idempotent, nothing created.
    expect(await reserveAddresses(store, storeAddressView(store), net, holder(7), {}, 'nics[0]')).toEqual(results[7]);
    expect(await listAddresses(store, 'n26')).toHaveLength(100);
  });

  it('20 concurrent NICs on a /28 with 13 free: exactly 13 get addresses, the rest "no free", nothing leaked after release', async () => {
    const net = await store.create(network('n28', { ipv4_cidr: '10.28.0.0/28', gateway_ipv4: '10.28.0.1' }));
    const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => reserveAddresses(store, i % 3 ? blind : storeAddressView(store), net, holder(i), {}, 'nics[0]')));
    const won = outcomes.filter((o) => o.status === 'fulfilled');
    const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(won).toHaveLength(13);
    expect(lost.map((o) => o.reason.message)).toEqual(Array(7).fill(expect.stringMatching(/network n28 has no free IPv4 address/)));
    expect(lost.every((o) => o.reason.code === 'FailedPrecondition')).toBe(true);
    // The losers created nothing (IPv4 goes first).
    expect(await listAddresses(store, 'n28')).toHaveLength(26);
    for (let i = 0; i < 20; i++) await releaseAddresses(store, 'n28', holder(i), await listAddresses(store, 'n28'));
    expect(await listAddresses(store, 'n28')).toEqual([]);
  });

  it('a requested address held by another is FailedPrecondition naming the field; by the same holder it is the same answer', async () => {
    const net = await store.create(network('nreq', { ipv4_cidr: '10.30.0.0/24', ipv6_cidr: 'fd00:30::/64' }));
    const a = await reserveAddresses(store, blind, net, holder(1), { ipv4_address: '10.30.0.9' }, 'nics[0]');
    expect(a).toMatchObject({ ipv4_address: '10.30.0.9', ipv6_address: expect.stringMatching(/^fd00:30::/) });
    await expect(reserveAddresses(store, blind, net, holder(2), { ipv4_address: '10.30.0.9' }, 'nics[0]')).rejects.toMatchObject({ code: 'FailedPrecondition', field: 'nics[0].ipv4_address', message: expect.stringMatching(/10\.30\.0\.9 is already in use in network nreq by vm1\.0/) });
    await expect(reserveAddresses(store, blind, net, holder(3), { hardware_address: a.hardware_address }, 'nics[0]')).rejects.toMatchObject({ code: 'FailedPrecondition', field: 'nics[0].hardware_address' });
    await expect(reserveAddresses(store, blind, net, holder(4), { ipv6_address: a.ipv6_address }, 'nics[0]')).rejects.toMatchObject({ code: 'FailedPrecondition', field: 'nics[0].ipv6_address' });
    expect(await reserveAddresses(store, storeAddressView(store), net, holder(1), { ipv4_address: '10.30.0.9' }, 'nics[0]')).toEqual(a);
    // A namesake (same name, another uid) does not get the first one's addresses.
    await expect(reserveAddresses(store, storeAddressView(store), net, holder(1, 'uid-other'), { ipv4_address: '10.30.0.9' }, 'nics[0]')).rejects.toMatchObject({ field: 'nics[0].ipv4_address' });
    // Refused after their first creates (IPv4; then the MAC, for the IPv6 conflict): they hold those until released, as a VM in AddressConflict does.
    expect((await listAddresses(store, 'nreq')).filter((x) => x.spec.holder_key !== 'vm1.0').map((x) => `${x.spec.holder_key}:${x.spec.family}`).sort()).toEqual(['vm3.0:ipv4', 'vm4.0:ipv4', 'vm4.0:mac']);
  });

  it('a pass killed after creating the IPv4 object and before the MAC finds and reuses it (by uid)', async () => {
    const net = await store.create(network('ncrash', { ipv4_cidr: '10.31.0.0/24' }));
    const h = holder(1);
    await store.create(addressObject('ncrash', 'ipv4', '10.31.0.7', h));
    // Its next pass: a fresh view (a restarted controller's synced cache).
    const r = await reserveAddresses(store, storeAddressView(store), net, h, {}, 'nics[0]');
    expect(r.ipv4_address).toBe('10.31.0.7');
    const objects = await listAddresses(store, 'ncrash');
    expect(objects.map((o) => o.spec.family).sort()).toEqual(['ipv4', 'mac']);
    expect(objects.every((o) => o.spec.virtual_machine_uid === 'uid-1')).toBe(true);
  });

  it('migrates a Network stored with status.reserved_network_interfaces into objects, then drops the list', async () => {
    const created = await store.create(network('legacy', { ipv4_cidr: '10.32.0.0/24' }));
    const vm = await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name: 'old-vm' }, spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: 2 ** 30, nics: [{ network_name: 'legacy' }] } } as VirtualMachine);
    const by = 'n0core/provisioning/virtual_machine/virtual_machine/reserved_by';
    const legacy = {
      'old-vm.0': { hardware_address: '02:00:00:00:00:0a', ipv4_address: '10.32.0.2', annotations: { [by]: 'old-vm' } },
      'gone-vm.0': { hardware_address: '02:00:00:00:00:0b', ipv4_address: '10.32.0.3', annotations: { [by]: 'gone-vm' } },
      'port-a': { hardware_address: '02:00:00:00:00:0c', ipv4_address: '10.32.0.4', annotations: { owner: 'me' } },
    };
    await store.update({ ...created, status: { reserved_network_interfaces: legacy } }, { subresource: 'status' });
    const stored = await store.get('Network', 'legacy');
    const before = renderNetwork(stored, []).status!.reserved_network_interfaces;
    // Reconciled before the migration: a listed VM keeps its addresses; a new NIC takes none of the listed ones.
    expect(await reserveAddresses(store, storeAddressView(store), stored, vmHolder(vm, 0), {}, 'nics[0]')).toEqual({ hardware_address: '02:00:00:00:00:0a', ipv4_address: '10.32.0.2' });
    expect((await reserveAddresses(store, storeAddressView(store), stored, holder(9), {}, 'nics[0]')).ipv4_address).toBe('10.32.0.1');
    expect((await reserveAddresses(store, storeAddressView(store), stored, holder(10), {}, 'nics[0]')).ipv4_address).toBe('10.32.0.5');
    await expect(reserveAddresses(store, storeAddressView(store), stored, holder(11), { ipv4_address: '10.32.0.4' }, 'nics[0]')).rejects.toMatchObject({ field: 'nics[0].ipv4_address', message: expect.stringMatching(/by port-a/) });
    await new NetworkReconciler(() => { throw new Error('no agent'); }).reconcile('legacy', ctxOf(store));
    const after = await store.get('Network', 'legacy');
    expect(after.status?.reserved_network_interfaces).toBeUndefined();
    expect(after.status?.state).toBe('AVAILABLE');
    const objects = (await listAddresses(store, 'legacy')).filter((o) => o.spec.holder_key in legacy);
    expect(objects.map((o) => o.metadata.name).sort()).toEqual(['legacy.ipv4.10.32.0.2', 'legacy.ipv4.10.32.0.4', 'legacy.mac.02000000000a', 'legacy.mac.02000000000c']);
    expect(objects.find((o) => o.spec.holder_key === 'old-vm.0')!.spec.virtual_machine_uid).toBe(vm.metadata.uid);
    // The seed's view is what it was, less the interface of a VM that no longer exists.
    const { 'gone-vm.0': _gone, ...kept } = before!;
    expect(renderNetwork(after, objects).status!.reserved_network_interfaces).toEqual(kept);
    // Again: nothing to do.
    await new NetworkReconciler(() => { throw new Error('no agent'); }).reconcile('legacy', ctxOf(store));
    expect(await listAddresses(store, 'legacy')).toHaveLength(8);
  });

  it('collects an address whose holder VM is gone or a namesake, and keeps a live holder\'s and a seed reservation\'s', async () => {
    await store.create(network('ngc', { ipv4_cidr: '10.33.0.0/24' }));
    const live = await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name: 'live' }, spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: 2 ** 30 } } as VirtualMachine);
    const docs = [
      addressObject('ngc', 'ipv4', '10.33.0.2', vmHolder(live, 0)),
      addressObject('ngc', 'ipv4', '10.33.0.3', vmHolder({ metadata: { name: 'live', uid: 'an-older-uid' } }, 0)),
      addressObject('ngc', 'ipv4', '10.33.0.4', vmHolder({ metadata: { name: 'gone', uid: 'x' } }, 0)),
      addressObject('ngc', 'ipv4', '10.33.0.5', { key: 'port-b' }),
    ];
    for (const d of docs) await store.create(d);
    const collector = new NetworkAddressReconciler();
    const cache: Cache = { ...emptyCache, get: ((kind: string, name: string) => (kind === 'NetworkAddress' ? docsByName.get(name) : undefined)) as Cache['get'] };
    const docsByName = new Map((await listAddresses(store, 'ngc')).map((d) => [d.metadata.name, d]));
    for (const name of docsByName.keys()) await collector.reconcile(name, { ...ctxOf(store), cache });
    expect((await listAddresses(store, 'ngc')).map((d) => d.spec.address).sort()).toEqual(['10.33.0.2', '10.33.0.5']);
  });
});
