// Kubernetes-style conditions: lastTransitionTime moves only when status flips.
import type { Condition } from './types';

export interface ConditionInput {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
}

export function setCondition(conditions: Condition[] | undefined, input: ConditionInput, observedGeneration?: number, now = new Date()): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === input.type);
  const previous = index >= 0 ? list[index] : undefined;
  const next: Condition = {
    type: input.type,
    status: input.status,
    reason: input.reason ?? '',
    message: input.message ?? '',
    lastTransitionTime: previous && previous.status === input.status ? previous.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
  };
  if (index >= 0) list[index] = next; else list.push(next);
  return list;
}

export function getCondition(conditions: Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** The condition that changed last: what an object says now, whatever its type. */
export function latestCondition<C extends Pick<Condition, 'lastTransitionTime'>>(conditions: C[] | undefined): C | undefined {
  return [...(conditions ?? [])].sort((a, b) => b.lastTransitionTime.localeCompare(a.lastTransitionTime))[0];
}

/** Node condition: whether VMs on the node get KVM, with the boot probe's reason (agent/drivers/accel-probe.ts). */
export const KVM_CONDITION = 'KvmUsable';
