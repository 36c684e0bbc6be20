#!/usr/bin/env node
// n0stack: the server binary. `up` runs everything on one machine; `api`, `controllers` and
// `agent` run one part each for multi-machine deployments (see README "Deployment shapes").
import { Command, Option } from 'commander';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VERSION } from './version';
import { createLogger, logger, setRootLogger } from '../api/log';
import { openStore, type OpenStoreOptions } from '../api/store/index';
import type { Store } from '../api/store/store';
import { ensureAgentIdentity, ensureCertBundle, ensureControllersIdentity, exportAgentBundle, exportControllersBundle, isDnsName, readTlsMaterial } from '../api/pki';
import { TOKEN_ROLES, TokenFile, type TokenRole } from '../api/server/auth';
import { isLoopbackListen, type FacadeTls, type LegacyListener } from '../api/server/server';
import * as net from 'node:net';
import { runAgent } from '../agent/main';
import { chooseAccelerator, describeProbe, parseAcceleratorChoice, ACCELERATOR_CHOICES } from '../agent/drivers/accel-probe';
import { StoreNodeRegistrar, type NodeRegistrar } from '../agent/registration';
import { FacadeNodeRegistrar } from '../agent/registration-facade';
import { DEFAULT_WORKERS, startApi, startControllers } from './controlplane';
import { writeClientConfig, configPath } from './config';
import { startMetricsServer } from './metrics';
import { validateName } from '../api/names';
import { Etcd3 } from 'etcd3';
import { etcdClientOptions } from '../api/store/etcd';
import { DEFAULT_LEASE_SECONDS, etcdLeaderElector, kubernetesLeaderElector, type ControllerElector } from '../controllers/leader';

const program = new Command('n0stack')
  .description('n0stack server: facade, controllers and node agent')
  .version(VERSION)
  .option('--log-level <level>', 'error|warn|info|debug (env N0STACK_LOG_LEVEL)');

program.hook('preAction', () => {
  const level = program.opts().logLevel as string | undefined;
  setRootLogger(createLogger({ level }));
});

const storeOptions = (cmd: Command) => cmd
  .addOption(new Option('--store <backend>', 'where documents live').choices(['embedded', 'etcd', 'kubernetes']).default('embedded'))
  .option('--etcd-endpoints <urls>', 'comma-separated etcd client URLs (with --store etcd)')
  .option('--etcd-ca <file>').option('--etcd-cert <file>').option('--etcd-key <file>')
  .option('--etcd-prefix <prefix>', 'key prefix, so installations can share an etcd', '/n0stack')
  .option('--kubeconfig <file>', 'with --store kubernetes (default: in-cluster or ~/.kube/config)');

function storeFrom(opts: Record<string, string | undefined>, dataDir: string): Promise<Store> {
  const options: OpenStoreOptions = {
    backend: opts.store as OpenStoreOptions['backend'],
    dataDir: path.join(dataDir, 'store'),
    etcdEndpoints: opts.etcdEndpoints?.split(',').map((s) => s.trim()).filter(Boolean),
    etcdTls: opts.etcdCa ? { ca: opts.etcdCa, cert: opts.etcdCert, key: opts.etcdKey } : undefined,
    prefix: opts.etcdPrefix,
    kubeconfig: opts.kubeconfig,
  } as OpenStoreOptions;
  if (options.backend === 'embedded') fs.mkdirSync(options.dataDir!, { recursive: true, mode: 0o700 });
  return openStore(options);
}

