// What a node can still take. Requests are what scheduling counts against allocatable (capacity
// minus the requests already reserved); limits may overcommit capacity up to a ratio (CPU 4x by
// default: guests rarely use all their vCPUs; memory 1x: ballooning is off, so a guest may touch
// all of its memory; storage limits unbounded: disks are thin qcow2 files, only requests count).
import type { Node } from '../types';
import { formatBytes, formatCpu } from './quantity';

export interface Resources {
  cpuMilli: number;
  memoryBytes: number;
  storageBytes: number;
}

export interface OvercommitRatios {
  cpu: number;
  memory: number;
  storage: number;
}

export const DEFAULT_OVERCOMMIT: Readonly<OvercommitRatios> = Object.freeze({ cpu: 4, memory: 1, storage: Infinity });

export interface ComputeRequest {
  requestCpuMilli: number;
  limitCpuMilli: number;
  requestMemoryBytes: number;
  limitMemoryBytes: number;
}

export interface StorageRequest {
  requestBytes: number;
  limitBytes: number;
}

const ZERO: Resources = { cpuMilli: 0, memoryBytes: 0, storageBytes: 0 };

export function capacityOf(node: Node): Resources {
  return { cpuMilli: node.spec.cpu_milli_cores ?? 0, memoryBytes: node.spec.memory_bytes ?? 0, storageBytes: node.spec.storage_bytes ?? 0 };
}

export interface Reserved {
  requests: Resources;
  limits: Resources;
}

/**
 * Sums the node's reservations. `exclude` names a reservation to leave out (the object being
 * scheduled, so that scheduling it again is idempotent).
 */
export function reservedOf(node: Node, exclude?: { compute?: string; storage?: string }): Reserved {
  const requests = { ...ZERO };
  const limits = { ...ZERO };
  for (const [name, r] of Object.entries(node.status?.reserved_computes ?? {})) {
    if (name === exclude?.compute) continue;
    const limitCpu = r.limit_cpu_milli_core ?? r.request_cpu_milli_core ?? 0;
    const limitMem = r.limit_memory_bytes ?? r.request_memory_bytes ?? 0;
    requests.cpuMilli += r.request_cpu_milli_core ?? limitCpu;
    requests.memoryBytes += r.request_memory_bytes ?? limitMem;
    limits.cpuMilli += limitCpu;
    limits.memoryBytes += limitMem;
  }
  for (const [name, r] of Object.entries(node.status?.reserved_storages ?? {})) {
    if (name === exclude?.storage) continue;
    const limit = r.limit_bytes ?? r.request_bytes ?? 0;
    requests.storageBytes += r.request_bytes ?? limit;
    limits.storageBytes += limit;
  }
  return { requests, limits };
}

/** capacity − reserved requests, never below zero. */
export function allocatableOf(node: Node, exclude?: { compute?: string; storage?: string }): Resources {
  const cap = capacityOf(node);
  const { requests } = reservedOf(node, exclude);
  return {
    cpuMilli: Math.max(0, cap.cpuMilli - requests.cpuMilli),
    memoryBytes: Math.max(0, cap.memoryBytes - requests.memoryBytes),
    storageBytes: Math.max(0, cap.storageBytes - requests.storageBytes),
  };
}

export type Fit = { fits: true } | { fits: false; reason: string };

function ratioText(ratio: number): string {
  return `${ratio}x overcommit`;
}

/** status.allocatable as the Node document publishes it: written with every reservation change, so readers never see it lag. */
export function allocatableStatus(node: Node): { cpu_milli_cores: number; memory_bytes: number; storage_bytes: number } {
  const a = allocatableOf(node);
  return { cpu_milli_cores: a.cpuMilli, memory_bytes: a.memoryBytes, storage_bytes: a.storageBytes };
}

/** Checks requests against allocatable and limits against capacity × ratio; reasons read "has X free, Y requested". */
export function fitsCompute(node: Node, request: ComputeRequest, options: { ratios?: OvercommitRatios; exclude?: string } = {}): Fit {
  const ratios = options.ratios ?? DEFAULT_OVERCOMMIT;
  const cap = capacityOf(node);
  const { requests, limits } = reservedOf(node, { compute: options.exclude });
  const name = node.metadata.name;
  const freeMem = cap.memoryBytes - requests.memoryBytes;
  if (request.requestMemoryBytes > freeMem) {
    return { fits: false, reason: `node ${name} has ${formatBytes(Math.max(0, freeMem))} memory free, ${formatBytes(request.requestMemoryBytes)} requested` };
  }
  const freeCpu = cap.cpuMilli - requests.cpuMilli;
  if (request.requestCpuMilli > freeCpu) {
    return { fits: false, reason: `node ${name} has ${formatCpu(Math.max(0, freeCpu))} CPU free, ${formatCpu(request.requestCpuMilli)} requested` };
  }
  const memLimitRoom = cap.memoryBytes * ratios.memory - limits.memoryBytes;
  if (request.limitMemoryBytes > memLimitRoom) {
    return { fits: false, reason: `node ${name} has room for ${formatBytes(Math.max(0, memLimitRoom))} more memory limits (${formatBytes(cap.memoryBytes)} at ${ratioText(ratios.memory)}, ${formatBytes(limits.memoryBytes)} already limited), ${formatBytes(request.limitMemoryBytes)} requested` };
  }
  const cpuLimitRoom = cap.cpuMilli * ratios.cpu - limits.cpuMilli;
  if (request.limitCpuMilli > cpuLimitRoom) {
    return { fits: false, reason: `node ${name} has room for ${formatCpu(Math.max(0, cpuLimitRoom))} more CPU limits (${formatCpu(cap.cpuMilli)} at ${ratioText(ratios.cpu)}, ${formatCpu(limits.cpuMilli)} already limited), ${formatCpu(request.limitCpuMilli)} requested` };
  }
  return { fits: true };
}

export function fitsStorage(node: Node, request: StorageRequest, options: { ratios?: OvercommitRatios; exclude?: string } = {}): Fit {
  const ratios = options.ratios ?? DEFAULT_OVERCOMMIT;
  const cap = capacityOf(node);
  const { requests, limits } = reservedOf(node, { storage: options.exclude });
  const name = node.metadata.name;
  const free = cap.storageBytes - requests.storageBytes;
  if (request.requestBytes > free) {
    return { fits: false, reason: `node ${name} has ${formatBytes(Math.max(0, free))} storage free, ${formatBytes(request.requestBytes)} requested` };
  }
  const limitRoom = cap.storageBytes * ratios.storage - limits.storageBytes;
  if (request.limitBytes > limitRoom) {
    return { fits: false, reason: `node ${name} has room for ${formatBytes(Math.max(0, limitRoom))} more storage limits (${formatBytes(cap.storageBytes)} at ${ratioText(ratios.storage)}, ${formatBytes(limits.storageBytes)} already limited), ${formatBytes(request.limitBytes)} requested` };
  }
  return { fits: true };
}
