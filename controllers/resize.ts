// A placed VM whose cpu or memory was raised: the raise is committed against its node's placement
// counter (api/placement.ts), as a placement is, before it takes effect. Admission refuses a raise
// the node cannot hold, but two raises admitted side by side (each judged without the other) can
// together overcommit; the counter's CAS makes the later commit count the earlier raise.
import { FailedPreconditionError, isN0Error } from '../api/errors';
import { raisedCompute } from '../api/admission/virtualmachine';
import { commitPlacement, type Reservation } from '../api/placement';
import type { VirtualMachine } from '../api/types';
import type { ReconcileContext } from './runtime/types';
import { cacheView } from './usage';

/**
 * Commits `vm`'s compute (`reservation`) on `nodeName` when it asks more than the node last
 * accepted (status.allocated_compute). FailedPrecondition naming the raised field when it does not fit; the VM keeps
 * running at the size it had, and what the node gives away already counts the raise.
 */
export async function commitRaise(ctx: ReconcileContext, vm: VirtualMachine, nodeName: string, reservation: Reservation & { what: 'compute' }): Promise<void> {
  const allocated = vm.status?.allocated_compute as Reservation['value'] | undefined;
  // A VM placed before the field was recorded is taken at its size (its next write records it):
  // judging it now could stop a running VM on a node its upgrade found already full.
  const raised = raisedCompute(allocated as never, reservation.value);
  if (!raised.length) return;
  try {
    await commitPlacement(ctx.store, cacheView(ctx), nodeName, { kind: 'VirtualMachine', key: vm.metadata.name, resourceVersion: vm.metadata.resourceVersion!, reservation });
  } catch (err) {
    if (!isN0Error(err, 'FailedPrecondition')) throw err;
    throw new FailedPreconditionError(`${raised[0]}: the resize does not fit node ${nodeName}; the VM keeps its size until it does: ${(err as Error).message}`, raised[0]);
  }
}
