// Test harness: a whole n0stack on this machine — store (embedded or etcd), controllers, facade
// and one or more agents, each agent's networks and VMs inside its own test network namespace.
// Used by the control-plane integration tests, the n0ctl tests and the end-to-end tests.
//
// Hosts are joined by a real underlay: an "underlay" namespace holds a bridge (the switch), and
// each host namespace has a veth `ul0` into it with 10.250.0.<10+i>/24. The agent's VXLAN uses
// that address and device, and the Node advertises it, so overlay traffic between hosts crosses
// a real link. No namespace has a default route: nothing leaves them.
//
// Agents and controllers run in this process, or (for the fault tests) as `n0stack agent` /
// `n0stack controllers` child processes sharing an etcd store, so they can be killed with -9.
// The facade always runs here; the agents' gRPC servers listen on 127.0.0.1 in the root namespace.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '../api/store/etcd-process';
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { openStore } from '../api/store';
import type { Store } from '../api/store/store';
import type { VirtualMachine } from '../api/types';
import { ensureAgentIdentity, ensureCertBundle, exportAgentBundle, readTlsMaterial, type TlsMaterial } from '../api/pki';
import { validateName } from '../api/names';
import { createHostDrivers, runAgent, type RunningAgent } from '../agent/main';
import { HostAgent } from '../agent/service';
import type { NodeObservation } from '../agent/api';
import { isOurQemu } from '../agent/drivers/qemu';
import { StoreNodeRegistrar } from '../agent/registration';
import { startApi, startControllers, type RunningApi, type RunningControllers } from '../cli/controlplane';
import { FacadeClient } from '../cli/client';
import { NetnsLab } from './netns';
import { startN0stack, type N0stackProcess } from './procs';

export interface TestCloudOptions {
  store: 'embedded' | 'etcd';
  /** etcd client URL (default: N0STACK_TEST_ETCD, which ./hack/test.sh sets). */
  etcdEndpoint?: string;
  /** Names of the hosts (one agent each). */
  nodes?: string[];
  nodeHeartbeatTimeoutMs?: number;
  /** Agents' heartbeat interval (in-process agents; default 1 s). */
  heartbeatIntervalMs?: number;
  /** Join the hosts by the underlay (default true); false: every agent advertises 127.0.0.1. */
  underlay?: boolean;
  /** Where the agents run (default in-process). 'process' needs the etcd store. */
  agents?: 'in-process' | 'process';
  /** Where the controllers run (default in-process). 'process' needs the etcd store. */
  controllers?: 'in-process' | 'process';
  /** Also serve the plaintext listener for seed-era clients with this role (`--legacy-listen`). */
  legacyRole?: 'viewer' | 'admin';
}

export interface TestHost {
  name: string;
  netns: string;
  dataDir: string;
  /** Underlay address (what the Node advertises and VXLAN uses). */
  address: string;
  /** The in-process agent (undefined for a host whose agent is a child process). */
  agent: RunningAgent;
  stop: AbortController;
}

export interface ProcessHost {
  name: string;
  netns: string;
  dataDir: string;
  address: string;
  port: number;
  proc: N0stackProcess;
}

const UNDERLAY_BRIDGE = 't0ul';
const UNDERLAY_DEVICE = 'ul0';
const UNDERLAY_PREFIX = '10.250.0.';

