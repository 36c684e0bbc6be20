// One node agent process: probe the accelerator, serve AgentApi over gRPC with mTLS, register the
// Node and heartbeat until the signal aborts. Stopping the agent stops serving and nothing else:
// VMs are detached QEMU processes that outlive it and are re-adopted by the next agent.
import * as fs from 'node:fs';
import * as net from 'node:net';
import { InvalidArgumentError } from '../api/errors';
import { logger } from '../api/log';
import { validateName } from '../api/names';
import type { Accelerator } from './drivers/types';
import { describeProbe, type AcceleratorChoice, type AcceleratorProbe } from './drivers/accel-probe';
import { NoCloudDriver } from './drivers/cloudinit';
import { HttpFetchDriver } from './drivers/fetch';
import { IprouteNetworkDriver } from './drivers/network';
import { QemuDriver } from './drivers/qemu';
import { QemuImgDriver } from './drivers/qemuimg';
import { AgentPaths } from './paths';
import { Heartbeater, hostCapacity, nodeDocument, readyStatus, type NodeRegistrar } from './registration';
import { AgentServer, DEFAULT_AGENT_LISTEN, splitHostPort, type ServerTls } from './server';
import { HostAgent, type AgentDrivers } from './service';
import { agentVersion } from './version';
import { serveMetrics, type MetricsListener } from './metrics';

const log = logger('agent');

export interface RunAgentOptions {
  /** host:port to serve on (default 127.0.0.1:20181; port 0 picks one). */
  listen?: string;
  dataDir: string;
  nodeName: string;
  /** Underlay address other nodes reach this one at (also VXLAN's local endpoint). */
  address: string;
  /** Underlay interface VXLAN packets leave through (default: chosen by the kernel's routes). */
  underlayDevice?: string;
  /** host:port written into the Node for controllers; default: the listen host (or address when listening on all) and the bound port. */
  advertiseEndpoint?: string;
  tls: ServerTls;
  /** Omitted: no registration (a controller that knows the endpoint some other way). */
  registrar?: NodeRegistrar;
  heartbeatIntervalMs?: number;
  /** Host interface VLAN networks use. */
  uplink?: string;
  /** Run networking (and QEMU, so it can open the taps) inside this network namespace. */
  netns?: string;
  /** Replace some drivers (tests, benchmarks). */
  drivers?: Partial<AgentDrivers>;
  /** host:port to serve Prometheus /metrics on (omitted: none; port 0 picks one). */
  metricsListen?: string;
  /** auto (default): KVM only if the probe guest boots with it; kvm: KVM or a start-up error; tcg. */
  accelerator?: AcceleratorChoice;
  signal: AbortSignal;
}

export interface RunningAgent {
  agent: HostAgent;
  /** The bound endpoint (host:port). */
  endpoint: string;
  port: number;
  /** What the Node advertises. */
  advertisedEndpoint: string;
  accelerator: Accelerator;
  /** What the accelerator probe found at start-up (the kind of host this is). */
  probe: AcceleratorProbe;
  heartbeater?: Heartbeater;
  /** The bound /metrics port, when metricsListen was given. */
  metricsPort?: number;
  /** Resolves when the agent has stopped after the signal aborted. */
  done: Promise<void>;
}

/** The real drivers of a host. */
export function createHostDrivers(options: { dataDir: string; address?: string; underlayDevice?: string; netns?: string; accelerator?: AcceleratorChoice }): AgentDrivers {
  const paths = new AgentPaths(options.dataDir);
  const disk = new QemuImgDriver();
  return {
    disk,
    fetch: new HttpFetchDriver({ disk }),
    network: new IprouteNetworkDriver({ netns: options.netns, underlayAddress: options.address, underlayDevice: options.underlayDevice }),
    cloudInit: new NoCloudDriver(),
    vm: new QemuDriver({ paths, netns: options.netns, accelerator: options.accelerator, probeCacheFile: `${paths.dataDir}/accel-probe.json` }),
  };
}

