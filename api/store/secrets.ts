// What the facade replicas share that no client may read: a store area of its own beside the kinds
// and Events, never served by any RPC (get/list/watch and ResourceService know only the kinds), so
// only whoever reads the store itself (etcd's clients, the API server's RBAC on Secrets) sees it.
// Two uses, both first-writer-wins through create-if-absent: keys made once and loaded by every
// replica (the console ticket key), and one-time claims that expire (a console ticket's id once
// used, so a replay at another replica is refused too).
import { randomBytes } from 'node:crypto';
import { InvalidArgumentError } from '../errors';
import type { KvBackend } from './kv';

export interface SecretStore {
  /**
   * The key stored under `name`, made of `bytes` random bytes by the first caller and read by
   * every later one (every replica gets the same).
   */
  ensureKey(name: string, bytes?: number): Promise<Buffer>;
  /** Records `id` until `expiresAt` (epoch ms); false when it was recorded already. */
  claim(id: string, expiresAt: number): Promise<boolean>;
  /** Deletes the claims whose time is past; returns how many. */
  sweep(now?: number): Promise<number>;
}

const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export function checkSecretName(name: string, field: string): string {
  if (typeof name !== 'string' || !NAME.test(name)) throw new InvalidArgumentError(`${field} ${JSON.stringify(name)} must be a DNS subdomain name`, field);
  return name;
}

/** On the embedded and etcd backends: `<prefix>/secrets/<name>` and `<prefix>/claims/<id>`. */
export class KvSecretStore implements SecretStore {
  private readonly keys: string;
  private readonly claims: string;

  constructor(private readonly kv: KvBackend, prefix: string) {
    this.keys = `${prefix}/secrets/`;
    this.claims = `${prefix}/claims/`;
  }

  async ensureKey(name: string, bytes = 32): Promise<Buffer> {
    const key = this.keys + checkSecretName(name, 'name');
    // Lost the race to create it: the winner's value is the one.
    await this.kv.put(key, JSON.stringify({ key: randomBytes(bytes).toString('base64') }), 0);
    const entry = await this.kv.get(key);
    if (!entry) throw new Error(`secret ${name} vanished right after it was created`);
    return Buffer.from((JSON.parse(entry.value) as { key: string }).key, 'base64');
  }

  async claim(id: string, expiresAt: number): Promise<boolean> {
    const rev = await this.kv.put(this.claims + checkSecretName(id, 'id'), JSON.stringify({ expiresAt }), 0);
    return rev !== undefined;
  }

  async sweep(now = Date.now()): Promise<number> {
    const { entries } = await this.kv.range(this.claims);
    let swept = 0;
    for (const entry of entries) {
      if ((JSON.parse(entry.value) as { expiresAt: number }).expiresAt >= now) continue;
      if (await this.kv.delete(entry.key, entry.modRevision) !== undefined) swept++;
    }
    return swept;
  }
}
