// What the benchmarks that drive a real control plane share: cleanups run in reverse order, and
// the real facade on a loopback port with a client of it.
import { randomBytes } from 'node:crypto';
import type { Store } from '../api/store/store';
import { FacadeClient } from '../cli/client';
import { startApi } from '../cli/controlplane';

/** Undo steps, run last-first once the figures are taken (their failures are only noise then). */
export class Cleanups {
  private readonly steps: (() => unknown)[] = [];
  push(step: () => unknown): void { this.steps.push(step); }
  async run(): Promise<void> {
    for (const step of this.steps.splice(0).reverse()) await Promise.resolve().then(step).catch(() => undefined);
  }
}

/** Starts the facade over `store` on 127.0.0.1 with a fresh token and returns a client of it. */
export async function startFacadeClient(store: Store, cleanups: Cleanups, waitMs: number): Promise<FacadeClient> {
  const token = randomBytes(16).toString('hex');
  const api = await startApi({ store, listen: '127.0.0.1:0', token, defaultWaitMs: waitMs });
  cleanups.push(() => api.stop());
  const client = new FacadeClient({ endpoint: `127.0.0.1:${api.facade.port}`, token, sources: { endpoint: 'bench' } }, waitMs);
  cleanups.push(() => client.close());
  return client;
}
