// Builders for the logic tests (not exported from index.ts).
import type { Node } from '../types';

const GiB = 2 ** 30;

export function readyNode(name: string, spec: Partial<Node['spec']> = {}, status: Partial<NonNullable<Node['status']>> = {}): Node {
  return {
    apiVersion: 'n0stack.io/v1alpha1', kind: 'Node', metadata: { name },
    spec: { cpu_milli_cores: 4000, memory_bytes: 8 * GiB, storage_bytes: 100 * GiB, ...spec },
    status: { state: 'Ready', conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: '2024-01-01T00:00:00Z' }], ...status },
  };
}
