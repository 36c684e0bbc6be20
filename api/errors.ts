// Typed errors that callers branch on. The facade maps them to gRPC codes in exactly one place
// (api/server/status.ts); everything below the facade throws these, never raw gRPC statuses.

export type ErrorCode =
  | 'InvalidArgument'
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'FailedPrecondition'
  | 'TooOld'
  | 'Unavailable'
  | 'DeadlineExceeded'
  | 'Internal';

export class N0Error extends Error {
  constructor(readonly code: ErrorCode, message: string, readonly field?: string) {
    super(message);
    this.name = `${code}Error`;
  }
}

export class InvalidArgumentError extends N0Error {
  constructor(message: string, field?: string) { super('InvalidArgument', message, field); }
}
export class NotFoundError extends N0Error {
  constructor(kind: string, name: string) { super('NotFound', `${kind} "${name}" not found`); }
}
export class AlreadyExistsError extends N0Error {
  constructor(kind: string, name: string) { super('AlreadyExists', `${kind} "${name}" already exists`); }
}
/** Optimistic concurrency failure: the resourceVersion the caller held is no longer current. */
export class ConflictError extends N0Error {
  constructor(kind: string, name: string, detail = 'the object has been modified; read it again and retry') {
    super('Conflict', `${kind} "${name}": ${detail}`);
  }
}
export class FailedPreconditionError extends N0Error {
  constructor(message: string, field?: string) { super('FailedPrecondition', message, field); }
}
/** A watch asked to resume from a revision that the store has already compacted away. */
export class TooOldError extends N0Error {
  constructor(revision: string, detail = '') {
    super('TooOld', `resourceVersion ${revision} is too old (compacted)${detail ? `: ${detail}` : ''}; list again and watch from the new resourceVersion`);
  }
}
export class UnavailableError extends N0Error {
  constructor(message: string) { super('Unavailable', message); }
}
export class DeadlineExceededError extends N0Error {
  constructor(message: string) { super('DeadlineExceeded', message); }
}

export function isN0Error(err: unknown, code?: ErrorCode): err is N0Error {
  return err instanceof N0Error && (code === undefined || err.code === code);
}
