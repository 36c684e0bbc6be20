// Who may call an agent: the controllers (and the facade's console relay), never another node.
// Every node's certificate is signed by the same cluster CA and is also a client certificate (the
// agent presents it to the facade), so the TLS handshake alone would let one compromised host
// drive another host's VMs and disks; this interceptor refuses node identities before any RPC.
import * as grpc from '@grpc/grpc-js';
import { NODE_ORGANIZATION } from '../api/pki';

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export const refuseNodeClients: grpc.ServerInterceptor = (methodDescriptor, call) => {
  const listener = new grpc.ServerListenerBuilder()
    .withOnReceiveMetadata((metadata, next) => {
      const subject = call.getAuthContext()?.sslPeerCertificate?.subject as { CN?: string | string[]; O?: string | string[] } | undefined;
      if (first(subject?.O) === NODE_ORGANIZATION) {
        call.sendStatus({
          code: grpc.status.PERMISSION_DENIED,
          details: `${methodDescriptor.path}: node "${first(subject?.CN)}" may not call an agent; only the controllers may`,
          metadata: new grpc.Metadata(),
        });
        return;
      }
      next(metadata);
    })
    .build();
  return new grpc.ServerInterceptingCall(call, new grpc.ResponderBuilder().withStart((next) => next(listener)).build());
};
