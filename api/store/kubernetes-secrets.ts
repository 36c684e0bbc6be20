// The secret area (secrets.ts) in the Kubernetes shape: core/v1 Secrets in the controllers'
// namespace (the Events' one), so the API server's RBAC on Secrets guards them and kubectl shows
// only that they exist. A key is one Secret, created if absent and then read; a used ticket is one
// small Secret labelled as a claim, named after its id, with its expiry in an annotation, so a
// second create of the same id is the API server's 409 whichever replica sends it.
import { randomBytes } from 'node:crypto';
import { ApiException, CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { UnavailableError } from '../errors';
import { validateName } from '../names';
import { defaultEventNamespace, requestOptions } from './kubernetes-events';
import { checkSecretName, type SecretStore } from './secrets';

const CLAIM_LABEL = 'n0stack.io/claim';
const EXPIRES = 'n0stack.io/expires-at';

export class KubernetesSecretStore implements SecretStore {
  private readonly api: CoreV1Api;
  readonly namespace: string;

  constructor(kc: KubeConfig, namespace = defaultEventNamespace(), private readonly timeoutMs = 30_000) {
    this.api = kc.makeApiClient(CoreV1Api);
    this.namespace = validateName(namespace, 'namespace');
  }

  private fail(err: unknown, op: string, name: string): Error {
    const why = err instanceof ApiException ? `HTTP ${err.code}` : (err as Error)?.message ?? String(err);
    return new UnavailableError(`kubernetes API ${op} of Secret "${name}" failed: ${why}`);
  }

  /** Creates the Secret; false when it exists already. */
  private async create(body: V1Secret): Promise<boolean> {
    try {
      await this.api.createNamespacedSecret({ namespace: this.namespace, body }, requestOptions(this.timeoutMs));
      return true;
    } catch (err) {
      if (err instanceof ApiException && err.code === 409) return false;
      throw this.fail(err, 'create', body.metadata?.name ?? '');
    }
  }

  async ensureKey(name: string, bytes = 32): Promise<Buffer> {
    const secretName = `n0stack-${checkSecretName(name, 'name')}`;
    await this.create({ metadata: { name: secretName }, type: 'Opaque', data: { key: randomBytes(bytes).toString('base64') } });
    try {
      const secret = await this.api.readNamespacedSecret({ name: secretName, namespace: this.namespace }, requestOptions(this.timeoutMs));
      return Buffer.from(secret.data?.key ?? '', 'base64');
    } catch (err) { throw this.fail(err, 'get', secretName); }
  }

  async claim(id: string, expiresAt: number): Promise<boolean> {
    return this.create({
      metadata: { name: `n0stack-claim-${checkSecretName(id, 'id')}`, labels: { [CLAIM_LABEL]: 'true' }, annotations: { [EXPIRES]: new Date(expiresAt).toISOString() } },
      type: 'Opaque',
    });
  }

  async sweep(now = Date.now()): Promise<number> {
    let items: V1Secret[];
    try {
      items = (await this.api.listNamespacedSecret({ namespace: this.namespace, labelSelector: `${CLAIM_LABEL}=true` }, requestOptions(this.timeoutMs))).items;
    } catch (err) { throw this.fail(err, 'list', '*'); }
    let swept = 0;
    for (const secret of items) {
      const name = secret.metadata?.name;
      if (!name || !(Date.parse(secret.metadata?.annotations?.[EXPIRES] ?? '') < now)) continue;
      try {
        await this.api.deleteNamespacedSecret({ name, namespace: this.namespace }, requestOptions(this.timeoutMs));
        swept++;
      } catch (err) {
        // Another replica swept it first.
        if (!(err instanceof ApiException && err.code === 404)) throw this.fail(err, 'delete', name);
      }
    }
    return swept;
  }
}
