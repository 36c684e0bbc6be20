// Serves prom-client's registry on /metrics.
import * as http from 'node:http';
import { register } from 'prom-client';

export async function startMetricsServer(listen: string): Promise<{ port: number; stop(): Promise<void> }> {
  const server = http.createServer(async (req, res) => {
    if (req.url !== '/metrics') { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'Content-Type': register.contentType }).end(await register.metrics());
  });
  const host = listen.replace(/:\d+$/, '');
  const port = Number(listen.split(':').pop());
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  return { port: (server.address() as { port: number }).port, stop: () => new Promise((r) => server.close(() => r())) };
}
