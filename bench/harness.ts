// What the benchmarks that drive a real control plane share: cleanups run in reverse order, and
// the real facade on a loopback port with a client of it.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureCertBundle, readTlsMaterial } from '../api/pki';
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

/** A fresh CA and a server certificate for 127.0.0.1 (what `n0stack up` makes), removed at cleanup. */
export function benchPki(cleanups: Cleanups): { tls: { cert: Buffer; key: Buffer }; caFile: string } {
  const pkiDir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-bench-pki-'));
  cleanups.push(() => fs.rmSync(pkiDir, { recursive: true, force: true }));
  ensureCertBundle(pkiDir, { servers: [{ name: 'facade', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }] });
  const tls = readTlsMaterial(pkiDir, 'facade');
  return { tls: { cert: tls.cert, key: tls.key }, caFile: path.join(pkiDir, 'ca.crt') };
}

/**
 * Starts the facade over `store` on 127.0.0.1 with a fresh token and TLS (as users run it, so
 * the figures include the handshake and encryption) and returns a client of it.
 */
export async function startFacadeClient(store: Store, cleanups: Cleanups, waitMs: number): Promise<FacadeClient> {
  const token = randomBytes(16).toString('hex');
  const { tls, caFile } = benchPki(cleanups);
  const api = await startApi({ store, listen: '127.0.0.1:0', token, tls, defaultWaitMs: waitMs });
  cleanups.push(() => api.stop());
  const client = new FacadeClient({ endpoint: `127.0.0.1:${api.facade.port}`, token, ca: caFile, sources: { endpoint: 'bench' } }, waitMs);
  cleanups.push(() => client.close());
  return client;
}
