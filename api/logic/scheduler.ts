// Placement of VMs (CPU + memory) and block storages (disk space) on nodes. Pure: the caller
// passes the nodes it sees and writes the reservation itself (with optimistic concurrency, so two
// controllers choosing the same last free slot cannot both win).
import { FailedPreconditionError } from '../errors';
import type { Node } from '../types';
import { getCondition } from '../conditions';
import {
  capacityOf, fitsCompute, fitsStorage, reservedOf,
  type ComputeRequest, type Fit, type OvercommitRatios, type StorageRequest,
} from './resources';

export interface Placement {
  nodeName: string;
}

export interface ScheduleOptions {
  /** The node the user asked for (spec.node_name or the seed's request_node_name annotation). */
  pinnedNode?: string;
  /** Which field pinned it, for the error (e.g. `metadata.annotations["n0core/…/request_node_name"]`). */
  pinnedField?: string;
  ratios?: OvercommitRatios;
}

export interface ComputeScheduleRequest extends ComputeRequest {
  /** The VM's name: its own existing reservation is not counted against it. */
  name?: string;
}

export interface StorageScheduleRequest extends StorageRequest {
  name?: string;
}

export interface ComputeScheduleOptions extends ScheduleOptions {
  /** The VM's block storages and the node each is on (undefined while not yet placed). */
  blockStorages?: { name: string; nodeName?: string }[];
}

/** Ready by its Ready condition; by status.state when it has no conditions yet. */
export function isNodeReady(node: Node): boolean {
  const ready = getCondition(node.status?.conditions, 'Ready');
  return ready ? ready.status === 'True' : node.status?.state === 'Ready';
}

function unusable(node: Node): string | undefined {
  const name = node.metadata.name;
  if (node.metadata.deletionTimestamp) return `node ${name} is being deleted`;
  if (node.spec.unschedulable) return `node ${name} is unschedulable (cordoned)`;
  if (!isNodeReady(node)) {
    const ready = getCondition(node.status?.conditions, 'Ready');
    return `node ${name} is not Ready${ready?.message ? ` (${ready.message})` : ''}`;
  }
  return undefined;
}

function describeWho(kind: string, name?: string): string {
  return name ? `${kind} ${name}` : kind;
}

function choose(
  nodes: Node[], options: ScheduleOptions, who: string,
  fit: (node: Node) => Fit, load: (node: Node) => number,
): Placement {
  const sorted = [...nodes].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  if (options.pinnedNode !== undefined) {
    const via = options.pinnedField ? ` (${options.pinnedField})` : '';
    const node = sorted.find((n) => n.metadata.name === options.pinnedNode);
    if (!node) throw new FailedPreconditionError(`cannot place ${who} on node ${options.pinnedNode}${via}: no such node`, options.pinnedField);
    const problem = unusable(node);
    if (problem) throw new FailedPreconditionError(`cannot place ${who} on ${problem}${via}`, options.pinnedField);
    const f = fit(node);
    if (!f.fits) throw new FailedPreconditionError(`cannot place ${who}: ${f.reason}${via}`, options.pinnedField);
    return { nodeName: node.metadata.name };
  }
  const reasons: string[] = [];
  let best: { node: Node; load: number } | undefined;
  for (const node of sorted) {
    const problem = unusable(node);
    if (problem) { reasons.push(problem); continue; }
    const f = fit(node);
    if (!f.fits) { reasons.push(f.reason); continue; }
    const l = load(node);
    // Strictly less: ties keep the earlier name, so the choice is deterministic.
    if (!best || l < best.load) best = { node, load: l };
  }
  if (!best) {
    throw new FailedPreconditionError(`no node can host ${who}${reasons.length ? `: ${reasons.join('; ')}` : ': there are no nodes'}`);
  }
  return { nodeName: best.node.metadata.name };
}

function fraction(used: number, capacity: number): number {
  return capacity > 0 ? used / capacity : Infinity;
}

export function scheduleCompute(nodes: Node[], request: ComputeScheduleRequest, options: ComputeScheduleOptions = {}): Placement {
  const who = describeWho('virtual machine', request.name);
  const placed = (options.blockStorages ?? []).filter((b) => b.nodeName !== undefined);
  const storageNodes = [...new Set(placed.map((b) => b.nodeName!))];
  if (storageNodes.length > 1) {
    throw new FailedPreconditionError(`${who} cannot run: its block storages are on different nodes (${placed.map((b) => `${b.name} on ${b.nodeName}`).join(', ')}); a VM runs where all its disks are`, 'block_storage_names');
  }
  let opts: ScheduleOptions = options;
  if (storageNodes.length === 1) {
    const storageNode = storageNodes[0];
    if (options.pinnedNode !== undefined && options.pinnedNode !== storageNode) {
      throw new FailedPreconditionError(`${who} is pinned to node ${options.pinnedNode}${options.pinnedField ? ` (${options.pinnedField})` : ''} but its block storages ${placed.map((b) => b.name).join(', ')} are on node ${storageNode}`, options.pinnedField ?? 'block_storage_names');
    }
    opts = { ...options, pinnedNode: storageNode, pinnedField: options.pinnedField ?? `the node of block storage ${placed[0].name}` };
  }
  return choose(nodes, opts, who,
    (node) => fitsCompute(node, request, { ratios: options.ratios, exclude: request.name }),
    (node) => {
      const cap = capacityOf(node);
      const used = reservedOf(node, { compute: request.name }).requests;
      return fraction(used.cpuMilli + request.requestCpuMilli, cap.cpuMilli) + fraction(used.memoryBytes + request.requestMemoryBytes, cap.memoryBytes);
    });
}

export function scheduleStorage(nodes: Node[], request: StorageScheduleRequest, options: ScheduleOptions = {}): Placement {
  const who = describeWho('block storage', request.name);
  return choose(nodes, options, who,
    (node) => fitsStorage(node, request, { ratios: options.ratios, exclude: request.name }),
    (node) => fraction(reservedOf(node, { storage: request.name }).requests.storageBytes + request.requestBytes, capacityOf(node).storageBytes));
}
