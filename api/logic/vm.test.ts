import type { VirtualMachineSpec } from '../types';
import { virtualMachineSpecProblem, vmShape } from './vm';

const MiB = 2 ** 20;
// The seed's example VM.
const seed: VirtualMachineSpec = {
  request_cpu_milli_core: 10, limit_cpu_milli_core: 1000, request_memory_bytes: 512 * MiB, limit_memory_bytes: 512 * MiB,
  block_storage_names: ['ubuntu-1804'], nics: [{ network_name: 'debug_ipv6', ipv4_address: '192.168.100.10' }],
};

describe('virtual machine spec rules', () => {
  it('accepts the seed example and derives vcpus and requests', () => {
    expect(virtualMachineSpecProblem(seed)).toBeUndefined();
    expect(vmShape(seed)).toEqual({ vcpus: 1, memoryBytes: 512 * MiB, limitCpuMilli: 1000, requestCpuMilli: 10, limitMemoryBytes: 512 * MiB, requestMemoryBytes: 512 * MiB });
    expect(vmShape({ limit_cpu_milli_core: 4000, limit_memory_bytes: 1024 })).toMatchObject({ vcpus: 4, requestCpuMilli: 4000, requestMemoryBytes: 1024 });
  });

  const cases: [string, Partial<VirtualMachineSpec>, string, RegExp][] = [
    ['cpu not whole cores', { limit_cpu_milli_core: 1500 }, 'limit_cpu_milli_core', /multiple of 1000.*1500/],
    ['zero cpu', { limit_cpu_milli_core: 0 }, 'limit_cpu_milli_core', /positive/],
    ['request above limit', { request_cpu_milli_core: 2000 }, 'request_cpu_milli_core', /\(2000\) must not exceed limit_cpu_milli_core \(1000\)/],
    ['negative request', { request_cpu_milli_core: -1 }, 'request_cpu_milli_core', /non-negative/],
    ['memory request differs', { request_memory_bytes: 256 * MiB }, 'request_memory_bytes', /must equal limit_memory_bytes.*ballooning/],
    ['no memory', { limit_memory_bytes: 0, request_memory_bytes: undefined }, 'limit_memory_bytes', /positive integer/],
    ['duplicate disk', { block_storage_names: ['a', 'b', 'a'] }, 'block_storage_names[2]', /"a" is already listed as block_storage_names\[0\]/],
    ['bad disk name', { block_storage_names: ['../etc'] }, 'block_storage_names[0]', /invalid/],
    ['empty network', { nics: [{ network_name: 'ok' }, { network_name: '' }] }, 'nics[1].network_name', /must name a network/],
    ['bad network name', { nics: [{ network_name: 'Bad Name' }] }, 'nics[0].network_name', /invalid/],
    ['bad ipv4', { nics: [{ network_name: 'n', ipv4_address: '10.0.0.300' }] }, 'nics[0].ipv4_address', /not an IPv4 address/],
    ['bad ipv6', { nics: [{ network_name: 'n', ipv6_address: 'fd00::g' }] }, 'nics[0].ipv6_address', /not an IPv6 address/],
    ['multicast mac', { nics: [{ network_name: 'n', hardware_address: '03:00:00:00:00:01' }] }, 'nics[0].hardware_address', /multicast/],
  ];
  it.each(cases)('rejects %s naming the field', (_what, change, field, message) => {
    const problem = virtualMachineSpecProblem({ ...seed, ...change } as VirtualMachineSpec);
    expect(problem?.code).toBe('InvalidArgument');
    expect(problem?.field).toBe(field);
    expect(problem?.message.startsWith(field)).toBe(true);
    expect(problem?.message).toMatch(message);
    expect(() => vmShape({ ...seed, ...change } as VirtualMachineSpec)).toThrow(problem!.message);
  });
});
