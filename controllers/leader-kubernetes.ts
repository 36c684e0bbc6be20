// Leader election on a coordination.k8s.io/v1 Lease, the algorithm of client-go's
// leaderelection package: a candidate takes the Lease when nobody holds it or when its
// (holderIdentity, renewTime) has not changed for leaseDurationSeconds *as observed on this
// process's own clock* (so clocks between machines need not agree); the leader renews every
// retry period with the Lease's resourceVersion (optimistic concurrency: two candidates cannot
// both win one round) and gives the lead up when no renewal succeeded for 2/3 of the lease
// duration — before any follower may consider the Lease expired.
import * as fs from 'node:fs';
import {
  ApiException, CoordinationV1Api, KubeConfig, Observable, V1MicroTime,
  type ConfigurationOptions, type ObservableMiddleware, type V1Lease,
} from '@kubernetes/client-node';
import { DeadlineExceededError, InvalidArgumentError, UnavailableError } from '../api/errors';
import { logger } from '../api/log';
import { validateName } from '../api/names';
import { DEFAULT_LEASE_SECONDS, validateLeaseSeconds, type ControllerElector, type KubernetesElectorOptions } from './leader';
import { sleep } from './runtime/sleep';

const log = logger('leader-kubernetes');
const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

function defaultNamespace(): string {
  try { return fs.readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim() || 'default'; } catch { return 'default'; }
}

export class KubernetesLeaseElector implements ControllerElector {
  readonly identity: string;
  private readonly api: CoordinationV1Api;
  private readonly namespace: string;
  private readonly name: string;
  private readonly leaseSeconds: number;
  private readonly retryMs: number;
  private readonly renewDeadlineMs: number;
  private observed = '';
  private observedAt = 0;
  /** The observed holder's lease duration (ms), and whether someone else holds it. */
  private observedDurationMs = 0;
  private heldByOther = false;
  private leading = false;
  private renewing: AbortController | undefined;
  private renewLoop: Promise<void> = Promise.resolve();
  private readonly lostHandlers: ((err?: Error) => void)[] = [];

  constructor(options: KubernetesElectorOptions) {
    if (!options.identity) throw new InvalidArgumentError('a leader-election identity is required', 'identity');
    this.identity = options.identity;
    this.namespace = validateName(options.namespace ?? defaultNamespace(), 'namespace');
    this.name = validateName(options.name ?? 'n0stack-controllers', 'lease name');
    this.leaseSeconds = validateLeaseSeconds(options.leaseSeconds ?? DEFAULT_LEASE_SECONDS);
    this.retryMs = (this.leaseSeconds * 1000) / 5;
    this.renewDeadlineMs = (this.leaseSeconds * 1000 * 2) / 3;
    const kc = new KubeConfig();
    if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
    else if (options.server) {
      kc.loadFromOptions({
        clusters: [{ name: 'n0stack', server: options.server, skipTLSVerify: options.server.startsWith('http://') }],
        users: [{ name: 'n0stack', ...(options.token ? { token: options.token } : {}) }],
        contexts: [{ name: 'n0stack', cluster: 'n0stack', user: 'n0stack' }],
        currentContext: 'n0stack',
      });
    } else kc.loadFromDefault();
    this.api = kc.makeApiClient(CoordinationV1Api);
  }

  /** Every request gets a deadline shorter than the renew deadline, so a hung call cannot keep a stale lead. */
  private opts(): ConfigurationOptions {
    const timeoutMs = Math.max(500, this.retryMs);
    const deadline: ObservableMiddleware = {
      pre: (ctx) => { ctx.setSignal(AbortSignal.timeout(timeoutMs)); return new Observable(Promise.resolve(ctx)); },
      post: (res) => new Observable(Promise.resolve(res)),
    };
    return { middleware: [deadline], middlewareMergeStrategy: 'append' };
  }

  isLeader(): boolean { return this.leading; }

  /**
   * Whether the Lease, read now, still names this process: another may have taken it (after our
   * renewals stalled) before the renew loop notices. The fence asks this before every write.
   */
  async stillLeading(): Promise<boolean> {
    if (!this.leading) return false;
    const lease = await this.api.readNamespacedLease({ name: this.name, namespace: this.namespace }, this.opts());
    return lease.spec?.holderIdentity === this.identity && this.leading;
  }

  onLost(cb: (err?: Error) => void): void { this.lostHandlers.push(cb); }

