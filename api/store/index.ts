// The public surface of the store folder: open a Store for the configured backend.
import { InvalidArgumentError } from '../errors';
import { LmdbBackend } from './embedded';
import { EtcdBackend, type EtcdTls } from './etcd';
import { KvStore } from './kv';
import type { Store } from './store';

export type { Store, ListOptions, ListResult, Patch, PatchOptions, UpdateOptions, DeleteOptions, WatchEvent, WatchEventType, WatchOptions } from './store';
export { KvStore } from './kv';
export type { EtcdTls } from './etcd';

export interface OpenStoreOptions {
  backend: 'embedded' | 'etcd' | 'kubernetes';
  /** embedded: the LMDB directory. */
  dataDir?: string;
  /** etcd: client URLs, e.g. http://127.0.0.1:2379. */
  etcdEndpoints?: string[];
  etcdTls?: EtcdTls;
  /** embedded/etcd: key prefix, so several installations can share one etcd. */
  prefix?: string;
  /** kubernetes: path of a kubeconfig file (default: the usual lookup). */
  kubeconfig?: string;
}

export const DEFAULT_PREFIX = '/n0stack';

export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  if (!prefix.startsWith('/') || prefix.endsWith('/')) throw new InvalidArgumentError(`prefix ${JSON.stringify(prefix)} must start with / and not end with /`, 'prefix');
  switch (options.backend) {
    case 'embedded':
      if (!options.dataDir) throw new InvalidArgumentError('the embedded store needs a data directory', 'dataDir');
      return new KvStore('embedded', new LmdbBackend(options.dataDir), prefix);
    case 'etcd':
      if (!options.etcdEndpoints?.length) throw new InvalidArgumentError('the etcd store needs at least one endpoint', 'etcdEndpoints');
      return new KvStore('etcd', new EtcdBackend({ endpoints: options.etcdEndpoints, tls: options.etcdTls }), prefix);
    case 'kubernetes': {
      // Loaded lazily: @kubernetes/client-node is ESM-only and slow to import, and only this backend needs it.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { KubernetesStore } = require('./kubernetes') as { KubernetesStore: new (o: { kubeConfig?: import('@kubernetes/client-node').KubeConfig; server?: string }) => Store };
      let kubeConfig: import('@kubernetes/client-node').KubeConfig | undefined;
      if (options.kubeconfig) {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const k8s = require('@kubernetes/client-node') as typeof import('@kubernetes/client-node');
        kubeConfig = new k8s.KubeConfig();
        kubeConfig.loadFromFile(options.kubeconfig);
      }
      return new KubernetesStore({ kubeConfig });
    }
    default:
      throw new InvalidArgumentError(`backend must be embedded, etcd or kubernetes, got ${JSON.stringify((options as { backend: unknown }).backend)}`, 'backend');
  }
}
