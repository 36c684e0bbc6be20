// placeAndReserve on the real embedded store: a pinned request (by the user, or by disks already
// placed) reads only its node, an unpinned one looks at every node, and the CAS reservation lands.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { placeAndReserve } from './placement';
import { openStore, type Store } from './store/index';
import type { Kind, Node } from './types';

const GiB = 2 ** 30;

function node(name: string): Node {
  return {
    apiVersion: 'n0stack.io/v1alpha1', kind: 'Node', metadata: { name },
    spec: { address: '10.255.0.1', cpu_milli_cores: 4000, memory_bytes: 8 * GiB, storage_bytes: 100 * GiB },
    status: { state: 'Ready', conditions: [{ type: 'Ready', status: 'True', reason: 'AgentHeartbeat', message: 'test', lastTransitionTime: '2026-01-01T00:00:00Z' }] },
  } as Node;
}

describe('placeAndReserve', () => {
  let dir: string;
  let store: Store;
  let lists: Kind[];
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-placement-'));
    const inner = await openStore({ backend: 'embedded', dataDir: dir });
    lists = [];
    // Records which kinds were listed; everything else goes straight through.
    store = new Proxy(inner, { get: (target, prop, receiver) => prop === 'list' ? (kind: Kind, o?: object) => { lists.push(kind); return target.list(kind, o); } : Reflect.get(target, prop, receiver) });
    for (const n of ['n1', 'n2', 'n3']) {
      const created = await inner.create(node(n));
      await inner.update({ ...created, status: node(n).status }, { subresource: 'status' });
    }
  });
  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const storage = { what: 'storage' as const, value: { request_bytes: GiB, limit_bytes: GiB } };
  const compute = { what: 'compute' as const, value: { request_cpu_milli_core: 100, limit_cpu_milli_core: 1000, request_memory_bytes: GiB, limit_memory_bytes: GiB } };

  it('reads only the pinned node and reserves there', async () => {
    expect(await placeAndReserve(store, 'disk-a', storage, undefined, { pinnedNode: 'n2' })).toBe('n2');
    expect(lists).toEqual([]);
    expect((await store.get('Node', 'n2')).status?.reserved_storages?.['disk-a']).toMatchObject({ request_bytes: GiB });
  });

  it('pins compute to the node its disks are on without listing nodes', async () => {
    expect(await placeAndReserve(store, 'vm-a', compute, undefined, { blockStorages: [{ name: 'disk-a', nodeName: 'n3' }] })).toBe('n3');
    expect(lists).toEqual([]);
    expect((await store.get('Node', 'n3')).status?.reserved_computes?.['vm-a']).toMatchObject({ request_cpu_milli_core: 100 });
  });

  it('names a pinned node that does not exist', async () => {
    await expect(placeAndReserve(store, 'disk-b', storage, undefined, { pinnedNode: 'nope' })).rejects.toThrow(/on node nope.*no such node/);
  });

  it('refuses disks on different nodes', async () => {
    await expect(placeAndReserve(store, 'vm-b', compute, undefined, { blockStorages: [{ name: 'd1', nodeName: 'n1' }, { name: 'd2', nodeName: 'n2' }] })).rejects.toThrow(/different nodes/);
  });

  it('looks at every node when nothing pins the request', async () => {
    const chosen = await placeAndReserve(store, 'disk-c', storage);
    expect(['n1', 'n2', 'n3']).toContain(chosen);
    expect(lists).toEqual(['Node']);
  });
});