/** Stops everything on SIGINT/SIGTERM, in reverse order of start, and exits. */
function lifecycle(): { signal: AbortSignal; onStop(fn: () => Promise<void> | void): void; wait(): Promise<void> } {
  const controller = new AbortController();
  const stops: (() => Promise<void> | void)[] = [];
  let resolveDone: () => void;
  const done = new Promise<void>((r) => { resolveDone = r; });
  const shutdown = async (sig: string) => {
    if (controller.signal.aborted) { process.exit(130); }
    logger().info(`${sig}: shutting down (VMs keep running; send again to force)`);
    controller.abort();
    for (const stop of stops.reverse()) {
      try { await stop(); } catch (err) { logger().warn(`shutdown step failed: ${(err as Error).message}`); }
    }
    resolveDone();
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  return { signal: controller.signal, onStop: (fn) => stops.push(fn), wait: () => done };
}

function step(message: string): void {
  process.stderr.write(`  \u2713 ${message}\n`);
}

/**
 * The bootstrap admin token, `<data-dir>/token`: made once, readable by its owner only (mode 0600
 * in a 0700 data dir; n0ctl's config that `up` writes is 0600 too). A copy left readable by others
 * (an older install, a restored backup) is tightened, saying so.
 */
function ensureToken(dataDir: string): string {
  const file = path.join(dataDir, 'token');
  // 'wx': never overwrite a token another process just made.
  try { fs.writeFileSync(file, randomBytes(24).toString('base64url') + '\n', { mode: 0o600, flag: 'wx' }); } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const mode = fs.statSync(file).mode & 0o777;
  if (mode & 0o077) {
    fs.chmodSync(file, 0o600);
    logger().warn(`${file} was readable by others (mode ${mode.toString(8)}); it is 0600 now. Anyone who read it holds the admin token: make a new one (remove the file and restart) if that matters.`);
  }
  return fs.readFileSync(file, 'utf8').trim();
}

/** Where n0ctl and agents reach the facade: what its serving certificate must name. */
function facadeNames(listen: string, extra: string[]): { dnsNames: string[]; ipAddresses: string[] } {
  const host = listen.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const names = ['localhost', '127.0.0.1', ...extra, ...(host && host !== '0.0.0.0' && host !== '::' ? [host] : []), ...(host === '0.0.0.0' || host === '::' ? [os.hostname()] : [])];
  return {
    dnsNames: [...new Set(names.filter((n) => !net.isIP(n) && isDnsName(n)))],
    ipAddresses: [...new Set(names.filter((n) => net.isIP(n)))],
  };
}

function pki(dataDir: string, nodeName: string, address: string, facadeListen: string) {
  const dir = path.join(dataDir, 'pki');
  ensureCertBundle(dir, {
    servers: [{ name: 'facade', commonName: 'n0stack facade', ...facadeNames(facadeListen, [address]) }],
    clients: [{ name: 'controllers' }],
  });
  const facade = readTlsMaterial(dir, 'facade');
  return {
    dir, caFile: path.join(dir, 'ca.crt'),
    server: ensureAgentIdentity(dir, nodeName, ['127.0.0.1', address]),
    client: readTlsMaterial(dir, 'controllers'),
    facade: { cert: facade.cert, key: facade.key, clientCa: facade.ca } satisfies FacadeTls,
  };
}

function tokensFile(dataDir: string): string {
  return path.join(dataDir, 'tokens.json');
}

/**
 * Plaintext is allowed, but never quietly and only on loopback (for local tools such as the
 * original n0cli): on any other address every bearer token would cross the network readable.
 */
function warnPlaintext(listen: string): void {
  if (!isLoopbackListen(listen)) {
    throw new Error(`--insecure-plaintext listens on loopback only (127.0.0.1, ::1, localhost), not ${JSON.stringify(listen)}; serve TLS with --tls-cert/--tls-key there`);
  }
  const banner = '!'.repeat(78);
  logger().warn(`${banner}\nINSECURE: the facade on ${listen} speaks PLAINTEXT (--insecure-plaintext): bearer tokens and\nconsole URLs travel unencrypted and no node certificate can be checked. Use --tls-cert/--tls-key.\n${banner}`);
}

/** `--legacy-listen` and its companions, on `up` and `api`. */
function legacyOptions(command: Command): Command {
  return command
    .option('--legacy-listen <host:port>', 'also serve the seed-era API in PLAINTEXT without authentication, for the original n0cli (loopback only; e.g. 127.0.0.1:20183)')
    .addOption(new Option('--legacy-role <role>', 'the role every call on the legacy listener acts with').choices([...TOKEN_ROLES]).default('viewer'))
    .option('--legacy-listen-force', 'let --legacy-listen use an address other than loopback (anyone who reaches it gets --legacy-role)');
}

function legacyFrom(opts: { legacyListen?: string; legacyRole: TokenRole; legacyListenForce?: boolean }): LegacyListener | undefined {
  return opts.legacyListen ? { listen: opts.legacyListen, role: opts.legacyRole, force: !!opts.legacyListenForce } : undefined;
}

function facadeTlsFrom(opts: { tlsCert?: string; tlsKey?: string; clientCa?: string }, pkiDir: string): FacadeTls {
  const certFile = opts.tlsCert ?? path.join(pkiDir, 'facade.crt');
  const keyFile = opts.tlsKey ?? path.join(pkiDir, 'facade.key');
  if (!fs.existsSync(certFile) || !fs.existsSync(keyFile)) {
    throw new Error(`the facade serves TLS: give --tls-cert and --tls-key (${certFile} / ${keyFile} do not exist), or --insecure-plaintext to opt out`);
  }
  const clientCa = opts.clientCa ?? (fs.existsSync(path.join(pkiDir, 'ca.crt')) ? path.join(pkiDir, 'ca.crt') : undefined);
  return { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), clientCa: clientCa ? fs.readFileSync(clientCa) : undefined };
}

