// The one place where n0stack errors become gRPC statuses (and back, for clients).
import { status as GrpcStatus, type ServiceError, Metadata } from '@grpc/grpc-js';
import { N0Error, type ErrorCode } from '../errors';

const TO_GRPC: Record<ErrorCode, GrpcStatus> = {
  InvalidArgument: GrpcStatus.INVALID_ARGUMENT,
  NotFound: GrpcStatus.NOT_FOUND,
  AlreadyExists: GrpcStatus.ALREADY_EXISTS,
  Conflict: GrpcStatus.ABORTED,
  FailedPrecondition: GrpcStatus.FAILED_PRECONDITION,
  TooOld: GrpcStatus.OUT_OF_RANGE,
  Unavailable: GrpcStatus.UNAVAILABLE,
  DeadlineExceeded: GrpcStatus.DEADLINE_EXCEEDED,
  Internal: GrpcStatus.INTERNAL,
};

export function toServiceError(err: unknown): Partial<ServiceError> {
  const metadata = new Metadata();
  if (err instanceof N0Error) {
    if (err.field) metadata.set('n0stack-field', err.field);
    return { code: TO_GRPC[err.code], details: err.message, message: err.message, metadata };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: GrpcStatus.INTERNAL, details: `internal error: ${message}`, message, metadata };
}

export function codeToErrorCode(code: GrpcStatus): ErrorCode {
  for (const [k, v] of Object.entries(TO_GRPC)) if (v === code) return k as ErrorCode;
  return code === GrpcStatus.UNAVAILABLE ? 'Unavailable' : 'Internal';
}
