import { addressObject, vmHolder } from '../../api/addresses';
import { checkInvariants, generate, pools, prng, shrink, type Doc, type Snapshot } from './random-faults';
import { bridgeName, tapName } from '../../agent/paths';

const doc = (kind: string, name: string, spec: any = {}, status: any = {}, metadata: Partial<Doc['metadata']> = {}): Doc => ({ kind, metadata: { name, generation: 1, ...metadata }, spec, status });
const host = (over: Partial<Snapshot['hosts'][number]> = {}) => ({ node: 'host-a', disks: [], qemu: [], links: [], ...over });

describe('generate', () => {
  test('is reproducible from its seed and spreads the kills', () => {
    const p = pools();
    const a = generate(42, p, { ops: 500, kills: 25 });
    expect(generate(42, p, { ops: 500, kills: 25 })).toEqual(a);
    expect(generate(43, p, { ops: 500, kills: 25 })).not.toEqual(a);
    expect(a).toHaveLength(525);
    const kills = a.map((op, i) => [op, i] as const).filter(([op]) => op.t === 'kill');
    expect(kills).toHaveLength(25);
    expect(kills.some(([op]) => op.t === 'kill' && op.what === 'agent')).toBe(true);
    expect(kills.some(([op]) => op.t === 'kill' && op.what === 'controllers')).toBe(true);
    // every entrance and every kind of operation shows up
    const kinds = new Set(a.map((op) => op.t));
    for (const t of ['net.apply', 'bs.create', 'img.generate', 'vm.create', 'vm.power', 'node.cordon']) expect(kinds).toContain(t);
    expect(new Set(a.flatMap((op) => ('e' in op ? [op.e] : [])))).toEqual(new Set(['rpc', 'resource', 'store']));
    expect(kinds).not.toContain('node.delete');
    expect(new Set(generate(1, p, { ops: 500, kills: 0, nodeDeleteWeight: 2 }).map((op) => op.t))).toContain('node.delete');
  });

  test('prng is uniform enough', () => {
    const r = prng(7);
    const xs = Array.from({ length: 10_000 }, r);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.48);
    expect(mean).toBeLessThan(0.52);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
  });
});

