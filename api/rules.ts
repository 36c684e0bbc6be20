// The seed's validation rules that hold for every write, whichever door it comes through (facade
// RPC or a document applied with n0ctl apply). Pure functions; InvalidArgumentError names the field.
import { InvalidArgumentError } from './errors';
import { validateName } from './names';
import type { BlockStorageSpec, VirtualMachineSpec } from './types';

export function checkVirtualMachineSpec(spec: VirtualMachineSpec): void {
  const limitCpu = spec.limit_cpu_milli_core;
  if (!Number.isInteger(limitCpu) || limitCpu <= 0 || limitCpu % 1000 !== 0) {
    throw new InvalidArgumentError(`limit_cpu_milli_core must be a positive multiple of 1000 (it is a number of whole cores), got ${limitCpu}`, 'limit_cpu_milli_core');
  }
  const requestCpu = spec.request_cpu_milli_core ?? limitCpu;
  if (requestCpu > limitCpu) {
    throw new InvalidArgumentError(`request_cpu_milli_core (${requestCpu}) must not exceed limit_cpu_milli_core (${limitCpu})`, 'request_cpu_milli_core');
  }
  const limitMemory = spec.limit_memory_bytes;
  if (!Number.isInteger(limitMemory) || limitMemory <= 0) {
    throw new InvalidArgumentError(`limit_memory_bytes must be a positive integer, got ${limitMemory}`, 'limit_memory_bytes');
  }
  if (spec.request_memory_bytes !== undefined && spec.request_memory_bytes !== limitMemory) {
    throw new InvalidArgumentError(`request_memory_bytes (${spec.request_memory_bytes}) must equal limit_memory_bytes (${limitMemory}): memory ballooning is disabled`, 'request_memory_bytes');
  }
  const seen = new Set<string>();
  (spec.block_storage_names ?? []).forEach((name, i) => {
    validateName(name, `block_storage_names[${i}]`);
    if (seen.has(name)) throw new InvalidArgumentError(`block_storage_names[${i}] "${name}" is listed twice`, `block_storage_names[${i}]`);
    seen.add(name);
  });
  (spec.nics ?? []).forEach((nic, i) => validateName(nic.network_name, `nics[${i}].network_name`));
}

export function checkBlockStorageSpec(spec: BlockStorageSpec): void {
  if (!Number.isInteger(spec.limit_bytes) || spec.limit_bytes <= 0) {
    throw new InvalidArgumentError(`limit_bytes must be a positive integer, got ${spec.limit_bytes}`, 'limit_bytes');
  }
  if (!Number.isInteger(spec.request_bytes) || spec.request_bytes < 0 || spec.request_bytes > spec.limit_bytes) {
    throw new InvalidArgumentError(`request_bytes must be between 0 and limit_bytes (${spec.limit_bytes}), got ${spec.request_bytes}`, 'request_bytes');
  }
  const sources = (['source_url', 'source_block_storage', 'backing_block_storage'] as const).filter((f) => spec[f]);
  if (sources.length > 1) throw new InvalidArgumentError(`only one of ${sources.join(', ')} may be set`, sources[1]);
  if (spec.source_url) {
    let url: URL;
    try { url = new URL(spec.source_url); } catch { throw new InvalidArgumentError(`source_url ${JSON.stringify(spec.source_url)} is not a URL`, 'source_url'); }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError(`source_url must be http or https, got ${url.protocol}`, 'source_url');
  }
  if (spec.source_block_storage) validateName(spec.source_block_storage, 'source_block_storage');
  if (spec.backing_block_storage) validateName(spec.backing_block_storage, 'backing_block_storage');
}
