import { allocatableOf, capacityOf, fitsCompute, fitsStorage, reservedOf } from './resources';
import { readyNode } from './testing';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

describe('resources', () => {
  const node = readyNode('vm-host1', { cpu_milli_cores: 2000, memory_bytes: 2 * GiB, storage_bytes: 20 * GiB }, {
    reserved_computes: {
      a: { request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 512 * MiB, limit_memory_bytes: 512 * MiB },
      b: { limit_cpu_milli_core: 2000, limit_memory_bytes: 1 * GiB }, // requests omitted: equal to limits
    },
    reserved_storages: { d1: { request_bytes: 1 * GiB, limit_bytes: 10 * GiB }, d2: { request_bytes: 5 * GiB } },
  });

  it('computes allocatable = capacity − reserved requests', () => {
    expect(capacityOf(node)).toEqual({ cpuMilli: 2000, memoryBytes: 2 * GiB, storageBytes: 20 * GiB });
    expect(reservedOf(node)).toEqual({
      requests: { cpuMilli: 2010, memoryBytes: 1536 * MiB, storageBytes: 6 * GiB },
      limits: { cpuMilli: 3000, memoryBytes: 1536 * MiB, storageBytes: 15 * GiB },
    });
    expect(allocatableOf(node)).toEqual({ cpuMilli: 0, memoryBytes: 512 * MiB, storageBytes: 14 * GiB });
    expect(allocatableOf(node, { compute: 'b', storage: 'd2' })).toEqual({ cpuMilli: 1990, memoryBytes: 1536 * MiB, storageBytes: 19 * GiB });
  });

  it('treats missing capacity as zero', () => {
    const bare = { ...readyNode('x'), spec: {} };
    expect(allocatableOf(bare)).toEqual({ cpuMilli: 0, memoryBytes: 0, storageBytes: 0 });
  });

  it('checks memory requests against allocatable with a message naming node and shortfall', () => {
    const fit = fitsCompute(node, { requestCpuMilli: 0, limitCpuMilli: 1000, requestMemoryBytes: 1 * GiB, limitMemoryBytes: 1 * GiB }, { exclude: 'b' });
    expect(fit).toEqual({ fits: true });
    const tooBig = fitsCompute(node, { requestCpuMilli: 0, limitCpuMilli: 1000, requestMemoryBytes: 1 * GiB, limitMemoryBytes: 1 * GiB });
    expect(tooBig).toEqual({ fits: false, reason: 'node vm-host1 has 512 MiB memory free, 1 GiB requested' });
  });

  it('checks cpu requests and lets cpu limits overcommit up to the ratio', () => {
    const n = readyNode('n', { cpu_milli_cores: 2000 }, { reserved_computes: { a: { request_cpu_milli_core: 100, limit_cpu_milli_core: 6000, request_memory_bytes: GiB, limit_memory_bytes: GiB } } });
    const req = (limit: number, request = 100) => ({ requestCpuMilli: request, limitCpuMilli: limit, requestMemoryBytes: 0, limitMemoryBytes: 0 });
    expect(fitsCompute(n, req(2000))).toEqual({ fits: true }); // 8000 of 8000 limits
    const over = fitsCompute(n, req(3000));
    expect(over.fits).toBe(false);
    expect(!over.fits && over.reason).toBe('node n has room for 2 cores more CPU limits (2 cores at 4x overcommit, 6 cores already limited), 3 cores requested');
    expect(fitsCompute(n, req(3000), { ratios: { cpu: 8, memory: 1, storage: Infinity } })).toEqual({ fits: true });
    const reqTooBig = fitsCompute(n, req(2000, 2000));
    expect(!reqTooBig.fits && reqTooBig.reason).toBe('node n has 1.9 cores CPU free, 2 cores requested');
  });

  it('does not overcommit memory limits by default', () => {
    const n = readyNode('n', { memory_bytes: 2 * GiB }, { reserved_computes: { a: { request_cpu_milli_core: 0, limit_cpu_milli_core: 1000, request_memory_bytes: 0, limit_memory_bytes: 1.5 * GiB } } });
    const fit = fitsCompute(n, { requestCpuMilli: 0, limitCpuMilli: 1000, requestMemoryBytes: 0, limitMemoryBytes: 1 * GiB });
    expect(!fit.fits && fit.reason).toMatch(/^node n has room for 512 MiB more memory limits .* 1 GiB requested$/);
  });

  it('counts storage requests; thin limits are unbounded by default', () => {
    expect(fitsStorage(node, { requestBytes: 14 * GiB, limitBytes: 1000 * GiB })).toEqual({ fits: true });
    const fit = fitsStorage(node, { requestBytes: 15 * GiB, limitBytes: 15 * GiB });
    expect(!fit.fits && fit.reason).toBe('node vm-host1 has 14 GiB storage free, 15 GiB requested');
    const capped = fitsStorage(node, { requestBytes: 1 * GiB, limitBytes: 10 * GiB }, { ratios: { cpu: 4, memory: 1, storage: 1 } });
    expect(!capped.fits && capped.reason).toMatch(/room for 5 GiB more storage limits/);
  });
});
