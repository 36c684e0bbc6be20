// Whether a reservation fits a node, in the seed's field names (the facade's Reserve*/Schedule*
// RPCs and the reconcilers' CAS reservations), over api/logic/resources.ts.
import { FailedPreconditionError } from './errors';
import { fitsCompute, fitsStorage } from './logic/resources';
import type { Node } from './types';

export interface ComputeRequest { request_cpu_milli_core: number; limit_cpu_milli_core: number; request_memory_bytes: number; limit_memory_bytes: number }
export interface StorageRequest { request_bytes: number; limit_bytes: number }

/** Throws FailedPreconditionError naming the shortfall when `key`'s reservation does not fit `node`. */
export function scheduleOn(node: Node, what: 'compute' | 'storage', key: string, value: ComputeRequest | StorageRequest): void {
  const fit = what === 'compute'
    ? fitsCompute(node, {
        requestCpuMilli: (value as ComputeRequest).request_cpu_milli_core, limitCpuMilli: (value as ComputeRequest).limit_cpu_milli_core,
        requestMemoryBytes: (value as ComputeRequest).request_memory_bytes, limitMemoryBytes: (value as ComputeRequest).limit_memory_bytes,
      }, { exclude: key })
    : fitsStorage(node, { requestBytes: (value as StorageRequest).request_bytes, limitBytes: (value as StorageRequest).limit_bytes }, { exclude: key });
  if (!fit.fits) throw new FailedPreconditionError(fit.reason);
}
