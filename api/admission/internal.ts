// Admission of the small internal kinds, whose schema says all there is. NodeLease: nothing depends
// on a lease; deleting one only makes its Node look silent until the agent's next renewal. Reservation:
// written by the seed's Reserve*/Schedule* RPCs after placement's checks (api/placement.ts).
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

export const reservationStrategy: Strategy<'Reservation'> = { ...nodeLeaseStrategy, kind: 'Reservation' } as unknown as Strategy<'Reservation'>;
