// A fencing token for store writes, carried by the async context of the work that writes (the
// controllers run each reconcile inside one while they lead). A backend that can make a write
// conditional on the token does so in the write's own transaction: etcd puts and deletes also
// require the leader's election key to exist, so a write of a leader whose lease has ended (revoked,
// or expired under a stalled process) cannot land, however late it is sent. Backends without
// transactions over two keys ignore it.
import { AsyncLocalStorage } from 'node:async_hooks';
import { UnavailableError } from '../errors';

export interface WriteFence {
  /** A key that exists exactly as long as the writer may write (etcd: the election key, bound to its lease). */
  key: string;
}

export const writeFence = new AsyncLocalStorage<WriteFence>();

/** The fence refused a write: final for this writer (a backend must not retry it as a transient failure). */
export class FenceLostError extends UnavailableError {}

export function fenceLost(fence: WriteFence, what: string): FenceLostError {
  return new FenceLostError(`not leading (the lease fencing this write has ended; ${fence.key} is gone): ${what} not written`);
}
