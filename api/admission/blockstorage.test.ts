import type { BlockStorage, VirtualMachine } from '../types';
import { blockStorageStrategy as s } from './blockstorage';

const bs = (name: string, spec: Partial<BlockStorage['spec']> = {}, status?: BlockStorage['status'], deleting = false): BlockStorage =>
  ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'BlockStorage', metadata: { name, ...(deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) }, spec: { request_bytes: 1, limit_bytes: 1024, ...spec }, status } as BlockStorage);
const vm = (name: string, disks: string[]): VirtualMachine =>
  ({ apiVersion: 'n0stack.io/v1alpha1', kind: 'VirtualMachine', metadata: { name }, spec: { limit_cpu_milli_core: 1000, limit_memory_bytes: 1, block_storage_names: disks } } as VirtualMachine);
const error = (fn: () => void) => { try { fn(); } catch (err) { return { code: (err as any).code, field: (err as any).field, message: (err as Error).message }; } return undefined; };
const none = () => undefined;

describe('BlockStorage admission', () => {
  it('create: sizes and one http(s) source, and a source or backing disk that exists and is not being deleted', () => {
    const d = bs('d');
    s.prepareForCreate(d);
    expect(d.metadata.finalizers).toEqual(['n0stack.io/blockstorage']);
    expect(error(() => s.validateCreate(bs('d', { limit_bytes: 0 }), none))).toMatchObject({ code: 'InvalidArgument', field: 'limit_bytes' });
    expect(error(() => s.validateCreate(bs('d', { request_bytes: 2048 }), none))).toMatchObject({ code: 'InvalidArgument', field: 'request_bytes' });
    expect(error(() => s.validateCreate(bs('d', { source_url: 'file:///etc/passwd' }), none))).toMatchObject({ code: 'InvalidArgument', field: 'source_url' });
    expect(error(() => s.validateCreate(bs('d', { source_url: 'http://x/a', backing_block_storage: 'b' }), none))).toMatchObject({ field: 'backing_block_storage' });
    expect(error(() => s.validateCreate(bs('child', { backing_block_storage: '../etc' }), none))).toMatchObject({ code: 'InvalidArgument', field: 'backing_block_storage' });
    expect(error(() => s.validateCreate(bs('child', { backing_block_storage: 'base' }), none))).toMatchObject({ code: 'FailedPrecondition', field: 'backing_block_storage', message: expect.stringMatching(/does not exist/) });
    const lookup = (deleting: boolean) => ((kind: string, name: string) => (kind === 'BlockStorage' && name === 'base' ? bs('base', {}, undefined, deleting) : undefined)) as any;
    expect(error(() => s.validateCreate(bs('child', { backing_block_storage: 'base' }), lookup(true)))).toMatchObject({ code: 'FailedPrecondition', message: expect.stringMatching(/being deleted/) });
    expect(error(() => s.validateCreate(bs('child', { backing_block_storage: 'base' }), lookup(false)))).toBeUndefined();
  });

  it('update: request and limit only grow; sources are fixed', () => {
    const old = bs('d', { request_bytes: 100, limit_bytes: 1000, backing_block_storage: 'base' });
    expect(error(() => s.validateUpdate(old, bs('d', { request_bytes: 200, limit_bytes: 2000, backing_block_storage: 'base' })))).toBeUndefined();
    expect(error(() => s.validateUpdate(old, bs('d', { request_bytes: 100, limit_bytes: 999, backing_block_storage: 'base' })))).toMatchObject({ code: 'InvalidArgument', field: 'limit_bytes' });
    expect(error(() => s.validateUpdate(old, bs('d', { request_bytes: 99, limit_bytes: 1000, backing_block_storage: 'base' })))).toMatchObject({ code: 'InvalidArgument', field: 'request_bytes' });
    expect(error(() => s.validateUpdate(old, bs('d', { request_bytes: 100, limit_bytes: 1000, backing_block_storage: 'other' })))).toMatchObject({ code: 'InvalidArgument', field: 'backing_block_storage' });
    expect(error(() => s.validateUpdate(old, bs('d', { request_bytes: 100, limit_bytes: 1000 })))).toMatchObject({ field: 'backing_block_storage' });
  });

  it("update: the seed's protected / claimed / attached transitions", () => {
    const free = bs('d');
    const attached = bs('d', {}, { in_use_by: 'vm1' });
    expect(error(() => s.validateUpdate(attached, bs('d', { protected: true }, { in_use_by: 'vm1' })))).toMatchObject({ code: 'FailedPrecondition', field: 'protected', message: expect.stringMatching(/IN_USE by vm1/) });
    expect(error(() => s.validateUpdate(bs('d', { claimed_by: 'u' }), bs('d', { claimed_by: 'u', protected: true })))).toMatchObject({ field: 'protected' });
    expect(error(() => s.validateUpdate(bs('d', { protected: true }), bs('d', { protected: true, claimed_by: 'u' })))).toMatchObject({ code: 'FailedPrecondition', field: 'claimed_by' });
    expect(error(() => s.validateUpdate(bs('d', { claimed_by: 'u' }, { in_use_by: 'vm1' }), bs('d', {}, { in_use_by: 'vm1' })))).toMatchObject({ field: 'claimed_by', message: expect.stringMatching(/attached to VirtualMachine "vm1"/) });
    expect(error(() => s.validateUpdate(free, bs('d', { protected: true })))).toBeUndefined();
    expect(error(() => s.validateUpdate(bs('d', { protected: true }), free))).toBeUndefined();
  });

  it('create: an overlay is at least as large as its backing disk', () => {
    const lookup = ((kind: string, name: string) => (name === 'base' ? bs('base', { limit_bytes: 4096, request_bytes: 1 }) : undefined)) as any;
    expect(error(() => s.validateCreate(bs('child', { backing_block_storage: 'base', limit_bytes: 1024 }), lookup))).toMatchObject({ code: 'InvalidArgument', field: 'limit_bytes', message: expect.stringMatching(/smaller than the backing disk's 4096/) });
    expect(error(() => s.validateCreate(bs('child', { backing_block_storage: 'base', limit_bytes: 4096 }), lookup))).toBeUndefined();
  });

  it('dependants: overlays on it, copies still being made from it, VMs naming or holding it', () => {
    const base = bs('base', {}, { in_use_by: 'ghost-vm' });
    const world = {
      blockStorages: [
        bs('child', { backing_block_storage: 'base' }, { state: 'AVAILABLE' }),
        bs('copying', { source_block_storage: 'base' }, { state: 'PENDING' }),
        bs('copied', { source_block_storage: 'base' }, { state: 'AVAILABLE' }),
        bs('unrelated', { backing_block_storage: 'other' }),
      ],
      virtualMachines: [vm('vm1', ['base']), vm('vm2', ['other'])],
    };
    expect(s.dependants(base, world)).toEqual([
      { kind: 'BlockStorage', name: 'child', why: 'uses it as its backing file' },
      { kind: 'BlockStorage', name: 'copying', why: 'is being copied from it' },
      { kind: 'VirtualMachine', name: 'vm1', why: 'names it in block_storage_names' },
      { kind: 'VirtualMachine', name: 'ghost-vm', why: 'has it attached' },
    ]);
    expect(s.dependants(bs('lonely'), world)).toEqual([]);
  });

  it('delete precondition: protected, in use, then dependants, each named', () => {
    expect(error(() => s.validateDelete(bs('d', { protected: true }), []))).toMatchObject({ code: 'FailedPrecondition', message: expect.stringMatching(/PROTECTED/) });
    expect(error(() => s.validateDelete(bs('d', { claimed_by: 'n0stack-user' }), []))).toMatchObject({ message: expect.stringMatching(/IN_USE by n0stack-user/) });
    expect(error(() => s.validateDelete(bs('base'), [{ kind: 'BlockStorage', name: 'child-disk', why: 'uses it as its backing file' }])))
      .toMatchObject({ code: 'FailedPrecondition', message: 'BlockStorage "base" is still needed by BlockStorage "child-disk" (uses it as its backing file); delete them first' });
    expect(error(() => s.validateDelete(bs('d'), []))).toBeUndefined();
  });
});
