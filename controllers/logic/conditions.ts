// Conditions as controllers write them. The implementation lives in api/conditions.ts (the facade
// reads them too); this wrapper takes `now` before observedGeneration because every reconciler
// passes a clock (tests pin it) while observedGeneration is optional.
import * as api from '../../api/conditions';
import type { Condition } from '../../api/types';

export type { ConditionInput } from '../../api/conditions';

export function setCondition(
  conditions: Condition[] | undefined,
  input: api.ConditionInput,
  now: Date = new Date(),
  observedGeneration?: number,
): Condition[] {
  return api.setCondition(conditions, input, observedGeneration, now);
}

export function getCondition(conditions: Condition[] | undefined, type: string): Condition | undefined {
  return api.getCondition(conditions, type);
}

export function isTrue(conditions: Condition[] | undefined, type: string): boolean {
  return getCondition(conditions, type)?.status === 'True';
}

/** True when setting `input` would change anything but lastTransitionTime (so a status write is needed). */
export function conditionChanged(conditions: Condition[] | undefined, input: api.ConditionInput, observedGeneration?: number): boolean {
  const c = getCondition(conditions, input.type);
  return !c || c.status !== input.status || (c.reason ?? '') !== (input.reason ?? '') || (c.message ?? '') !== (input.message ?? '')
    || (observedGeneration !== undefined && c.observedGeneration !== observedGeneration);
}
