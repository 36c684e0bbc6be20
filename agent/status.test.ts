import { Metadata, status as Status } from '@grpc/grpc-js';
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
  isN0Error,
} from '../api/errors';
import { CommandError } from './exec';
import { FIELD_METADATA_KEY, fromGrpcError, toGrpcStatus } from './status';

describe('error mapping', () => {
  test.each<[Error, Status]>([
    [new InvalidArgumentError('name "X" is invalid', 'name'), Status.INVALID_ARGUMENT],
    [new NotFoundError('virtual machine', 'vm1'), Status.NOT_FOUND],
    [new FailedPreconditionError('block storage "d" does not exist', 'block_storage_names'), Status.FAILED_PRECONDITION],
    [new ConflictError('Node', 'n1'), Status.ABORTED],
    [new AlreadyExistsError('disk', '/x'), Status.ALREADY_EXISTS],
    [new UnavailableError('etcd is down'), Status.UNAVAILABLE],
    [new DeadlineExceededError('too slow'), Status.DEADLINE_EXCEEDED],
    [new TooOldError('5'), Status.OUT_OF_RANGE],
    [new N0Error('Internal', 'boom'), Status.INTERNAL],
    [new CommandError('ip', ['link'], 2, 'RTNETLINK answers: Operation not permitted'), Status.INTERNAL],
    [new Error('plain'), Status.INTERNAL],
  ])('%s → code %i and back', (err, code) => {
    const s = toGrpcStatus(err);
    expect(s.code).toBe(code);
    expect(s.details).toBe(err.message);
    const back = fromGrpcError({ code: s.code, details: s.details, metadata: s.metadata, message: `${s.code} ${s.details}` });
    expect(back.message).toBe(err.message);
    if (err instanceof N0Error) {
      expect(isN0Error(back, err.code)).toBe(true);
      expect(back.constructor).toBe(err.constructor);
      expect((back as N0Error).field).toBe(err.field);
    } else {
      expect(isN0Error(back, 'Internal')).toBe(true);
    }
  });

  test('the field travels in metadata', () => {
    const s = toGrpcStatus(new InvalidArgumentError('nics[0].hardware_address bad', 'nics[0].hardware_address'));
    expect(s.metadata.get(FIELD_METADATA_KEY)).toEqual(['nics[0].hardware_address']);
  });

  test('transport failures are Unavailable for controllers', () => {
    for (const code of [Status.UNAVAILABLE, Status.CANCELLED, Status.UNAUTHENTICATED]) {
      expect(fromGrpcError({ code, details: 'x', metadata: new Metadata() })).toBeInstanceOf(UnavailableError);
    }
    expect(fromGrpcError({ code: Status.UNKNOWN, details: 'x' })).toBeInstanceOf(N0Error);
  });
});