legacyOptions(storeOptions(program.command('up')))
  .description('all-in-one: embedded store, gRPC facade, controllers and a local agent')
  .option('--data-dir <dir>', 'state directory (store, disks, VM run dirs, certificates, token)', '/var/lib/n0stack')
  .option('--listen <host:port>', 'facade gRPC address', '127.0.0.1:20180')
  .option('--console-listen <host:port>', 'console WebSocket address (OpenConsole URLs)', '127.0.0.1:20182')
  .option('--console-public-url <url>', 'wss://host:port the OpenConsole URLs start with, when clients reach the consoles at another address')
  .option('--metrics-listen <host:port>', 'Prometheus /metrics address', '127.0.0.1:20190')
  .option('--agent-listen <host:port>', 'local agent gRPC address', '127.0.0.1:20181')
  .option('--node-name <name>', 'name of the local Node (the seed\'s examples pin vm-host1)', 'vm-host1')
  .option('--address <ip>', 'underlay address of this node (VXLAN)', '127.0.0.1')
  .option('--netns <name>', 'run the agent\'s networks and VMs inside this network namespace')
  .option('--config <file>', 'n0ctl config to write', configPath())
  .addOption(acceleratorOption())
  .addHelpText('after', '\nExample:\n  n0stack up --data-dir /var/lib/n0stack\n  n0ctl get node')
  .action(async (opts) => {
    const life = lifecycle();
    const dataDir = path.resolve(opts.dataDir);
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const nodeName = validateName(opts.nodeName, '--node-name');
    const store = await storeFrom(opts, dataDir);
    life.onStop(() => store.close());
    step(`store: ${store.backend}${store.backend === 'embedded' ? ` (${path.join(dataDir, 'store')})` : ''}`);
    const certs = pki(dataDir, nodeName, opts.address, opts.listen);
    step(`certificates: ${certs.dir}`);
    const agent = await runAgent({
      listen: opts.agentListen, dataDir: path.join(dataDir, 'agent'), nodeName, address: opts.address, netns: opts.netns,
      accelerator: parseAcceleratorChoice(opts.accelerator, '--accelerator'), tls: certs.server, registrar: new StoreNodeRegistrar(store), signal: life.signal,
    });
    life.onStop(() => agent.done);
    step(`agent: node ${nodeName} on ${agent.endpoint} (accelerator: ${agent.accelerator}; ${agent.probe.reason})`);
    const controllers = await startControllers({ store, agentTls: certs.client, signal: life.signal });
    life.onStop(() => controllers.manager.stopped);
    step('controllers: Node, Network, BlockStorage, Image, VirtualMachine');
    const token = ensureToken(dataDir);
    const api = await startApi({
      store, listen: opts.listen, token, tokens: new TokenFile(tokensFile(dataDir)), tls: certs.facade,
      consoleListen: opts.consoleListen, consolePublicUrl: opts.consolePublicUrl, agents: controllers.agents, legacy: legacyFrom(opts),
    });
    life.onStop(() => api.stop());
    // A wildcard listen address is no address to dial: the config points at loopback then.
    const endpoint = opts.listen.replace(/^(0\.0\.0\.0|\[::\]):/, '127.0.0.1:').replace(/:\d+$/, `:${api.facade.port}`);
    const consoleAt = opts.consoleListen.replace(/:\d+$/, `:${api.consoles?.listenPort ?? 0}`);
    step(`facade: ${endpoint} (TLS, CA ${certs.caFile}; consoles on wss://${consoleAt}; web UI and REST gateway on https://${consoleAt}/)`);
    if (api.facade.legacyPort !== undefined) step(`legacy listener: ${opts.legacyListen.replace(/:\d+$/, `:${api.facade.legacyPort}`)} (PLAINTEXT, no authentication, role ${opts.legacyRole}; for the original n0cli)`);
    const metrics = await startMetricsServer(opts.metricsListen);
    life.onStop(() => metrics.stop());
    writeClientConfig(opts.config, { endpoint, token, ca: certs.caFile });
    step(`n0ctl config written to ${opts.config}`);
    process.stderr.write(`\nn0stack is up. Try:\n  npx n0ctl get node\n  npx n0ctl do e2e/seed/boot-vm-from-image.yaml\nCtrl-C stops the control plane and the agent; VMs keep running.\n`);
    await life.wait();
  });

