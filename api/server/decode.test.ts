import * as grpc from '@grpc/grpc-js';
import { tolerant, undecodable } from './decode';
import { loadFacadeProto } from './proto';

const service = () => {
  const definition = loadFacadeProto();
  const key = Object.keys(definition).find((k) => k.endsWith('.NetworkService'))!;
  return definition[key] as unknown as grpc.ServiceDefinition;
};

describe('tolerant request decoding', () => {
  it('decodes what it can as before, and marks what it cannot instead of throwing', () => {
    const original = service().GetNetwork;
    const wrapped = tolerant(service()).GetNetwork;
    const good = original.requestSerialize({ name: 'net1' });
    expect(wrapped.requestDeserialize(good)).toEqual(original.requestDeserialize(good));
    expect(undecodable(wrapped.requestDeserialize(good), 'NetworkService.GetNetwork')).toBeUndefined();
    const bad = Buffer.alloc(11, 0xff); // a varint tag that never ends, then wire type 7, which does not exist
    expect(() => original.requestDeserialize(bad)).toThrow();
    const err = undecodable(wrapped.requestDeserialize(bad), 'NetworkService.GetNetwork');
    expect(err).toMatchObject({ code: 'InvalidArgument', message: expect.stringMatching(/^the request is no NetworkService\.GetNetwork message: /) });
    expect(wrapped.path).toBe(original.path);
  });

  it('leaves ordinary requests alone', () => {
    expect(undecodable({ name: 'x' }, 'X.Y')).toBeUndefined();
    expect(undecodable(null, 'X.Y')).toBeUndefined();
  });
});
