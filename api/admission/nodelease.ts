// NodeLease admission: the schema says all there is (a name, a holder, a time). Nothing depends on
// a lease: deleting one only makes its Node look silent until the agent's next renewal creates it again.
import type { Strategy } from './types';

export const nodeLeaseStrategy: Strategy<'NodeLease'> = {
  kind: 'NodeLease',
  prepareForCreate: () => undefined,
  validateCreate: () => undefined,
  validateUpdate: () => undefined,
  references: () => [],
  dependants: () => [],
  validateDelete: () => undefined,
};
