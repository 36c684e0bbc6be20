// The seed's rules for a VirtualMachine spec, as one pure function: limit_cpu_milli_core is whole
// cores (vcpus = limit / 1000), request_cpu ≤ limit_cpu, request_memory == limit_memory (memory
// ballooning is off; an omitted request means "equal to the limit"), every NIC names a network,
// a block storage is listed once. Returns the problem instead of throwing so a reconciler can
// put it into a condition; `vmShape` throws it.
import { InvalidArgumentError } from '../errors';
import { nameProblem } from '../names';
import type { VirtualMachineSpec } from '../types';
import { parseIPv4, parseIPv6, validateMac } from './ipam';
import type { ComputeRequest } from './resources';

export interface VmShape extends ComputeRequest {
  vcpus: number;
  memoryBytes: number;
}

function positiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

export function virtualMachineSpecProblem(spec: VirtualMachineSpec): InvalidArgumentError | undefined {
  const bad = (field: string, message: string) => new InvalidArgumentError(`${field} ${message}`, field);
  const limitCpu = spec.limit_cpu_milli_core;
  if (!positiveInteger(limitCpu) || limitCpu % 1000 !== 0) {
    return bad('limit_cpu_milli_core', `must be a positive multiple of 1000 (whole cores: limit_cpu_milli_core % 1000 == 0), got ${limitCpu}`);
  }
  const requestCpu = spec.request_cpu_milli_core;
  if (requestCpu !== undefined && (!Number.isSafeInteger(requestCpu) || requestCpu < 0)) {
    return bad('request_cpu_milli_core', `must be a non-negative integer, got ${requestCpu}`);
  }
  if (requestCpu !== undefined && requestCpu > limitCpu) {
    return bad('request_cpu_milli_core', `(${requestCpu}) must not exceed limit_cpu_milli_core (${limitCpu})`);
  }
  const limitMemory = spec.limit_memory_bytes;
  if (!positiveInteger(limitMemory)) return bad('limit_memory_bytes', `must be a positive integer, got ${limitMemory}`);
  if (spec.request_memory_bytes !== undefined && spec.request_memory_bytes !== limitMemory) {
    return bad('request_memory_bytes', `(${spec.request_memory_bytes}) must equal limit_memory_bytes (${limitMemory}): memory ballooning is disabled`);
  }
  const seen = new Map<string, number>();
  for (const [i, name] of (spec.block_storage_names ?? []).entries()) {
    const field = `block_storage_names[${i}]`;
    const problem = nameProblem(name);
    if (problem) return bad(field, `${JSON.stringify(name)} is invalid: ${problem}`);
    if (seen.has(name)) return bad(field, `"${name}" is already listed as block_storage_names[${seen.get(name)}]`);
    seen.set(name, i);
  }
  for (const [i, nic] of (spec.nics ?? []).entries()) {
    const field = `nics[${i}].network_name`;
    if (typeof nic.network_name !== 'string' || nic.network_name === '') return bad(field, 'must name a network');
    const problem = nameProblem(nic.network_name);
    if (problem) return bad(field, `${JSON.stringify(nic.network_name)} is invalid: ${problem}`);
    if (nic.ipv4_address && parseIPv4(nic.ipv4_address) === undefined) return bad(`nics[${i}].ipv4_address`, `${JSON.stringify(nic.ipv4_address)} is not an IPv4 address`);
    if (nic.ipv6_address && parseIPv6(nic.ipv6_address) === undefined) return bad(`nics[${i}].ipv6_address`, `${JSON.stringify(nic.ipv6_address)} is not an IPv6 address`);
    if (nic.hardware_address) {
      try { validateMac(nic.hardware_address, `nics[${i}].hardware_address`); } catch (err) { return err as InvalidArgumentError; }
    }
  }
  return undefined;
}

/** Validates and returns what the hypervisor and the scheduler need. */
export function vmShape(spec: VirtualMachineSpec): VmShape {
  const problem = virtualMachineSpecProblem(spec);
  if (problem) throw problem;
  const limitCpuMilli = spec.limit_cpu_milli_core;
  const memoryBytes = spec.limit_memory_bytes;
  return {
    vcpus: limitCpuMilli / 1000,
    memoryBytes,
    limitCpuMilli,
    requestCpuMilli: spec.request_cpu_milli_core ?? limitCpuMilli,
    limitMemoryBytes: memoryBytes,
    requestMemoryBytes: memoryBytes,
  };
}