legacyOptions(storeOptions(program.command('api')))
  .description('the gRPC facade only (stateless; run several behind a load balancer)')
  .option('--data-dir <dir>', 'where the embedded store, token and certificates are', '/var/lib/n0stack')
  .option('--listen <host:port>', 'facade gRPC address', '127.0.0.1:20180')
  .option('--token-file <file>', 'bearer token file (default <data-dir>/token)')
  .option('--console-listen <host:port>', 'console WebSocket address', '127.0.0.1:20182')
  .option('--console-public-url <url>', 'wss://host:port the OpenConsole URLs start with, when clients reach the consoles at another address (a load balancer)')
  .option('--pki-dir <dir>', 'certificates to reach agents for consoles, and the default serving certificate facade.crt/facade.key and client CA ca.crt (default <data-dir>/pki)')
  .option('--tls-cert <file>', 'serving certificate (PEM) of the facade (default <pki-dir>/facade.crt)')
  .option('--tls-key <file>', 'its private key (default <pki-dir>/facade.key)')
  .option('--client-ca <file>', 'CA of node client certificates (default <pki-dir>/ca.crt when present)')
  .option('--insecure-plaintext', 'serve plaintext gRPC and ws:// consoles instead of TLS (loopback --listen only; logged loudly)')
  .option('--admission-trusted-users <users>', 'with --store kubernetes: comma-separated user names whose writes the admission webhook (POST /admission/validate on the console listener) lets through unjudged, e.g. the facade\'s and controllers\' service accounts')
  .addHelpText('after', '\nExample:\n  n0stack api --store etcd --etcd-endpoints https://10.0.0.1:2379 --listen 0.0.0.0:20180 --tls-cert /etc/n0stack/pki/facade.crt --tls-key /etc/n0stack/pki/facade.key')
  .action(async (opts) => {
    const life = lifecycle();
    const dataDir = path.resolve(opts.dataDir);
    const pkiDir = opts.pkiDir ?? path.join(dataDir, 'pki');
    const tls = opts.insecurePlaintext ? undefined : facadeTlsFrom(opts, pkiDir);
    if (!tls) warnPlaintext(opts.listen);
    const store = await storeFrom(opts, dataDir);
    life.onStop(() => store.close());
    const token = opts.tokenFile ? fs.readFileSync(opts.tokenFile, 'utf8').trim() : ensureToken(dataDir);
    const agentTls = fs.existsSync(path.join(pkiDir, 'controllers.crt')) ? readTlsMaterial(pkiDir, 'controllers') : undefined;
    const api = await startApi({
      store, listen: opts.listen, token, tokens: new TokenFile(tokensFile(dataDir)), tls,
      consoleListen: agentTls ? opts.consoleListen : undefined, consolePublicUrl: opts.consolePublicUrl, agentTls, legacy: legacyFrom(opts),
      admissionTrustedUsers: opts.admissionTrustedUsers ? String(opts.admissionTrustedUsers).split(',').map((u) => u.trim()).filter(Boolean) : undefined,
    });
    life.onStop(() => api.stop());
    step(`facade: ${opts.listen.replace(/:\d+$/, `:${api.facade.port}`)} (${tls ? 'TLS' : 'PLAINTEXT'}, store: ${store.backend})`);
    if (api.facade.legacyPort !== undefined) step(`legacy listener: ${opts.legacyListen.replace(/:\d+$/, `:${api.facade.legacyPort}`)} (PLAINTEXT, no authentication, role ${opts.legacyRole})`);
    await life.wait();
  });