  async campaign(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        if (await this.tryAcquireOrRenew()) {
          this.leading = true;
          log.info('elected leader', { lease: `${this.namespace}/${this.name}`, identity: this.identity });
          this.startRenewing();
          return;
        }
      } catch (err) {
        log.warn('lease acquire failed; trying again', { lease: `${this.namespace}/${this.name}`, error: (err as Error).message });
      }
      await sleep(this.followDelayMs(), signal);
    }
    throw new DeadlineExceededError(`campaign for lease ${this.namespace}/${this.name} aborted before ${this.identity} was elected`);
  }

  /**
   * How long a follower waits before trying again. client-go's bound is that a candidate acquires
   * no later than lease duration + retry period after the holder's last renewal: the renewal is
   * seen at the next read (at most `poll` later, on our clock), it expires a lease duration after
   * that, and the try lands at most one more `poll` later; with a poll of half the retry period
   * (never more, jitter only shortens it) and a try exactly at expiry, that is at most duration +
   * retry/2 plus a request. The old wait of retry ± 20% twice gave duration + 2.4 retries.
   */
  private followDelayMs(): number {
    const poll = (this.retryMs / 2) * (0.8 + Math.random() * 0.2);
    if (!this.heldByOther) return poll;
    const untilExpiry = this.observedAt + this.observedDurationMs - Date.now();
    return Math.max(0, Math.min(poll, untilExpiry + 5));
  }

  private startRenewing(): void {
    const stop = new AbortController();
    this.renewing = stop;
    this.renewLoop = (async () => {
      let lastRenew = Date.now();
      while (!stop.signal.aborted) {
        await sleep(this.retryMs, stop.signal);
        if (stop.signal.aborted) return;
        let error: Error | undefined;
        try {
          if (await this.tryAcquireOrRenew()) { lastRenew = Date.now(); continue; }
          error = new UnavailableError(`lease ${this.namespace}/${this.name} is held by someone else`);
        } catch (err) {
          error = err as Error;
        }
        if (stop.signal.aborted) return;
        // A held-by-another answer ends the lead at once; a failed call only once it could expire.
        if (error.message.includes('held by someone else') || Date.now() - lastRenew > this.renewDeadlineMs) {
          this.leading = false;
          this.renewing = undefined;
          log.warn('lost leadership', { lease: `${this.namespace}/${this.name}`, identity: this.identity, error: error.message });
          for (const cb of this.lostHandlers) cb(error);
          return;
        }
      }
    })();
  }

  /** One round of client-go's tryAcquireOrRenew: true when this process holds the Lease now. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new V1MicroTime();
    const spec = { holderIdentity: this.identity, leaseDurationSeconds: this.leaseSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 };
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name: this.name, namespace: this.namespace }, this.opts());
    } catch (err) {
      if (!(err instanceof ApiException) || err.code !== 404) throw err;
      try {
        await this.api.createNamespacedLease({ namespace: this.namespace, body: { metadata: { name: this.name, namespace: this.namespace }, spec } }, this.opts());
      } catch (createErr) {
        if (createErr instanceof ApiException && createErr.code === 409) return false;
        throw createErr;
      }
      this.observe(this.identity, now);
      this.heldByOther = false;
      return true;
    }
    const current = lease.spec ?? {};
    const holder = current.holderIdentity ?? '';
    this.observe(holder, current.renewTime);
    const duration = (current.leaseDurationSeconds ?? this.leaseSeconds) * 1000;
    this.observedDurationMs = duration;
    this.heldByOther = !!holder && holder !== this.identity;
    if (holder && holder !== this.identity && this.observedAt + duration > Date.now()) return false;
    const body: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        acquireTime: holder === this.identity && current.acquireTime ? current.acquireTime : now,
        leaseTransitions: (current.leaseTransitions ?? 0) + (holder === this.identity ? 0 : 1),
      },
    };
    try {
      await this.api.replaceNamespacedLease({ name: this.name, namespace: this.namespace, body }, this.opts());
    } catch (err) {
      if (err instanceof ApiException && err.code === 409) return false;
      throw err;
    }
    this.observe(this.identity, now);
    return true;
  }

  /** Remembers when the (holder, renewTime) pair last changed, on our own clock. */
  private observe(holder: string, renewTime: unknown): void {
    const key = `${holder}|${renewTime instanceof Date ? renewTime.toISOString() : String(renewTime)}`;
    if (key !== this.observed) { this.observed = key; this.observedAt = Date.now(); }
  }

  async resign(): Promise<void> {
    this.renewing?.abort();
    this.renewing = undefined;
    await this.renewLoop;
    if (!this.leading) return;
    this.leading = false;
    // client-go's ReleaseOnCancel: an empty holder lets a follower take the Lease at once.
    try {
      const lease = await this.api.readNamespacedLease({ name: this.name, namespace: this.namespace }, this.opts());
      if (lease.spec?.holderIdentity !== this.identity) return;
      const now = new V1MicroTime();
      await this.api.replaceNamespacedLease({ name: this.name, namespace: this.namespace, body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now } } }, this.opts());
    } catch (err) {
      log.warn('could not release the lease; followers take over when it expires', { lease: `${this.namespace}/${this.name}`, error: (err as Error).message });
    }
  }
}
