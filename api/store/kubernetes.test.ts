// How Kubernetes API failures become the Store's typed errors (the one place they are mapped).
import { ApiException } from '@kubernetes/client-node';
import { mapError } from './kubernetes';

const status = (code: number, reason: string, message: string, field?: string) =>
  new ApiException(code, 'Unknown API Status Code!', JSON.stringify({ kind: 'Status', code, reason, message, details: field ? { causes: [{ field, message }] } : {} }), {});

describe('mapError', () => {
  it('tells AlreadyExists from an optimistic-concurrency Conflict', () => {
    expect(mapError(status(409, 'AlreadyExists', 'networks.n0stack.io "a" already exists'), 'create', 'Network', 'a').code).toBe('AlreadyExists');
    const conflict = mapError(status(409, 'Conflict', 'the object has been modified'), 'update', 'Network', 'a');
    expect(conflict.code).toBe('Conflict');
    expect(conflict.message).toMatch(/Network "a".*modified/);
  });
  it('maps 404, 410, 401/403 and 5xx, naming the object', () => {
    expect(mapError(status(404, 'NotFound', 'x'), 'get', 'Node', 'n1').message).toBe('Node "n1" not found');
    expect(mapError(status(410, 'Expired', 'too old resource version: 3 (9)'), 'watch', 'Node', '*').code).toBe('TooOld');
    expect(mapError(new ApiException(401, 'Unauthorized', undefined, {}), 'list', 'Node', '*').code).toBe('FailedPrecondition');
    expect(mapError(status(503, 'ServiceUnavailable', 'etcd down'), 'get', 'Node', 'n1').message).toMatch(/HTTP 503.*etcd down/);
  });
  it('keeps the field of a 422, and turns a failed JSON Patch test into a Conflict', () => {
    const invalid = mapError(status(422, 'Invalid', 'Network.n0stack.io "a" is invalid: spec.ipv4_cidr: Invalid value', 'spec.ipv4_cidr'), 'update', 'Network', 'a');
    expect(invalid).toMatchObject({ code: 'InvalidArgument', field: 'spec.ipv4_cidr' });
    expect(mapError(status(422, 'Invalid', 'testing value /spec/domain failed: test failed'), 'patch', 'Network', 'a').code).toBe('Conflict');
  });
  it('maps transport failures to Unavailable and timeouts to DeadlineExceeded', () => {
    expect(mapError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), 'get', 'Node', 'n1').code).toBe('Unavailable');
    expect(mapError(Object.assign(new Error('The operation was aborted'), { name: 'AbortError' }), 'get', 'Node', 'n1').code).toBe('DeadlineExceeded');
  });
});
