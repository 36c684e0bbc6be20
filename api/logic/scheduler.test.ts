import { isN0Error } from '../errors';
import { scheduleCompute, scheduleStorage, isNodeReady } from './scheduler';
import { readyNode } from './testing';

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const vm = (memory = 512 * MiB, name = 'vm1') => ({ name, requestCpuMilli: 10, limitCpuMilli: 1000, requestMemoryBytes: memory, limitMemoryBytes: memory });

function failure(fn: () => unknown): { code?: string; message: string; field?: string } {
  try { fn(); } catch (err) {
    if (isN0Error(err)) return { code: err.code, message: err.message, field: err.field };
    throw err;
  }
  throw new Error('expected a failure');
}

describe('scheduler', () => {
  const notReady = readyNode('a-down', {}, { state: 'NotReady', conditions: [{ type: 'Ready', status: 'False', message: 'no heartbeat for 30s', lastTransitionTime: '2024-01-01T00:00:00Z' }] });
  const cordoned = readyNode('b-cordoned', { unschedulable: true });
  const busy = readyNode('c-busy', {}, { reserved_computes: { x: { request_cpu_milli_core: 2000, limit_cpu_milli_core: 2000, request_memory_bytes: 4 * GiB, limit_memory_bytes: 4 * GiB } } });
  const idle = readyNode('d-idle');
  const idle2 = readyNode('e-idle');

  it('uses the Ready condition, falling back to state', () => {
    expect(isNodeReady(idle)).toBe(true);
    expect(isNodeReady(notReady)).toBe(false);
    expect(isNodeReady({ ...idle, status: { state: 'Ready' } })).toBe(true);
    expect(isNodeReady({ ...idle, status: undefined })).toBe(false);
  });

  it('chooses the least loaded Ready schedulable node, ties by name', () => {
    expect(scheduleCompute([busy, idle2, idle, notReady, cordoned], vm())).toEqual({ nodeName: 'd-idle' });
    expect(scheduleCompute([busy, notReady, cordoned], vm())).toEqual({ nodeName: 'c-busy' });
    // Order of the input does not matter.
    expect(scheduleCompute([idle, idle2], vm()).nodeName).toBe(scheduleCompute([idle2, idle], vm()).nodeName);
  });

  it('does not count the object\'s own reservation (re-scheduling is idempotent)', () => {
    const self = readyNode('only', { memory_bytes: 1 * GiB }, { reserved_computes: { vm1: { request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 1 * GiB, limit_memory_bytes: 1 * GiB } } });
    expect(scheduleCompute([self], vm(1 * GiB, 'vm1'))).toEqual({ nodeName: 'only' });
    expect(failure(() => scheduleCompute([self], vm(1 * GiB, 'vm2'))).message).toContain('node only has 0 B memory free, 1 GiB requested');
  });

  it('fails with every node\'s reason when nothing fits', () => {
    const f = failure(() => scheduleCompute([notReady, cordoned, busy], vm(5 * GiB)));
    expect(f.code).toBe('FailedPrecondition');
    expect(f.message).toBe('no node can host virtual machine vm1: node a-down is not Ready (no heartbeat for 30s); node b-cordoned is unschedulable (cordoned); node c-busy has 4 GiB memory free, 5 GiB requested');
    expect(failure(() => scheduleCompute([], vm())).message).toBe('no node can host virtual machine vm1: there are no nodes');
  });

  it('honours a pinned node that fits and explains one that does not', () => {
    const field = 'metadata.annotations["n0core/provisioning/virtual_machine/request_node_name"]';
    expect(scheduleCompute([idle, busy], vm(), { pinnedNode: 'c-busy' })).toEqual({ nodeName: 'c-busy' });
    const host1 = readyNode('vm-host1', { memory_bytes: 1 * GiB }, { reserved_computes: { other: { request_cpu_milli_core: 0, limit_cpu_milli_core: 1000, request_memory_bytes: 512 * MiB, limit_memory_bytes: 512 * MiB } } });
    const f = failure(() => scheduleCompute([host1, idle], vm(1 * GiB), { pinnedNode: 'vm-host1', pinnedField: field }));
    expect(f).toEqual({ code: 'FailedPrecondition', field, message: `cannot place virtual machine vm1: node vm-host1 has 512 MiB memory free, 1 GiB requested (${field})` });
    expect(failure(() => scheduleCompute([idle], vm(), { pinnedNode: 'vm-host9' })).message).toBe('cannot place virtual machine vm1 on node vm-host9: no such node');
    expect(failure(() => scheduleCompute([notReady], vm(), { pinnedNode: 'a-down' })).message).toBe('cannot place virtual machine vm1 on node a-down is not Ready (no heartbeat for 30s)');
    expect(failure(() => scheduleCompute([cordoned], vm(), { pinnedNode: 'b-cordoned' })).message).toContain('unschedulable');
  });

  it('places a VM where its block storages are', () => {
    expect(scheduleCompute([idle, busy], vm(), { blockStorages: [{ name: 'disk', nodeName: 'c-busy' }, { name: 'pending' }] })).toEqual({ nodeName: 'c-busy' });
    const split = failure(() => scheduleCompute([idle, busy], vm(), { blockStorages: [{ name: 'd1', nodeName: 'c-busy' }, { name: 'd2', nodeName: 'd-idle' }] }));
    expect(split.message).toBe('virtual machine vm1 cannot run: its block storages are on different nodes (d1 on c-busy, d2 on d-idle); a VM runs where all its disks are');
    expect(split.field).toBe('block_storage_names');
    const conflict = failure(() => scheduleCompute([idle, busy], vm(), { pinnedNode: 'd-idle', blockStorages: [{ name: 'd1', nodeName: 'c-busy' }] }));
    expect(conflict.message).toBe('virtual machine vm1 is pinned to node d-idle but its block storages d1 are on node c-busy');
    const full = failure(() => scheduleCompute([idle, busy], vm(5 * GiB), { blockStorages: [{ name: 'd1', nodeName: 'c-busy' }] }));
    expect(full.message).toBe('cannot place virtual machine vm1: node c-busy has 4 GiB memory free, 5 GiB requested (the node of block storage d1)');
  });

  it('schedules storage by requested bytes', () => {
    const small = readyNode('small', { storage_bytes: 10 * GiB });
    const big = readyNode('big', { storage_bytes: 100 * GiB }, { reserved_storages: { x: { request_bytes: 50 * GiB } } });
    expect(scheduleStorage([small, big], { name: 'd', requestBytes: 1 * GiB, limitBytes: 10 * GiB })).toEqual({ nodeName: 'small' });
    expect(scheduleStorage([small, big], { name: 'd', requestBytes: 20 * GiB, limitBytes: 20 * GiB })).toEqual({ nodeName: 'big' });
    expect(failure(() => scheduleStorage([small], { name: 'd', requestBytes: 20 * GiB, limitBytes: 20 * GiB }, { pinnedNode: 'small' })).message)
      .toBe('cannot place block storage d: node small has 10 GiB storage free, 20 GiB requested');
  });
});