storeOptions(program.command('controllers'))
  .description('the reconcilers (with --leader-elect several may run; one leads)')
  .option('--data-dir <dir>', 'where the embedded store and certificates are', '/var/lib/n0stack')
  .option('--pki-dir <dir>', 'CA and client certificate to reach agents (default <data-dir>/pki)')
  .option('--workers <n>', 'concurrent reconciles per kind', String(DEFAULT_WORKERS))
  .option('--leader-elect', 'run only while leading (etcd lease or Kubernetes Lease); needed for more than one replica')
  .option('--leader-elect-lease-seconds <s>', 'a dead leader is replaced within about this long', String(DEFAULT_LEASE_SECONDS))
  .option('--leader-elect-identity <id>', 'this replica\'s name in the election', `${os.hostname()}-${process.pid}`)
  .option('--leader-elect-namespace <ns>', 'namespace of the Lease (kubernetes store)')
  .addHelpText('after', '\nExample:\n  n0stack controllers --store etcd --etcd-endpoints http://10.0.0.1:2379,http://10.0.0.2:2379 --leader-elect --pki-dir /etc/n0stack/pki')
  .action(async (opts) => {
    const life = lifecycle();
    const dataDir = path.resolve(opts.dataDir);
    const store = await storeFrom(opts, dataDir);
    life.onStop(() => store.close());
    let elector: ControllerElector | undefined;
    if (opts.leaderElect) {
      const leaseSeconds = Number(opts.leaderElectLeaseSeconds);
      if (opts.store === 'etcd') {
        const client = new Etcd3(etcdClientOptions({ endpoints: opts.etcdEndpoints.split(','), tls: opts.etcdCa ? { ca: opts.etcdCa, cert: opts.etcdCert, key: opts.etcdKey } : undefined }));
        life.onStop(() => client.close());
        elector = etcdLeaderElector(client, { identity: opts.leaderElectIdentity, prefix: opts.etcdPrefix, leaseSeconds });
      } else if (opts.store === 'kubernetes') {
        elector = kubernetesLeaderElector({ identity: opts.leaderElectIdentity, namespace: opts.leaderElectNamespace, leaseSeconds, kubeconfig: opts.kubeconfig });
      } else {
        throw new Error('--leader-elect needs a shared store: --store etcd or --store kubernetes');
      }
    }
    const pkiDir = opts.pkiDir ?? path.join(dataDir, 'pki');
    const controllers = await startControllers({ store, agentTls: readTlsMaterial(pkiDir, 'controllers'), workers: Number(opts.workers), elector, signal: life.signal });
    // Resign only after the workers stopped, so a follower never overlaps an in-flight reconcile.
    life.onStop(async () => { await controllers.manager.stopped; await elector?.resign(); });
    step(`controllers running (store: ${store.backend}${elector ? `, leader election as ${elector.identity}` : ''})`);
    await life.wait();
  });

