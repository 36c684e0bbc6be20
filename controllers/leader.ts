// Leader election for HA controllers: adapters from the two election mechanisms to the
// Manager's LeaderElector. With the etcd store the lead is an etcd lease (api/store/leader.ts);
// with the kubernetes store it is a coordination.k8s.io/v1 Lease (./leader-kubernetes.ts).
//
// Shutdown order matters: resign() only after `manager.stopped` has resolved. Resigning first
// would let a follower start reconciling while this process still finishes in-flight reconciles.
import type { Etcd3 } from 'etcd3';
import { InvalidArgumentError } from '../api/errors';
import { LeaderElection } from '../api/store/leader';
import type { LeaderElector } from './runtime/manager';

export interface ControllerElector extends LeaderElector {
  readonly identity: string;
  isLeader(): boolean;
  /** Gives the lead up at once (a follower takes over without waiting for the TTL). */
  resign(): Promise<void>;
}

/** Default lease TTL: a dead leader is replaced within about this long (the bound is 15 s). */
export const DEFAULT_LEASE_SECONDS = 10;

export function validateLeaseSeconds(value: number, field = 'leaseSeconds'): number {
  if (!Number.isInteger(value) || value < 2 || value > 300) throw new InvalidArgumentError(`${field} must be an integer from 2 to 300, got ${value}`, field);
  return value;
}

export interface EtcdElectorOptions {
  /** Unique per process, e.g. `${hostname}-${pid}`; shown as the lead's value in etcd. */
  identity: string;
  /** Election name (default "controllers"). */
  name?: string;
  /** Lease TTL in seconds (default 10). */
  leaseSeconds?: number;
  /** Key prefix of the installation (the store's prefix, default /n0stack). */
  prefix?: string;
}

export function etcdLeaderElector(client: Etcd3, options: EtcdElectorOptions): ControllerElector {
  const election = new LeaderElection(client, options.name ?? 'controllers', {
    ttlSeconds: validateLeaseSeconds(options.leaseSeconds ?? DEFAULT_LEASE_SECONDS),
    prefix: options.prefix,
  });
  return {
    identity: options.identity,
    campaign: (signal) => election.campaign(options.identity, { signal }),
    onLost: (cb) => election.onLost(cb),
    isLeader: () => election.isLeader(),
    stillLeading: () => election.stillLeading(),
    fenceKey: () => election.fenceKey(),
    resign: () => election.resign(),
  };
}

export interface KubernetesElectorOptions {
  identity: string;
  /** Namespace of the Lease (default: the pod's namespace from the service account, else "default"). */
  namespace?: string;
  /** Lease name (default "n0stack-controllers"). */
  name?: string;
  /** How long a lead lasts without renewal (default 10 s); followers take over after it. */
  leaseSeconds?: number;
  /** kubeconfig path; default: in-cluster service account or the usual lookup. */
  kubeconfig?: string;
  /** API server URL and token instead of a kubeconfig (tests against the stand-in server). */
  server?: string;
  token?: string;
}

/** A Lease-based elector for the kubernetes store; client-node is loaded only when this is used. */
export function kubernetesLeaderElector(options: KubernetesElectorOptions): ControllerElector {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { KubernetesLeaseElector } = require('./leader-kubernetes') as typeof import('./leader-kubernetes');
  return new KubernetesLeaseElector(options);
}