/** The endpoint controllers should dial: a wildcard listen address means "use the node address". */
export function advertisedEndpoint(listenHost: string, port: number, address: string): string {
  const host = listenHost === '0.0.0.0' || listenHost === '::' ? address : listenHost;
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

export async function runAgent(options: RunAgentOptions): Promise<RunningAgent> {
  const nodeName = validateName(options.nodeName, 'node_name');
  if (!net.isIP(options.address)) throw new InvalidArgumentError(`address ${JSON.stringify(options.address)} must be an IP address`, 'address');
  const listen = options.listen ?? DEFAULT_AGENT_LISTEN;
  const { host: listenHost } = splitHostPort(listen);
  new AgentPaths(options.dataDir);
  fs.mkdirSync(options.dataDir, { recursive: true });

  const drivers: AgentDrivers = {
    ...createHostDrivers({ dataDir: options.dataDir, address: options.address, underlayDevice: options.underlayDevice, netns: options.netns, accelerator: options.accelerator }),
    ...options.drivers,
  };
  const agent = new HostAgent({ nodeName, dataDir: options.dataDir, drivers, uplink: options.uplink });
  // Before serving, so no operation of ours is running: every temp file is a crash's leftover.
  const swept = await agent.sweepLeftovers();
  if (swept.length) log.info('removed leftovers of an interrupted run', { node: nodeName, files: swept });
  // Before serving: `--accelerator kvm` on a host whose KVM does not boot must stop the start-up.
  let probe = await agent.acceleratorProbe();
  log.info(describeProbe(probe), { node: nodeName });
  const metricsAt = options.metricsListen === undefined ? undefined : splitHostPort(options.metricsListen);
  const server = await AgentServer.start({ agent, listen, tls: options.tls });
  let metrics: MetricsListener | undefined;
  if (metricsAt) {
    try {
      metrics = await serveMetrics(metricsAt.host, metricsAt.port);
    } catch (err) {
      await server.stop();
      throw err;
    }
  }
  const advertised = options.advertiseEndpoint ?? advertisedEndpoint(listenHost, server.port, options.address);
  const version = agentVersion();
  log.info('agent serving', { node: nodeName, endpoint: server.endpoint, advertised, accelerator: probe.accelerator, version, dataDir: options.dataDir });
  // A probe asked for later (ProbeAccelerator) changes what the heartbeats report.
  agent.onAcceleratorProbed((p) => { probe = p; });

  const facts = () => ({ nodeName, address: options.address, agentEndpoint: advertised, accelerator: probe.accelerator, probe, agentVersion: version, capacity: hostCapacity(options.dataDir) });
  let heartbeater: Heartbeater | undefined;
  const stopHeartbeats = new AbortController();
  let heartbeating: Promise<void> = Promise.resolve();
  if (options.registrar) {
    const registrar = options.registrar;
    try {
      await registrar.register(nodeDocument(facts()));
      log.info('node registered', { node: nodeName });
    } catch (err) {
      // Not fatal: the heartbeater registers again once the store answers (NotFound → register).
      log.warn('node registration failed; heartbeats will retry', { node: nodeName, error: (err as Error).message });
    }
    heartbeater = new Heartbeater({
      registrar,
      nodeName,
      intervalMs: options.heartbeatIntervalMs,
      status: () => readyStatus(facts()),
      node: () => nodeDocument(facts()),
    });
    heartbeating = heartbeater.run(stopHeartbeats.signal);
  }

  const done = new Promise<void>((resolve) => {
    const stop = async () => {
      log.info('agent stopping; VMs keep running', { node: nodeName });
      stopHeartbeats.abort();
      agent.close();
      await Promise.all([server.stop(), heartbeating, metrics?.stop()]);
      log.info('agent stopped', { node: nodeName });
      resolve();
    };
    if (options.signal.aborted) void stop();
    else options.signal.addEventListener('abort', () => void stop(), { once: true });
  });

  return { agent, endpoint: server.endpoint, port: server.port, advertisedEndpoint: advertised, accelerator: probe.accelerator, probe, heartbeater, metricsPort: metrics?.port, done };
}
