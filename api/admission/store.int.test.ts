// AdmittingStore over the real embedded store: a broken rule writes nothing, whether it comes as
// a create, an update or a patch; status writes and deletes pass through.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openStore } from '../store';
import type { Store } from '../store/store';
import type { Network, VirtualMachine } from '../types';
import { AdmittingStore } from './store';
import { addressObject, seedHolder } from '../addresses';

const code = (p: Promise<unknown>) => p.then(() => 'ok', (err) => `${(err as { code?: string }).code}: ${(err as Error).message}`);

describe('AdmittingStore on the embedded store', () => {
  let dir: string;
  let raw: Store;
  let store: AdmittingStore;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0-admission-'));
    raw = await openStore({ backend: 'embedded', dataDir: dir });
    store = new AdmittingStore(raw);
  });
  afterAll(async () => {
    await raw?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const network = (name: string, spec: Network['spec']): Network => ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name }, spec });

  it('create: defaults the finalizer, refuses a broken rule and a missing reference, and writes nothing then', async () => {
    const created = await store.create(network('net-a', { ipv4_cidr: '10.1.0.0/24' }));
    expect(created.metadata.finalizers).toEqual(['n0stack.io/network']);
    expect(await code(store.create(network('net-b', { ipv4_cidr: '10.1.0.0/24', gateway_ipv4: '10.2.0.1' })))).toMatch(/^InvalidArgument: .*gateway_ipv4/);
    const vm: VirtualMachine = { apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name: 'vm-a' }, spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: 1024, block_storage_names: ['nope'] } };
    expect(await code(store.create(vm))).toMatch(/^FailedPrecondition: block_storage_names\[0\]: BlockStorage "nope" does not exist/);
    expect(await code(raw.get('Network', 'net-b'))).toMatch(/^NotFound/);
    expect(await code(raw.get('VirtualMachine', 'vm-a'))).toMatch(/^NotFound/);
  });

  it('update and patch: the cidr of a Network lending an address is refused either way; a stale version is a Conflict', async () => {
    const reserved = await store.get('Network', 'net-a');
    const lent = addressObject('net-a', 'ipv4', '10.1.0.1', seedHolder('port-a'));
    // An address is named by its value, and lent only by a Network that exists.
    expect(await code(store.create({ ...lent, metadata: { ...lent.metadata, name: 'net-a.ipv4.10.1.0.2' } }))).toMatch(/^InvalidArgument: .*must be named net-a\.ipv4\.10\.1\.0\.1/);
    expect(await code(store.create(addressObject('no-net', 'ipv4', '10.1.0.1', seedHolder('p'))))).toMatch(/^FailedPrecondition: network_name: Network "no-net" does not exist/);
    const created = await store.create(lent);
    expect(await code(store.update({ ...created, spec: { ...created.spec, holder_key: 'thief' } }))).toMatch(/^InvalidArgument: .*immutable/);
    expect(await code(store.update({ ...reserved, spec: { ipv4_cidr: '10.9.0.0/24' } }))).toMatch(/^FailedPrecondition: .*ipv4_cidr cannot change/);
    expect(await code(store.patch('Network', 'net-a', { type: 'merge', value: { spec: { ipv4_cidr: '10.9.0.0/24' } } }))).toMatch(/^FailedPrecondition: .*ipv4_cidr/);
    expect(await code(store.patch('Network', 'net-a', { type: 'json', ops: [{ op: 'replace', path: '/spec/ipv4_cidr', value: '10.9.0.0/24' }] }))).toMatch(/^FailedPrecondition/);
    expect((await raw.get('Network', 'net-a')).spec.ipv4_cidr).toBe('10.1.0.0/24');
    const patched = await store.patch('Network', 'net-a', { type: 'merge', value: { spec: { domain: 'example.org' } } });
    expect(patched.spec).toEqual({ ipv4_cidr: '10.1.0.0/24', domain: 'example.org' });
    expect(await code(store.update({ ...reserved, spec: { ipv4_cidr: '10.1.0.0/24', domain: 'stale.example' } }))).toMatch(/^Conflict/);
    expect(await code(store.patch('Network', 'net-a', { type: 'json', ops: [{ op: 'test', path: '/spec/domain', value: 'other' }] }))).toMatch(/^Conflict/);
    // Released: the cidr may change.
    await store.delete('NetworkAddress', lent.metadata.name);
    expect((await store.patch('Network', 'net-a', { type: 'merge', value: { spec: { ipv4_cidr: '10.9.0.0/24' } } })).spec.ipv4_cidr).toBe('10.9.0.0/24');
  });

  it('delete passes through (the controllers\' finalizers hold what is still needed)', async () => {
    const marked = await store.delete('Network', 'net-a');
    expect(marked?.metadata.deletionTimestamp).toBeDefined();
  });
});
