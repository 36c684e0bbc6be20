// Registration of an agent on another host through the facade (NodeService.ApplyNode and
// HeartbeatNode), so remote hosts need no store credentials. The agent proves who it is with its
// own node certificate (mTLS): the facade then lets it write only its own Node.
import * as grpc from '@grpc/grpc-js';
import { UnavailableError } from '../api/errors';
import { ipTargetTls } from '../api/pki';
import { grpcService, loadFacadeProto } from '../api/server/proto';
import type { Node, NodeStatus } from '../api/types';
import type { NodeRegistrar } from './registration';
import { KVM_CONDITION } from '../api/conditions';

export interface FacadeRegistrarOptions {
  /** host:port of the facade. */
  endpoint: string;
  /** A bearer token instead of the node certificate (an admin's; not what a host should hold). */
  token?: string;
  /** PEM of the CA of the facade's TLS certificate. */
  ca?: Buffer;
  /** The node's certificate and key (CN = node name), presented as the client certificate. */
  cert?: Buffer;
  key?: Buffer;
  /** Plaintext to the facade: only with a facade started with --insecure-plaintext. */
  insecurePlaintext?: boolean;
  deadlineMs?: number;
}

export class FacadeNodeRegistrar implements NodeRegistrar {
  private readonly client: grpc.Client & Record<string, (...args: unknown[]) => unknown>;

  constructor(private readonly options: FacadeRegistrarOptions) {
    const NodeService = grpcService(loadFacadeProto(), 'NodeService');
    if (!options.insecurePlaintext && !options.ca) throw new Error('the facade registrar needs the CA of the facade\'s certificate (--api-ca), or insecurePlaintext');
    if (!options.token && !(options.cert && options.key)) throw new Error('the facade registrar needs the node\'s client certificate (or a token)');
    const ip = ipTargetTls(options.endpoint);
    const credentials = options.insecurePlaintext
      ? grpc.credentials.createInsecure()
      : grpc.credentials.createSsl(options.ca, options.key ?? null, options.cert ?? null, ip.checkServerIdentity ? { checkServerIdentity: ip.checkServerIdentity } : undefined);
    this.client = new NodeService(options.endpoint, credentials, options.insecurePlaintext ? {} : ip.channelOptions) as never;
  }

  private call(method: string, request: unknown): Promise<unknown> {
    const metadata = new grpc.Metadata();
    if (this.options.token) metadata.set('authorization', `Bearer ${this.options.token}`);
    return new Promise((resolve, reject) => {
      this.client[method](request, metadata, { deadline: Date.now() + (this.options.deadlineMs ?? 10_000) }, (err: grpc.ServiceError | null, res: unknown) => {
        if (err) reject(new UnavailableError(`facade ${this.options.endpoint} ${method}: ${err.details || err.message}`));
        else resolve(res);
      });
    });
  }

  async register(node: Node): Promise<void> {
    await this.call('ApplyNode', {
      name: node.metadata.name,
      annotations: node.metadata.annotations ?? {},
      labels: node.metadata.labels ?? {},
      address: node.spec.address ?? '',
      agent_endpoint: node.spec.agent_endpoint ?? '',
      cpu_milli_cores: node.spec.cpu_milli_cores ?? 0,
      memory_bytes: node.spec.memory_bytes ?? 0,
      storage_bytes: node.spec.storage_bytes ?? 0,
    });
    await this.heartbeat(node.metadata.name, node.status ?? {});
  }

  async heartbeat(name: string, status: Partial<NodeStatus>): Promise<void> {
    const kvm = status.conditions?.find((c) => c.type === KVM_CONDITION);
    await this.call('HeartbeatNode', {
      name, accelerator: status.accelerator ?? '', agent_version: status.agent_version ?? '',
      accelerator_reason: status.accelerator_reason ?? '', cpu_model: status.cpu_model ?? '',
      accelerator_condition_reason: kvm?.reason ?? '', kvm_usable: kvm?.status === 'True',
    });
  }

  close(): void { this.client.close(); }
}