storeOptions(program.command('agent'))
  .description('the node agent of this hypervisor host')
  .option('--data-dir <dir>', 'disks, VM run dirs', '/var/lib/n0stack/agent')
  .option('--listen <host:port>', 'agent gRPC address', '127.0.0.1:20181')
  .requiredOption('--node-name <name>', 'this Node\'s name')
  .requiredOption('--address <ip>', 'underlay address other nodes reach this one at')
  .option('--underlay-device <interface>', 'interface VXLAN traffic leaves through (the one holding --address)')
  .requiredOption('--pki-dir <dir>', 'CA and this agent\'s server certificate (agent.crt/agent.key)')
  .option('--uplink <interface>', 'host interface for VLAN networks')
  .option('--metrics-listen <host:port>', 'Prometheus /metrics address of the agent')
  .option('--netns <name>', 'run networks and VMs inside this network namespace')
  .option('--api-endpoint <host:port>', 'register through the facade with this node\'s certificate (no store access needed on this host)')
  .option('--api-ca <file>', 'CA of the facade\'s TLS certificate (default <pki-dir>/ca.crt)')
  .option('--api-token-file <file>', 'authenticate with this bearer token instead of the node certificate (env N0STACK_TOKEN)')
  .option('--api-insecure-plaintext', 'reach a facade started with --insecure-plaintext')
  .addOption(acceleratorOption())
  .addHelpText('after', '\nExample (a second host joining an n0stack up on 10.0.0.1):\n  n0stack pki issue-agent --data-dir /var/lib/n0stack --node-name host2 --address 10.0.0.2 --out /tmp/host2-pki   # on 10.0.0.1\n  n0stack agent --node-name host2 --address 10.0.0.2 --listen 10.0.0.2:20181 --pki-dir /etc/n0stack/pki --api-endpoint 10.0.0.1:20180')
  .action(async (opts) => {
    const life = lifecycle();
    let registrar: NodeRegistrar;
    if (opts.apiEndpoint) {
      // The node's own certificate is its credential: the facade lets it write only its own Node.
      const token = opts.apiTokenFile ? fs.readFileSync(opts.apiTokenFile, 'utf8').trim() : process.env.N0STACK_TOKEN;
      const identity = readTlsMaterial(opts.pkiDir, 'agent');
      const facade = new FacadeNodeRegistrar({
        endpoint: opts.apiEndpoint, token, insecurePlaintext: !!opts.apiInsecurePlaintext,
        ca: opts.apiCa ? fs.readFileSync(opts.apiCa) : identity.ca, cert: identity.cert, key: identity.key,
      });
      life.onStop(() => facade.close());
      registrar = facade;
    } else {
      // Registration straight to the store (embedded on the same machine, or etcd).
      const store = await storeFrom(opts, path.dirname(path.resolve(opts.dataDir)));
      life.onStop(() => store.close());
      registrar = new StoreNodeRegistrar(store);
    }
    const agent = await runAgent({
      listen: opts.listen, dataDir: path.resolve(opts.dataDir), nodeName: validateName(opts.nodeName, '--node-name'), address: opts.address, underlayDevice: opts.underlayDevice,
      tls: readTlsMaterial(opts.pkiDir, 'agent'), registrar, uplink: opts.uplink, netns: opts.netns, metricsListen: opts.metricsListen, signal: life.signal,
      accelerator: parseAcceleratorChoice(opts.accelerator, '--accelerator'),
    });
    life.onStop(() => agent.done);
    step(`agent: node ${opts.nodeName} on ${agent.endpoint} (accelerator: ${agent.accelerator}; ${agent.probe.reason})`);
    // SIGHUP probes the accelerator again (the host changed: a module loaded, nested virtualization on).
    process.on('SIGHUP', () => { void agent.agent.reprobeAccelerator().then((p) => step(describeProbe(p)), (err: Error) => step(`accelerator probe failed: ${err.message}`)); });
    await life.wait();
  });

program.command('probe-accelerator')
  .description('boot the probe guest and say which accelerator VMs would get here, and why (like virt-host-validate)')
  .addOption(acceleratorOption())
  .option('--timeout-ms <ms>', 'how long one probe boot may take', '5000')
  .option('--kvm-device <path>', 'the KVM device', '/dev/kvm')
  .action(async (opts) => {
    const probe = await chooseAccelerator({
      choice: parseAcceleratorChoice(opts.accelerator, '--accelerator'), binary: 'qemu-system-x86_64', kvmDevice: opts.kvmDevice,
      timeoutMs: Number.parseInt(opts.timeoutMs, 10),
    });
    process.stdout.write(`${describeProbe(probe)}\n`);
  });

/** --accelerator, shared by up, agent and probe-accelerator (env N0STACK_ACCELERATOR). */
function acceleratorOption(): Option {
  return new Option('--accelerator <mode>', 'auto: KVM if the probe guest boots with it, else TCG; kvm: KVM or fail at start-up; tcg: never KVM')
    .choices([...ACCELERATOR_CHOICES]).env('N0STACK_ACCELERATOR').default('auto');
}

const pkiCommand = program.command('pki')
  .description('certificates of the cluster (the facade serves TLS; agents serve mTLS; controllers present a client certificate)');

pkiCommand.command('issue-facade')
  .description('(re-)issue the facade\'s serving certificate <data-dir>/pki/facade.crt for the names clients dial')
  .option('--data-dir <dir>', 'where the cluster CA lives (<data-dir>/pki)', '/var/lib/n0stack')
  .requiredOption('--name <names...>', 'DNS names and IP addresses of the facade (localhost and 127.0.0.1 are always in)')
  .addHelpText('after', '\nExample:\n  n0stack pki issue-facade --name api.n0stack.example 10.0.0.1')
  .action((opts: { dataDir: string; name: string[] }) => {
    const pkiDir = path.join(path.resolve(opts.dataDir), 'pki');
    const names = facadeNames('127.0.0.1:0', opts.name);
    const bad = opts.name.filter((n) => !net.isIP(n) && !isDnsName(n));
    if (bad.length) throw new Error(`--name ${bad.map((n) => JSON.stringify(n)).join(', ')}: not a DNS name or IP address`);
    ensureCertBundle(pkiDir, { servers: [{ name: 'facade', commonName: 'n0stack facade', ...names }] });
    step(`facade certificate ${path.join(pkiDir, 'facade.crt')} names ${[...names.dnsNames, ...names.ipAddresses].join(', ')} (restart the facade to serve it)`);
  });

