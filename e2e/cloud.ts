// Test harness: a whole n0stack on this machine — store (embedded or etcd), controllers, facade
// and one or more agents, each agent's networks and VMs inside its own test network namespace.
// Used by the control-plane integration tests, the n0ctl tests and the end-to-end tests.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { openStore } from '../api/store';
import type { Store } from '../api/store/store';
import { createCa, issueClientCert, issueServerCert } from '../api/pki';
import { runAgent, type RunningAgent } from '../agent/main';
import { StoreNodeRegistrar } from '../agent/registration';
import { startApi, startControllers, type RunningApi, type RunningControllers } from '../cli/controlplane';
import { FacadeClient } from '../cli/client';
import { NetnsLab } from './netns';

export interface TestCloudOptions {
  store: 'embedded' | 'etcd';
  /** Names of the hosts (one agent each). */
  nodes?: string[];
  nodeHeartbeatTimeoutMs?: number;
}

export interface TestHost { name: string; netns: string; dataDir: string; agent: RunningAgent; stop: AbortController }

export class TestCloud {
  store!: Store;
  controllers!: RunningControllers;
  api!: RunningApi;
  client!: FacadeClient;
  token = randomBytes(16).toString('hex');
  readonly hosts = new Map<string, TestHost>();
  readonly lab = new NetnsLab();
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-cloud-'));
  private readonly controllersStop = new AbortController();
  private tls!: { ca: string; server: { certPem: string; keyPem: string }; client: { certPem: string; keyPem: string } };

  static async start(options: TestCloudOptions): Promise<TestCloud> {
    const cloud = new TestCloud();
    try {
      await cloud.boot(options);
    } catch (err) {
      await cloud.stop();
      throw err;
    }
    return cloud;
  }

  private async boot(options: TestCloudOptions): Promise<void> {
    const ca = createCa({ commonName: 'n0stack test CA' });
    this.tls = {
      ca: ca.certPem,
      server: issueServerCert(ca, { commonName: 'agent', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }),
      client: issueClientCert(ca, { commonName: 'controllers' }),
    };
    if (options.store === 'etcd') {
      const endpoint = process.env.N0STACK_TEST_ETCD;
      if (!endpoint) throw new Error('N0STACK_TEST_ETCD is not set (./hack/test.sh starts an etcd)');
      this.store = await openStore({ backend: 'etcd', etcdEndpoints: [endpoint], prefix: `/n0stack-test-${randomBytes(4).toString('hex')}` });
    } else {
      this.store = await openStore({ backend: 'embedded', dataDir: path.join(this.dir, 'store') });
    }
    for (const name of options.nodes ?? ['vm-host1']) await this.addHost(name);
    this.controllers = await startControllers({
      store: this.store, agentTls: { ca: this.tls.ca, cert: this.tls.client.certPem, key: this.tls.client.keyPem },
      nodeHeartbeatTimeoutMs: options.nodeHeartbeatTimeoutMs, signal: this.controllersStop.signal,
    });
    this.api = await startApi({ store: this.store, listen: '127.0.0.1:0', token: this.token, consoleListen: '127.0.0.1:0', agents: this.controllers.agents, defaultWaitMs: 120_000 });
    this.client = new FacadeClient({ endpoint: `127.0.0.1:${this.api.facade.port}`, token: this.token, sources: { endpoint: 'test' } }, 180_000);
  }

  async addHost(name: string): Promise<TestHost> {
    const netns = await this.lab.create();
    const dataDir = path.join(this.dir, 'hosts', name);
    fs.mkdirSync(dataDir, { recursive: true });
    const stop = new AbortController();
    const agent = await runAgent({
      listen: '127.0.0.1:0', dataDir, nodeName: name, address: '127.0.0.1', netns,
      tls: { ca: this.tls.ca, cert: this.tls.server.certPem, key: this.tls.server.keyPem },
      registrar: new StoreNodeRegistrar(this.store), heartbeatIntervalMs: 1000, signal: stop.signal,
    });
    const host = { name, netns, dataDir, agent, stop };
    this.hosts.set(name, host);
    return host;
  }

  async stopHost(name: string): Promise<void> {
    const host = this.hosts.get(name);
    if (!host) return;
    host.stop.abort();
    await host.agent.done;
  }

  async stop(): Promise<void> {
    this.client?.close();
    await this.api?.stop().catch(() => undefined);
    this.controllersStop.abort();
    await this.controllers?.manager.stopped.catch(() => undefined);
    for (const host of this.hosts.values()) {
      // Tests delete their VMs; whatever is left (a failed test) is destroyed here.
      const vms = await host.agent.agent.observe().then((o) => o.vms).catch(() => []);
      for (const vm of vms) await host.agent.agent.deleteVm(vm.name).catch(() => undefined);
      host.stop.abort();
      await host.agent.done.catch(() => undefined);
    }
    await this.store?.close().catch(() => undefined);
    await this.lab.cleanupAll().catch(() => undefined);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