export class TestCloud {
  store!: Store;
  controllers?: RunningControllers;
  controllersProc?: N0stackProcess;
  api!: RunningApi;
  client!: FacadeClient;
  token = randomBytes(16).toString('hex');
  readonly hosts = new Map<string, TestHost>();
  readonly processHosts = new Map<string, ProcessHost>();
  readonly lab = new NetnsLab();
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-cloud-'));
  underlayNetns?: string;
  etcdEndpoint?: string;
  etcdPrefix?: string;
  private options!: TestCloudOptions;
  private hostCount = 0;
  private readonly locals = new Map<string, HostAgent>();
  private readonly addresses = new Map<string, { netns: string; address: string; dataDir: string }>();
  private readonly controllersStop = new AbortController();
  private controllersRuns = 0;
  private tls!: { dir: string; facade: TlsMaterial; client: TlsMaterial };
  /** The CA of every certificate here: what n0ctl's --ca / the context's ca point at. */
  caFile!: string;
  /** host:port of the facade (TLS, verified with caFile). */
  endpoint!: string;
  /** host:port of the legacy listener (plaintext, no credentials), with `legacyRole`. */
  legacyEndpoint?: string;

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
    this.options = options;
    const pkiDir = path.join(this.dir, 'pki');
    ensureCertBundle(pkiDir, {
      caCommonName: 'n0stack test CA',
      servers: [{ name: 'facade', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }],
      clients: [{ name: 'controllers' }],
    });
    this.tls = { dir: pkiDir, facade: readTlsMaterial(pkiDir, 'facade'), client: readTlsMaterial(pkiDir, 'controllers') };
    this.caFile = path.join(pkiDir, 'ca.crt');
    if ((options.agents === 'process' || options.controllers === 'process') && options.store !== 'etcd') {
      throw new Error('agents or controllers in child processes share the store through etcd: use store: "etcd"');
    }
    if (options.store === 'etcd') {
      const endpoint = options.etcdEndpoint ?? process.env.N0STACK_TEST_ETCD;
      if (!endpoint) throw new Error('N0STACK_TEST_ETCD is not set (./hack/test.sh starts an etcd)');
      this.etcdEndpoint = endpoint;
      this.etcdPrefix = `/n0stack-test-${randomBytes(4).toString('hex')}`;
      this.store = await openStore({ backend: 'etcd', etcdEndpoints: [endpoint], prefix: this.etcdPrefix });
    } else {
      this.store = await openStore({ backend: 'embedded', dataDir: path.join(this.dir, 'store') });
    }
    if (options.underlay !== false) {
      this.underlayNetns = await this.lab.create();
      await this.lab.bridge(this.underlayNetns, UNDERLAY_BRIDGE);
    }
    for (const name of options.nodes ?? ['vm-host1']) await this.addHost(name);
    if (options.controllers === 'process') {
      await this.startControllersProcess();
    } else {
      this.controllers = await startControllers({
        store: this.store, agentTls: this.tls.client,
        nodeHeartbeatTimeoutMs: options.nodeHeartbeatTimeoutMs, signal: this.controllersStop.signal,
      });
    }
    // TLS as `n0stack up` serves it, node client certificates included.
    this.api = await startApi({
      store: this.store, listen: '127.0.0.1:0', token: this.token, consoleListen: '127.0.0.1:0', defaultWaitMs: 120_000,
      tls: { cert: this.tls.facade.cert, key: this.tls.facade.key, clientCa: this.tls.facade.ca },
      ...(this.controllers ? { agents: this.controllers.agents } : { agentTls: this.tls.client }),
      ...(options.legacyRole ? { legacy: { listen: '127.0.0.1:0', role: options.legacyRole } } : {}),
    });
    this.endpoint = `127.0.0.1:${this.api.facade.port}`;
    if (this.api.facade.legacyPort !== undefined) this.legacyEndpoint = `127.0.0.1:${this.api.facade.legacyPort}`;
    this.client = new FacadeClient({ endpoint: this.endpoint, token: this.token, ca: this.caFile, sources: { endpoint: 'test' } }, 180_000);
    await this.waitNodes((options.nodes ?? ['vm-host1']), 'Ready', 60_000);
  }

  /** A host namespace on the underlay: returns its namespace and address. */
  private async makeHostNamespace(name: string): Promise<{ netns: string; address: string; dataDir: string }> {
    validateName(name, 'node_name');
    const index = ++this.hostCount;
    if (index > 200) throw new Error('too many test hosts');
    const netns = await this.lab.create();
    let address = '127.0.0.1';
    if (this.underlayNetns) {
      address = `${UNDERLAY_PREFIX}${10 + index}`;
      await this.lab.veth({ ns: netns, name: UNDERLAY_DEVICE, cidr: `${address}/24` }, { ns: this.underlayNetns, name: `t0h${index}`, master: UNDERLAY_BRIDGE });
    }
    const dataDir = path.join(this.dir, 'hosts', name);
    fs.mkdirSync(dataDir, { recursive: true });
    const where = { netns, address, dataDir };
    this.addresses.set(name, where);
    return where;
  }

  async addHost(name: string): Promise<TestHost | ProcessHost> {
    const { netns, address, dataDir } = await this.makeHostNamespace(name);
    if (this.options.agents === 'process') {
      const port = await freePort();
      const host: ProcessHost = { name, netns, dataDir, address, port, proc: await this.spawnAgent(name, port) };
      this.processHosts.set(name, host);
      return host;
    }
    return this.runInProcessAgent(name);
  }

  private async runInProcessAgent(name: string): Promise<TestHost> {
    const { netns, address, dataDir } = this.host(name);
    const stop = new AbortController();
    const agent = await runAgent({
      listen: '127.0.0.1:0', dataDir, nodeName: name, address, netns,
      underlayDevice: this.underlayNetns ? UNDERLAY_DEVICE : undefined,
      tls: this.agentIdentity(name), registrar: new StoreNodeRegistrar(this.store),
      heartbeatIntervalMs: this.options.heartbeatIntervalMs ?? 1000, signal: stop.signal,
    });
    const host = { name, netns, dataDir, address, agent, stop };
    this.hosts.set(name, host);
    this.locals.get(name)?.close();
    this.locals.set(name, agent.agent);
    return host;
  }

  /** Runs a stopped in-process agent again on the same namespace and data dir. */
  async restartHost(name: string): Promise<TestHost> {
    const host = this.hosts.get(name);
    if (!host) throw new Error(`host ${name} has no in-process agent`);
    if (!host.stop.signal.aborted) throw new Error(`the agent of ${name} still runs`);
    return this.runInProcessAgent(name);
  }

  /** Each host its own certificate (CN = node name), as `n0stack pki issue-agent` makes them. */
  agentIdentity(name: string): TlsMaterial {
    return ensureAgentIdentity(this.tls.dir, name, ['127.0.0.1', this.host(name).address]);
  }

  private async spawnAgent(name: string, port: number): Promise<N0stackProcess> {
    const where = this.addresses.get(name)!;
    this.agentIdentity(name);
    const hostPki = path.join(this.dir, 'host-pki', name);
    exportAgentBundle(this.tls.dir, name, hostPki);
    const proc = startN0stack([
      'agent', '--store', 'etcd', '--etcd-endpoints', this.etcdEndpoint!, '--etcd-prefix', this.etcdPrefix!,
      '--data-dir', where.dataDir, '--listen', `127.0.0.1:${port}`, '--node-name', name, '--address', where.address,
      ...(this.underlayNetns ? ['--underlay-device', UNDERLAY_DEVICE] : []), '--pki-dir', hostPki, '--netns', where.netns,
    ], { logFile: path.join(this.dir, `agent-${name}.log`), ready: /agent: node \S+ on /, readyTimeoutMs: 90_000 });
    await proc.ready;
    return proc;
  }

  /** kill -9 a child-process agent (its VMs keep running). */
  async killAgent(name: string): Promise<void> {
    const host = this.processHosts.get(name);
    if (!host) throw new Error(`host ${name} has no agent process`);
    await host.proc.kill9();
  }

  /** Starts a child-process agent again on the same port, address and data dir. */
  async restartAgent(name: string): Promise<N0stackProcess> {
    const host = this.processHosts.get(name);
    if (!host) throw new Error(`host ${name} has no agent process`);
    if (host.proc.alive()) throw new Error(`the agent of ${name} still runs (pid ${host.proc.pid})`);
    host.proc = await this.spawnAgent(name, host.port);
    return host.proc;
  }

  async startControllersProcess(): Promise<N0stackProcess> {
    if (this.controllersProc?.alive()) throw new Error(`controllers still run (pid ${this.controllersProc.pid})`);
    const run = ++this.controllersRuns;
    this.controllersProc = startN0stack([
      'controllers', '--store', 'etcd', '--etcd-endpoints', this.etcdEndpoint!, '--etcd-prefix', this.etcdPrefix!,
      '--data-dir', path.join(this.dir, 'controllers'), '--pki-dir', this.tls.dir,
    ], { logFile: path.join(this.dir, `controllers-${run}.log`), ready: /controllers running/, readyTimeoutMs: 90_000 });
    await this.controllersProc.ready;
    return this.controllersProc;
  }

  async killControllers(): Promise<void> {
    if (!this.controllersProc) throw new Error('controllers do not run in a child process');
    await this.controllersProc.kill9();
  }

  /** Stops an in-process agent cleanly (heartbeats stop; VMs keep running). */
  async stopHost(name: string): Promise<void> {
    const host = this.hosts.get(name);
    if (host) {
      host.stop.abort();
      await host.agent.done;
      return;
    }
    await this.processHosts.get(name)?.proc.stop();
  }

  /** An agent on the host's data dir for looking at (and cleaning up) what is really there. */
  local(name: string): HostAgent {
    let agent = this.locals.get(name);
    if (!agent) {
      const where = this.addresses.get(name);
      if (!where) throw new Error(`no host ${name}`);
      agent = new HostAgent({
        nodeName: name, dataDir: where.dataDir,
        drivers: createHostDrivers({ dataDir: where.dataDir, address: where.address, underlayDevice: this.underlayNetns ? UNDERLAY_DEVICE : undefined, netns: where.netns }),
      });
      this.locals.set(name, agent);
    }
    return agent;
  }

  observe(name: string): Promise<NodeObservation> {
    return this.local(name).observe();
  }

  host(name: string): { netns: string; address: string; dataDir: string } {
    const where = this.addresses.get(name);
    if (!where) throw new Error(`no host ${name}`);
    return where;
  }

  /** Pids of every live QEMU process running the VM `vm` of host `name` (should be 0 or 1). */
  qemuPids(name: string, vm: string): number[] {
    const dir = path.join(this.host(name).dataDir, 'vms', vm);
    const pids: number[] = [];
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      if (isOurQemu(Number(entry), dir)) pids.push(Number(entry));
    }
    return pids;
  }

  async waitNodes(names: string[], state: 'Ready' | 'NotReady', timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const nodes = await Promise.all(names.map((n) => this.store.get('Node', n).catch(() => undefined)));
      if (nodes.every((n) => n?.status?.state === state)) return;
      last = nodes.map((n, i) => `${names[i]}=${n?.status?.state ?? 'absent'}`).join(', ');
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`nodes did not become ${state} within ${timeoutMs} ms (${last})`);
  }

  /** Polls the store until the VirtualMachine satisfies `ok`; the error shows its last status. */
  async waitVm(name: string, ok: (vm: VirtualMachine) => boolean, timeoutMs: number): Promise<VirtualMachine> {
    const deadline = Date.now() + timeoutMs;
    let vm: VirtualMachine | undefined;
    while (Date.now() < deadline) {
      vm = await this.store.get('VirtualMachine', name).catch(() => undefined);
      if (vm && ok(vm)) return vm;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`VirtualMachine ${name} did not get there within ${timeoutMs} ms; status: ${JSON.stringify(vm?.status)}`);
  }

  async stop(): Promise<void> {
    this.client?.close();
    await this.api?.stop().catch(() => undefined);
    this.controllersStop.abort();
    await this.controllers?.manager.stopped.catch(() => undefined);
    await this.controllersProc?.stop().catch(() => undefined);
    for (const host of this.hosts.values()) {
      host.stop.abort();
      await host.agent.done.catch(() => undefined);
    }
    for (const host of this.processHosts.values()) await host.proc.stop().catch(() => undefined);
    // Tests delete their VMs; whatever is left (a failed test) is destroyed here.
    for (const name of this.addresses.keys()) {
      const local = this.local(name);
      const vms = await local.observe().then((o) => o.vms).catch(() => []);
      for (const vm of vms) await local.deleteVm(vm.name).catch(() => undefined);
      local.close();
    }
    await this.store?.close().catch(() => undefined);
    if (this.etcdEndpoint && this.etcdPrefix) {
      const etcd = new Etcd3({ hosts: [this.etcdEndpoint], dialTimeout: 3000 });
      await etcd.delete().prefix(`${this.etcdPrefix}/`).exec().catch(() => undefined);
      etcd.close();
    }
    await this.lab.cleanupAll().catch(() => undefined);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
