// Prometheus metrics of the reconcilers beyond the work queue's (controllers/runtime/workqueue.ts):
// how long a VM takes to reach a phase, which is what a user feels after `n0ctl apply`.
import { Histogram, register } from 'prom-client';
import type { VirtualMachine } from '../api/types';

export const vmPhaseTransition = (register.getSingleMetric('n0stack_vm_phase_transition_seconds') as Histogram<'phase'> | undefined) ?? new Histogram({
  name: 'n0stack_vm_phase_transition_seconds',
  help: 'Time from a VM\'s creation until it first reached the phase (creationTimestamp has 1 s resolution)',
  labelNames: ['phase'],
  buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
});

/**
 * Observes creation→Running once per VM: when the controller is about to report RUNNING for a VM
 * that has never been reported with an accelerator (the first ensureVm result sets it), so
 * reboots, shutdown/boot cycles and resyncs do not count again.
 */
export function observeFirstRunning(before: VirtualMachine, state: string, now = Date.now()): boolean {
  if (state !== 'RUNNING' || before.status?.state === 'RUNNING' || before.status?.accelerator) return false;
  const created = Date.parse(before.metadata.creationTimestamp ?? '');
  if (Number.isNaN(created)) return false;
  vmPhaseTransition.observe({ phase: 'Running' }, Math.max(0, now - created) / 1000);
  return true;
}
