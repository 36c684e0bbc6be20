// Prometheus metrics of the facade (served on /metrics by cli/metrics-server.ts).
import { Histogram, register } from 'prom-client';

export const rpcDuration = (register.getSingleMetric('n0stack_facade_rpc_duration_seconds') as Histogram<'method' | 'code'>) ?? new Histogram({
  name: 'n0stack_facade_rpc_duration_seconds',
  help: 'Latency of facade RPCs, including the wait for reconciliation',
  labelNames: ['method', 'code'],
  buckets: [0.005, 0.02, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300],
});
