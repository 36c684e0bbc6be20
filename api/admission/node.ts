// Node admission: the schema covers a Node's spec today. The delete guard (a Node with placed VMs
// or disks is drained or refused) is a later part of issue [I]; it will live here.
import type { Strategy } from './types';

export const nodeStrategy: Strategy<'Node'> = {
  kind: 'Node',
  prepareForCreate: () => undefined,
  validateCreate: () => undefined,
  validateUpdate: () => undefined,
  references: () => [],
  dependants: () => [],
  validateDelete: () => undefined,
};
