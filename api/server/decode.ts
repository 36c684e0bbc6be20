// Requests whose bytes are no message of their type. grpc-js answers those itself with INTERNAL
// ("Error deserializing request") before any handler runs, which reads as the server's fault and
// hides the caller's; the facade and the agent register their services through tolerant() and
// answer them INVALID_ARGUMENT from the handler instead (after authentication, so a stranger
// learns nothing more).
import type * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError } from '../errors';

const UNDECODABLE = Symbol('undecodable');

/** The service with request decoders that mark what they cannot decode instead of throwing. */
export function tolerant(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  return Object.fromEntries(Object.entries(service).map(([name, m]) => [name, {
    ...m,
    requestDeserialize: (bytes: Buffer) => {
      try { return m.requestDeserialize(bytes); } catch (err) { return { [UNDECODABLE]: (err as Error).message }; }
    },
  }]));
}

/** The INVALID_ARGUMENT a marked request gets; undefined for a decoded one. */
export function undecodable(request: unknown, rpc: string): InvalidArgumentError | undefined {
  const why = (request as { [UNDECODABLE]?: string } | null)?.[UNDECODABLE];
  return why === undefined ? undefined : new InvalidArgumentError(`the request is no ${rpc} message: ${why}`);
}
