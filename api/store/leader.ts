// Leader election for HA controllers on an etcd lease (etcd3's Election: each candidate writes a
// key bound to its own lease; the oldest key leads). Leadership is lost when the lease is lost
// (keep-alive failed past its TTL, or the lease was revoked), which onLost reports so the
// controllers stop acting at once — another instance may already be leading.
//
// etcd3's lease reports a loss only 2×TTL after its last keep-alive, while etcd expires the
// lease — and a follower may lead — after 1×TTL. So while leading, a watchdog declares the
// lead lost once no keep-alive has succeeded for 3/4 of the TTL, before the server can expire it.
import type { EventEmitter } from 'node:events';
import type { Campaign, Etcd3 } from 'etcd3';
import { DeadlineExceededError, InvalidArgumentError, UnavailableError } from '../errors';
import { logger } from '../log';
import { validateName } from '../names';

const log = logger('leader');

export interface LeaderElectionOptions {
  /** Lease TTL in seconds: how long a dead leader keeps the lead (default 10, etcd's minimum is about 2). */
  ttlSeconds?: number;
  /** Key prefix (default /n0stack), so several installations can share one etcd. */
  prefix?: string;
}

export class LeaderElection {
  private current: Campaign | undefined;
  private leading = false;
  private readonly lostHandlers: ((err: Error) => void)[] = [];
  private readonly ttl: number;
  private readonly prefix: string;

  constructor(private readonly client: Etcd3, private readonly name: string, options: LeaderElectionOptions = {}) {
    validateName(name, 'election name');
    this.ttl = options.ttlSeconds ?? 10;
    if (!Number.isInteger(this.ttl) || this.ttl < 2) throw new InvalidArgumentError(`ttlSeconds must be an integer >= 2, got ${this.ttl}`, 'ttlSeconds');
    this.prefix = options.prefix ?? '/n0stack';
  }

  /** Resolves once this candidate leads; rejects if the signal aborts first or etcd fails. */
  async campaign(identity: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.current) throw new InvalidArgumentError(`already campaigning in election ${this.name}`, 'identity');
    const { signal } = options;
    if (signal?.aborted) throw new DeadlineExceededError(`campaign for ${this.name} aborted before it started`);
    const election = this.client.namespace(`${this.prefix}/`).election(this.name, this.ttl);
    const campaign = election.campaign(identity);
    this.current = campaign;
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.current = undefined;
        campaign.resign().catch(() => undefined);
        reject(new DeadlineExceededError(`campaign for ${this.name} aborted before ${identity} was elected`));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      // etcd3 still emits 'elected' after a resign that raced the win: only the current campaign counts.
      // The lease is campaign-private in etcd3's typings, but its keep-alive events are the only
      // way to know how fresh the lead is.
      const lease = (campaign as unknown as { lease?: EventEmitter }).lease;
      let lastKeepAlive = Date.now();
      const onKeepAlive = () => { lastKeepAlive = Date.now(); };
      lease?.on('keepaliveSucceeded', onKeepAlive);
      let watchdog: NodeJS.Timeout | undefined;
      campaign.on('elected', () => {
        signal?.removeEventListener('abort', onAbort);
        if (this.current !== campaign) return;
        this.leading = true;
        log.info('elected leader', { election: this.name, identity });
        lastKeepAlive = Date.now();
        const limitMs = (this.ttl * 1000 * 3) / 4;
        watchdog = setInterval(() => {
          if (this.current !== campaign) { clearInterval(watchdog); return; }
          if (Date.now() - lastKeepAlive > limitMs) campaign.emit('error', new UnavailableError(`no lease keep-alive for ${this.name} succeeded in ${Math.round(limitMs)} ms; the lease may expire`));
        }, Math.max(100, (this.ttl * 1000) / 8));
        watchdog.unref();
        resolve();
      });
      campaign.on('error', (err: Error) => {
        signal?.removeEventListener('abort', onAbort);
        clearInterval(watchdog);
        lease?.off('keepaliveSucceeded', onKeepAlive);
        if (this.current !== campaign) return;
        const wasLeading = this.leading;
        this.leading = false;
        if (this.current === campaign) this.current = undefined;
        campaign.resign().catch(() => undefined);
        if (!wasLeading) {
          reject(new UnavailableError(`campaign for ${this.name} failed: ${err.message}`));
          return;
        }
        log.warn('lost leadership', { election: this.name, identity, error: err.message });
        for (const handler of this.lostHandlers) handler(err);
      });
    });
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The key that exists exactly while this candidate leads (it goes with the lease): the write fence's token. */
  async fenceKey(): Promise<string | undefined> {
    const campaign = this.current;
    return this.leading && campaign ? campaign.getCampaignKey() : undefined;
  }

  /**
   * Whether etcd still holds this candidate's key (it goes with its lease: revoked, or expired
   * under a stalled process), read now. isLeader() only says no keep-alive has failed yet.
   */
  async stillLeading(): Promise<boolean> {
    const campaign = this.current;
    if (!this.leading || !campaign) return false;
    const key = await campaign.getCampaignKey();
    return (await this.client.get(key).string()) !== null && this.current === campaign && this.leading;
  }

  /** Called when leadership is lost without resign() (lease lost or revoked). */
  onLost(handler: (err: Error) => void): void {
    this.lostHandlers.push(handler);
  }

  /** Steps down (revoking the lease, so a follower takes over at once) and stops campaigning. */
  async resign(): Promise<void> {
    const campaign = this.current;
    this.current = undefined;
    this.leading = false;
    await campaign?.resign();
  }

  /** The etcd key of this candidate, e.g. to inspect or revoke its lease in tests. */
  async campaignKey(): Promise<string | undefined> {
    return this.current?.getCampaignKey();
  }
}
