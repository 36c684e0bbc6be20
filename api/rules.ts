// The seed's validation rules that hold for every write, whichever door it comes through (facade
// RPC or a document applied with n0ctl apply). Pure functions; InvalidArgumentError names the field.
import { InvalidArgumentError } from './errors';
import { validateName } from './names';
import type { BlockStorageSpec, VirtualMachineSpec } from './types';
import { virtualMachineSpecProblem } from './logic/vm';

export function checkVirtualMachineSpec(spec: VirtualMachineSpec): void {
  const problem = virtualMachineSpecProblem(spec);
  if (problem) throw problem;
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
