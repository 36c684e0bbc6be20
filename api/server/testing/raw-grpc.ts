// Random bytes on the wire for the fuzz tests: one HTTP/2 stream carrying a gRPC frame of random
// content, half-closed at once; resolves with the grpc-status the server answered ('' for none).
import * as http2 from 'node:http2';

export function sendRandomFrame(session: http2.ClientHttp2Session, rpcPath: string, rnd: () => number, headers: Record<string, string> = {}): Promise<string> {
  const length = Math.floor(rnd() * 256);
  const body = Buffer.concat([Buffer.from([0, 0, 0, 0, length]), Buffer.from(Array.from({ length }, () => Math.floor(rnd() * 256)))]);
  return new Promise<string>((resolve) => {
    const req = session.request({ ':method': 'POST', ':path': rpcPath, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    let grpcStatus = '';
    req.on('response', (h) => { grpcStatus = String(h['grpc-status'] ?? grpcStatus); });
    req.on('trailers', (h) => { grpcStatus = String(h['grpc-status'] ?? grpcStatus); });
    req.on('close', () => resolve(grpcStatus));
    req.on('error', () => resolve(grpcStatus));
    req.end(body);
    // A stream the server keeps open (a watch) is answered by then or counts as unanswered.
    setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), 5000).unref();
  });
}
