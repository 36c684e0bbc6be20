// Whether a reservation fits a node: requests count against capacity, limits may overcommit
// within a ratio. Used for the seed's explicit Reserve*/Schedule* RPCs and by the controllers.
import { FailedPreconditionError } from './errors';
import type { Node } from './types';

export interface ComputeRequest { request_cpu_milli_core: number; limit_cpu_milli_core: number; request_memory_bytes: number; limit_memory_bytes: number }
export interface StorageRequest { request_bytes: number; limit_bytes: number }

export const OVERCOMMIT = { cpuLimit: 4, memoryLimit: 1, storageLimit: 10 };

const mib = (b: number) => `${Math.round(b / 1048576)} MiB`;

/** Throws FailedPreconditionError naming the shortfall when `key`'s reservation does not fit `node`. */
export function scheduleOn(node: Node, what: 'compute' | 'storage', key: string, value: ComputeRequest | StorageRequest): void {
  const name = node.metadata.name;
  if (what === 'compute') {
    const v = value as ComputeRequest;
    const others = Object.entries(node.status?.reserved_computes ?? {}).filter(([k]) => k !== key).map(([, r]) => r);
    const sum = (f: keyof ComputeRequest) => others.reduce((acc, r) => acc + (r[f] ?? 0), 0);
    const cpu = node.spec.cpu_milli_cores ?? 0;
    const mem = node.spec.memory_bytes ?? 0;
    if (sum('request_cpu_milli_core') + v.request_cpu_milli_core > cpu) throw new FailedPreconditionError(`node ${name} has ${cpu - sum('request_cpu_milli_core')} milli cores free, ${v.request_cpu_milli_core} requested`);
    if (sum('limit_cpu_milli_core') + v.limit_cpu_milli_core > cpu * OVERCOMMIT.cpuLimit) throw new FailedPreconditionError(`node ${name} cannot take a CPU limit of ${v.limit_cpu_milli_core} milli cores (overcommit ${OVERCOMMIT.cpuLimit}x of ${cpu} reached)`);
    if (sum('request_memory_bytes') + v.request_memory_bytes > mem) throw new FailedPreconditionError(`node ${name} has ${mib(mem - sum('request_memory_bytes'))} memory free, ${mib(v.request_memory_bytes)} requested`);
    if (sum('limit_memory_bytes') + v.limit_memory_bytes > mem * OVERCOMMIT.memoryLimit) throw new FailedPreconditionError(`node ${name} has ${mib(mem * OVERCOMMIT.memoryLimit - sum('limit_memory_bytes'))} memory left for limits, ${mib(v.limit_memory_bytes)} requested`);
  } else {
    const v = value as StorageRequest;
    const others = Object.entries(node.status?.reserved_storages ?? {}).filter(([k]) => k !== key).map(([, r]) => r);
    const requested = others.reduce((acc, r) => acc + (r.request_bytes ?? 0), 0);
    const limited = others.reduce((acc, r) => acc + (r.limit_bytes ?? 0), 0);
    const cap = node.spec.storage_bytes ?? 0;
    if (requested + v.request_bytes > cap) throw new FailedPreconditionError(`node ${name} has ${mib(cap - requested)} storage free, ${mib(v.request_bytes)} requested`);
    if (limited + v.limit_bytes > cap * OVERCOMMIT.storageLimit) throw new FailedPreconditionError(`node ${name} cannot take a storage limit of ${mib(v.limit_bytes)} (overcommit ${OVERCOMMIT.storageLimit}x reached)`);
  }
}