describe('checkInvariants', () => {
  const node = (status: any, spec: any = { cpu_milli_cores: 2000, memory_bytes: 1024, storage_bytes: 1024 }) => doc('Node', 'host-a', spec, status);
  const vm = (name: string, status: any = {}, spec: any = {}) => doc('VirtualMachine', name, { limit_cpu_milli_core: 1000, limit_memory_bytes: 64, nics: [{ network_name: 'n' }], block_storage_names: ['d'], ...spec }, status);
  const address = (net: string, family: 'mac' | 'ipv4', value: string, vmName: string, uid: string, index = 0) => {
    const a = addressObject(net, family, value, vmHolder({ metadata: { name: vmName, uid } }, index));
    return doc('NetworkAddress', a.metadata.name, a.spec);
  };

  test('a consistent snapshot has no violations', () => {
    const s: Snapshot = {
      docs: [
        node({ state: 'Ready' }),
        doc('Reservation', 'storage.host-a.seed', { node_name: 'host-a', what: 'storage', key: 'seed', request_bytes: 10, limit_bytes: 10 }),
        doc('BlockStorage', 'o', { backing_block_storage: 'd' }, { node_name: 'host-a', state: 'AVAILABLE' }),
        doc('Network', 'n', {}, {}),
        address('n', 'ipv4', '10.0.0.2', 'v', 'u-v'), address('n', 'mac', '52:54:00:00:00:01', 'v', 'u-v'),
        doc('BlockStorage', 'd', {}, { node_name: 'host-a', state: 'IN_USE', in_use_by: 'v' }),
        { ...vm('v', { node_name: 'host-a', state: 'RUNNING', nics: [{ network_name: 'n', ipv4_address: '10.0.0.2', hardware_address: '52:54:00:00:00:01' }] }), metadata: { name: 'v', uid: 'u-v', generation: 1 } },
      ],
      hosts: [host({ disks: [{ name: 'd' }, { name: 'o', backingFile: '/data/disks/d.qcow2', backingExists: true }], qemu: ['v'], links: [tapName('v', 0), bridgeName('n'), 'lo', 'ul0'] })],
    };
    expect(checkInvariants(s)).toEqual([]);
  });

  test('finds leaks, doubles and orphans', () => {
    const s: Snapshot = {
      docs: [
        node({ reserved_computes: { gone: {} } }, { cpu_milli_cores: 500, memory_bytes: 1024, storage_bytes: 1024 }),
        doc('Reservation', 'compute.host-b.seed', { node_name: 'host-b', what: 'compute', key: 'seed' }),
        doc('Network', 'n', {}, { reserved_network_interfaces: { 'old.0': { ipv4_address: '10.0.0.9' } } }),
        address('n', 'ipv4', '10.0.0.2', 'v', 'u-v'), address('n', 'ipv4', '10.0.0.3', 'x', 'u-x'),
        address('n', 'ipv4', '10.0.0.4', 'w', 'u-w-old'),
        { ...address('n', 'ipv4', '10.0.0.5', 'v', 'u-v'), metadata: { name: 'n.ipv4.10.0.0.6', generation: 1 } },
        { ...vm('w', { state: 'RUNNING', nics: [{ network_name: 'n', ipv4_address: '10.0.0.2', hardware_address: '52:54:00:00:00:01' }] }), metadata: { name: 'w', uid: 'u-w', generation: 1 } },
        doc('BlockStorage', 'd', { backing_block_storage: 'base' }, { node_name: 'host-a', state: 'AVAILABLE' }),
        doc('BlockStorage', 'stuck', {}, { conditions: [{ type: 'Ready', reason: 'Deleting' }] }, { deletionTimestamp: 'now', finalizers: ['f'] }),
        doc('BlockStorage', 'held', {}, { conditions: [{ type: 'Ready', reason: 'WaitingForDependants' }] }, { deletionTimestamp: 'now', finalizers: ['f'] }),
        { ...vm('v', { node_name: 'host-a', state: 'RUNNING', nics: [{ network_name: 'n', ipv4_address: '10.0.0.2', hardware_address: '52:54:00:00:00:01' }] }), metadata: { name: 'v', uid: 'u-v', generation: 1 } },
      ],
      hosts: [host({ disks: [{ name: 'd', backingFile: '/x/base.qcow2', backingExists: false }, { name: 'lost' }], qemu: ['ghost'], links: [tapName('ghost', 0), bridgeName('gone-net')] })],
      actionExecutions: { a1: 1, a2: 2 },
    };
    const found = checkInvariants(s).map((x) => x.invariant);
    for (const inv of ['deleted-is-gone', 'node-reservations', 'network-reservations', 'unique-addresses', 'backing-chain', 'no-orphans', 'actions-once']) expect(found).toContain(inv);
    const details = checkInvariants(s).map((x) => x.detail).join('\n');
    expect(details).toContain('stuck');
    expect(details).not.toContain('BlockStorage/held');
    expect(details).toContain('disk file lost');
    expect(details).toContain('QEMU of ghost');
    expect(details).toContain('overlay on base, whose BlockStorage is gone');
    expect(details).toContain('Node/host-a is overcommitted: CPU requests 1000 > 500');
    expect(details).toContain('Node/host-a stores reserved_computes in its document');
    expect(details).toContain('Reservation/compute.host-b.seed names node host-b, which does not exist');
    expect(details).toContain('Network/n still lists reserved_network_interfaces');
    expect(details).toContain('NetworkAddress/n.ipv4.10.0.0.3 is held by x.0 (uid u-x), which no VirtualMachine accounts for');
    expect(details).toContain('NetworkAddress/n.ipv4.10.0.0.4 is held by w.0 (uid u-w-old)');
    expect(details).toContain('NetworkAddress/n.ipv4.10.0.0.6 is not named by its value');
    expect(details).toMatch(/w\.0 and v\.0 both hold n ipv4 10\.0\.0\.2|v\.0 and w\.0 both hold n ipv4 10\.0\.0\.2/);
    expect(details).toContain('VirtualMachine/v is RUNNING with nics[0] ipv4 10.0.0.2, mac 52:54:00:00:00:01, but holds ipv4 10.0.0.2, ipv4 10.0.0.5');
    expect(details).toContain('VirtualMachine/w is RUNNING with nics[0] ipv4 10.0.0.2, mac 52:54:00:00:00:01, but holds no addresses');
    // after the teardown, even a held object is a violation
    expect(checkInvariants(s, { final: true }).map((x) => x.detail).join('\n')).toContain('BlockStorage/held');
  });
});

describe('shrink', () => {
  test('finds the shortest failing subsequence of a synthetic bug', async () => {
    // fails when 'a' comes before 'b' (both needed), anything else is noise
    const ops = Array.from({ length: 200 }, (_, i) => (i === 37 ? 'a' : i === 150 ? 'b' : `n${i}`));
    const fails = async (xs: string[]) => { const a = xs.indexOf('a'); const b = xs.indexOf('b'); return a >= 0 && b > a; };
    const { ops: shortest, runs } = await shrink(ops, fails, 200);
    expect(shortest).toEqual(['a', 'b']);
    expect(runs).toBeLessThanOrEqual(200);
  });

  test('stops at its budget with a still-failing sequence', async () => {
    const ops = Array.from({ length: 64 }, (_, i) => i);
    const fails = async (xs: number[]) => xs.includes(40);
    const { ops: shortest, runs } = await shrink(ops, fails, 5);
    expect(runs).toBeLessThanOrEqual(5);
    expect(await fails(shortest)).toBe(true);
  });
});
