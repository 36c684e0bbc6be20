// Prometheus metrics of the node agent and the optional /metrics listener of `n0stack agent`
// (agent/main.ts). The histogram lives in prom-client's global registry, so an agent running in
// the same process as the controllers (tests, benchmarks, `n0stack up`) is served by that one too.
import * as http from 'node:http';
import { Histogram, register } from 'prom-client';

export const agentRpcDuration = (register.getSingleMetric('n0stack_agent_rpc_duration_seconds') as Histogram<'method' | 'code'> | undefined) ?? new Histogram({
  name: 'n0stack_agent_rpc_duration_seconds',
  help: 'Latency of agent RPCs as served (EnsureVm includes taps, the cloud-init ISO and QEMU start up to QMP)',
  labelNames: ['method', 'code'],
  buckets: [0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
});

export interface MetricsListener { port: number; stop(): Promise<void> }

/** Serves the global registry on http://host:port/metrics (port 0 picks one). */
export async function serveMetrics(host: string, port: number): Promise<MetricsListener> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') { res.writeHead(404).end(); return; }
    register.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': register.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(err.message),
    );
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, () => resolve()));
  return {
    port: (server.address() as { port: number }).port,
    stop: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
