// The one place the agent's typed errors (api/errors.ts) become gRPC statuses and back. The
// message is kept verbatim; the field an InvalidArgument/FailedPrecondition names travels in the
// trailing metadata key "n0-field" so controllers can put it in a condition.
import { Metadata, status as Status, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import {
  AlreadyExistsError,
  ConflictError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  N0Error,
  NotFoundError,
  TooOldError,
  UnavailableError,
  type ErrorCode,
} from '../api/errors';

export const FIELD_METADATA_KEY = 'n0-field';

const TO_GRPC: Record<ErrorCode, Status> = {
  InvalidArgument: Status.INVALID_ARGUMENT,
  NotFound: Status.NOT_FOUND,
  AlreadyExists: Status.ALREADY_EXISTS,
  Conflict: Status.ABORTED,
  FailedPrecondition: Status.FAILED_PRECONDITION,
  TooOld: Status.OUT_OF_RANGE,
  Unavailable: Status.UNAVAILABLE,
  DeadlineExceeded: Status.DEADLINE_EXCEEDED,
  Internal: Status.INTERNAL,
};

/** Server side: any thrown value → a status object for callback(err) / call.destroy(err). */
export function toGrpcStatus(err: unknown): Pick<StatusObject, 'code' | 'details' | 'metadata'> {
  const metadata = new Metadata();
  if (err instanceof N0Error) {
    if (err.field) metadata.set(FIELD_METADATA_KEY, err.field);
    return { code: TO_GRPC[err.code], details: err.message, metadata };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: Status.INTERNAL, details: message, metadata };
}

/** Builds an N0Error of the given code with exactly `message` (constructors format their own). */
function withMessage<T extends Error>(error: T, message: string): T {
  error.message = message;
  return error;
}

/** Client side: a grpc ServiceError → the typed error controllers branch on. */
export function fromGrpcError(err: Partial<ServiceError> & { message?: string }): Error {
  const details = err.details ?? err.message ?? 'unknown error';
  const fieldValue = err.metadata?.get(FIELD_METADATA_KEY)[0];
  const field = typeof fieldValue === 'string' ? fieldValue : undefined;
  switch (err.code) {
    case Status.INVALID_ARGUMENT: return new InvalidArgumentError(details, field);
    case Status.NOT_FOUND: return withMessage(new NotFoundError('', ''), details);
    case Status.ALREADY_EXISTS: return withMessage(new AlreadyExistsError('', ''), details);
    case Status.ABORTED: return withMessage(new ConflictError('', ''), details);
    case Status.FAILED_PRECONDITION: return new FailedPreconditionError(details, field);
    case Status.OUT_OF_RANGE: return withMessage(new TooOldError(''), details);
    case Status.DEADLINE_EXCEEDED: return new DeadlineExceededError(details);
    // Connection refused, TLS refused, agent restarting: all "try again later" for a controller.
    case Status.UNAVAILABLE:
    case Status.CANCELLED:
    case Status.UNAUTHENTICATED:
    case Status.PERMISSION_DENIED:
      return new UnavailableError(details);
    default: return new N0Error('Internal', details, field);
  }
}