pkiCommand.command('issue-controllers')
  .description('issue (or keep, while still good) the controllers\' client certificate <data-dir>/pki/controllers.crt, with which they reach the agents; --out copies it for a controllers machine')
  .option('--data-dir <dir>', 'where the cluster CA lives (<data-dir>/pki)', '/var/lib/n0stack')
  .option('--out <dir>', 'also write a bundle (ca.crt, controllers.crt, controllers.key) to copy to the machine that runs n0stack controllers')
  .addHelpText('after', '\nExample (controllers on another machine than the CA):\n  n0stack pki issue-controllers --data-dir /var/lib/n0stack --out /tmp/controllers-pki\n  scp -r /tmp/controllers-pki ctl1:/etc/n0stack/pki\n  ssh ctl1 n0stack controllers --store etcd --etcd-endpoints http://10.0.0.1:2379 --leader-elect --pki-dir /etc/n0stack/pki')
  .action((opts: { dataDir: string; out?: string }) => {
    const pkiDir = path.join(path.resolve(opts.dataDir), 'pki');
    ensureControllersIdentity(pkiDir);
    step(`controllers certificate ${path.join(pkiDir, 'controllers.crt')}`);
    if (opts.out) {
      const out = path.resolve(opts.out);
      exportControllersBundle(pkiDir, out);
      step(`bundle in ${out} (ca.crt, controllers.crt, controllers.key): copy it to the controllers machine and pass --pki-dir`);
    }
  });

pkiCommand.command('issue-agent')
  .description('issue a node\'s identity (CN and SAN = node name): the agent serves controllers with it and authenticates to the facade with it')
  .option('--data-dir <dir>', 'where the cluster CA lives (<data-dir>/pki)', '/var/lib/n0stack')
  .requiredOption('--node-name <name>', 'the agent\'s Node name')
  .requiredOption('--address <ip>', 'the address controllers reach the agent at')
  .requiredOption('--out <dir>', 'bundle directory to copy to the host (ca.crt, agent.crt, agent.key)')
  .action((opts) => {
    const name = validateName(opts.nodeName, '--node-name');
    const pkiDir = path.join(path.resolve(opts.dataDir), 'pki');
    ensureAgentIdentity(pkiDir, name, [opts.address]);
    const out = path.resolve(opts.out);
    exportAgentBundle(pkiDir, name, out);
    step(`identity of node ${name} (${opts.address}) in ${out}: copy it to the host's --pki-dir; it is the host's only credential`);
  });

program.command('token')
  .description('bearer tokens of the facade')
  .command('create')
  .description('create a token, print it once, and keep only its SHA-256 in <data-dir>/tokens.json')
  .addOption(new Option('--role <role>', 'admin: everything; viewer: Get/List/Watch only').choices([...TOKEN_ROLES]).makeOptionMandatory())
  .option('--data-dir <dir>', 'where the facade keeps its tokens', '/var/lib/n0stack')
  .option('--out <file>', 'write the token to this file (mode 0600) instead of stdout')
  .addHelpText('after', '\nExample:\n  n0stack token create --role viewer --out ~/viewer.token\n  n0ctl --token-file ~/viewer.token get vm')
  .action((opts) => {
    const { token, id } = TokenFile.create(tokensFile(path.resolve(opts.dataDir)), opts.role as TokenRole);
    if (opts.out) {
      fs.writeFileSync(path.resolve(opts.out), token + '\n', { mode: 0o600 });
      step(`${opts.role} token ${id} written to ${opts.out}`);
    } else {
      process.stdout.write(token + '\n');
      step(`${opts.role} token ${id} (shown once; only its hash is kept)`);
    }
  });

program.parseAsync(process.argv).catch((err: Error) => {
  console.error(`n0stack: ${err.message}`);
  process.exit(1);
});
