import type { BlockStorage, Network, Node, VirtualMachine } from '../types';
import { renderNode } from '../placement';
import { virtualMachineStrategy as s } from './virtualmachine';

const vm = (spec: Partial<VirtualMachine['spec']> = {}): VirtualMachine =>
  ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name: 'vm1' }, spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: 268435456, ...spec } } as VirtualMachine);
const error = (fn: () => void) => { try { fn(); } catch (err) { return { code: (err as any).code, field: (err as any).field, message: (err as Error).message }; } return undefined; };

describe('VirtualMachine admission', () => {
  it("create: the seed's spec rules name the field", () => {
    expect(error(() => s.validateCreate(vm({ limit_cpu_milli_core: 1500 }), () => undefined))).toMatchObject({ code: 'InvalidArgument', field: 'limit_cpu_milli_core' });
    expect(error(() => s.validateCreate(vm({ request_cpu_milli_core: 2000 }), () => undefined))).toMatchObject({ field: 'request_cpu_milli_core' });
    expect(error(() => s.validateCreate(vm({ request_memory_bytes: 1 }), () => undefined))).toMatchObject({ field: 'request_memory_bytes' });
    expect(error(() => s.validateCreate(vm({ block_storage_names: ['a', 'a'] }), () => ({}) as never))).toMatchObject({ field: 'block_storage_names[1]' });
  });

  it('create: disks and networks must exist, be usable and not be being deleted', () => {
    const objects: Record<string, object> = {
      'BlockStorage/free': { metadata: { name: 'free' }, spec: {} },
      'BlockStorage/protected': { metadata: { name: 'protected' }, spec: { protected: true } },
      'BlockStorage/taken': { metadata: { name: 'taken' }, spec: {}, status: { in_use_by: 'vm2' } },
      'BlockStorage/going': { metadata: { name: 'going', deletionTimestamp: 'x' }, spec: {} },
      'Network/net': { metadata: { name: 'net' }, spec: {} },
      'Network/closing': { metadata: { name: 'closing', deletionTimestamp: 'x' }, spec: {} },
    };
    const lookup = ((kind: string, name: string) => objects[`${kind}/${name}`]) as any as <K>(k: K, n: string) => (BlockStorage & Network) | undefined;
    const check = (spec: Partial<VirtualMachine['spec']>) => error(() => s.validateCreate(vm(spec), lookup as never));
    expect(check({ block_storage_names: ['free'], nics: [{ network_name: 'net' }] })).toBeUndefined();
    expect(check({ block_storage_names: ['free', 'missing'] })).toMatchObject({ code: 'FailedPrecondition', field: 'block_storage_names[1]', message: expect.stringMatching(/does not exist/) });
    expect(check({ block_storage_names: ['protected'] })).toMatchObject({ message: expect.stringMatching(/PROTECTED/) });
    expect(check({ block_storage_names: ['taken'] })).toMatchObject({ message: expect.stringMatching(/IN_USE by vm2/) });
    expect(check({ block_storage_names: ['going'] })).toMatchObject({ message: expect.stringMatching(/being deleted/) });
    expect(check({ nics: [{ network_name: 'nowhere' }] })).toMatchObject({ code: 'FailedPrecondition', field: 'nics[0].network_name' });
    expect(check({ nics: [{ network_name: 'closing' }] })).toMatchObject({ message: expect.stringMatching(/being deleted/) });
    // Without a lookup (a dry run) only the VM itself is judged.
    expect(error(() => s.validateCreate(vm({ block_storage_names: ['missing'] })))).toBeUndefined();
    expect(error(() => s.validateCreate(vm({ limit_cpu_milli_core: 1 })))).toMatchObject({ field: 'limit_cpu_milli_core' });
  });

  it('update: nics and block_storage_names are fixed after creation; cpu, memory and run_state may change', () => {
    const old = vm({ block_storage_names: ['d1'], nics: [{ network_name: 'net' }] });
    expect(error(() => s.validateUpdate(old, vm({ block_storage_names: ['d1'], nics: [{ network_name: 'net' }], limit_cpu_milli_core: 2000, run_state: 'SHUTDOWN' })))).toBeUndefined();
    expect(error(() => s.validateUpdate(old, vm({ block_storage_names: ['d1'], nics: [{ network_name: 'net', ipv4_address: '10.0.0.9' }] })))).toMatchObject({ code: 'InvalidArgument', field: 'nics' });
    expect(error(() => s.validateUpdate(old, vm({ block_storage_names: ['d2'], nics: [{ network_name: 'net' }] })))).toMatchObject({ code: 'InvalidArgument', field: 'block_storage_names' });
    expect(error(() => s.validateUpdate(old, vm({ nics: [{ network_name: 'net' }] })))).toMatchObject({ field: 'block_storage_names' });
  });

  it('update: a placed VM grows only as far as its node has room for (the node as rendered, this VM at its old size)', () => {
    const GiB = 2 ** 30;
    const placed = { ...vm({ limit_cpu_milli_core: 1000, limit_memory_bytes: GiB }), status: { node_name: 'n1' } } as VirtualMachine;
    const other = { ...vm({ limit_cpu_milli_core: 2000, limit_memory_bytes: GiB }), metadata: { name: 'vm2' }, status: { node_name: 'n1' } } as VirtualMachine;
    const node = renderNode({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Node', metadata: { name: 'n1' }, spec: { cpu_milli_cores: 4000, memory_bytes: 4 * GiB, storage_bytes: GiB } } as Node,
      { virtualMachines: [placed, other], blockStorages: [], reservations: [] });
    const lookup = (kind: string, name: string) => (kind === 'Node' && name === 'n1' ? node : undefined) as never;
    const grow = (spec: Partial<VirtualMachine['spec']>) => ({ ...placed, spec: { ...placed.spec, ...spec } });
    expect(s.updateReferences!(placed, grow({ limit_cpu_milli_core: 2000 }))).toEqual([{ kind: 'Node', name: 'n1' }]);
    // 2 of 4 cores left: 2 fit, 3 do not; memory likewise (3 of 4 GiB left).
    expect(error(() => s.validateUpdate(placed, grow({ limit_cpu_milli_core: 2000 }), lookup))).toBeUndefined();
    expect(error(() => s.validateUpdate(placed, grow({ limit_cpu_milli_core: 3000 }), lookup))).toMatchObject({ code: 'FailedPrecondition', field: 'limit_cpu_milli_core', message: expect.stringMatching(/^limit_cpu_milli_core: node n1 cannot hold the increase/) });
    expect(error(() => s.validateUpdate(placed, grow({ limit_memory_bytes: 4 * GiB }), lookup))).toMatchObject({ code: 'FailedPrecondition', field: 'limit_memory_bytes' });
    // Shrinking, or a VM not placed yet (its placement will judge it), needs no room and no lookup.
    expect(s.updateReferences!(placed, grow({ limit_cpu_milli_core: 1000, limit_memory_bytes: GiB / 2 }))).toEqual([]);
    expect(error(() => s.validateUpdate(vm(), vm({ limit_cpu_milli_core: 64000 }), lookup))).toBeUndefined();
  });
});
