// The gRPC transport on its own: an in-process server with mTLS in front of a recording AgentApi,
// called through AgentClient. Proves the field mapping, typed errors with their field, the
// console stream and that only clients with a certificate from the cluster CA get in.
// (The same server in front of HostAgent with real drivers is agent/agent.int.test.ts.)
import * as net from 'node:net';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  isN0Error,
} from '../api/errors';
import { createCa, issueClientCert, issueServerCert } from '../api/pki';
import type {
  AgentApi,
  BlockStorageObservation,
  ConsoleStream,
  EnsureBlockStorageRequest,
  EnsureNetworkRequest,
  EnsureVmRequest,
  NodeObservation,
  VmAction,
  VmActionOptions,
  VmObservation,
} from './api';
import { AgentClient } from './client';
import type { NetworkState } from './drivers/types';
import { AgentServer, splitHostPort } from './server';
import { socketConsole } from './service';

/** Answers from fixed data and records what arrived, so the test sees the wire mapping. */
class RecordingAgent implements AgentApi {
  calls: [string, unknown][] = [];
  consoleServer?: net.Server;
  echoPath = '';

  async ensureBlockStorage(req: EnsureBlockStorageRequest): Promise<BlockStorageObservation> {
    this.calls.push(['ensureBlockStorage', req]);
    if (req.name === 'missing-source') throw new FailedPreconditionError('block storage "base" does not exist', 'backing_from');
    if (req.sourceUrl) return { name: req.name, present: false, inProgress: { phase: 'fetching', bytesDone: 5, bytesTotal: 2 ** 40 } };
    return { name: req.name, present: true, info: { path: `/d/${req.name}.qcow2`, format: 'qcow2', virtualSize: req.limitBytes, actualSize: 196608, backingFile: req.backingFrom && `/d/${req.backingFrom}.qcow2` } };
  }
  async resizeBlockStorage(name: string, limitBytes: number): Promise<BlockStorageObservation> {
    this.calls.push(['resizeBlockStorage', { name, limitBytes }]);
    throw new NotFoundError('block storage', name);
  }
  async deleteBlockStorage(name: string): Promise<void> { this.calls.push(['deleteBlockStorage', name]); }
  async ensureNetwork(req: EnsureNetworkRequest): Promise<NetworkState> {
    this.calls.push(['ensureNetwork', req]);
    return { name: req.name, bridgeName: 'n0br12345678', present: true, segmentId: req.segmentId, peers: req.peers, taps: [] };
  }
  async deleteNetwork(name: string): Promise<void> { this.calls.push(['deleteNetwork', name]); }
  async ensureVm(req: EnsureVmRequest): Promise<VmObservation> {
    this.calls.push(['ensureVm', req]);
    if (req.vcpus > 64) throw new InvalidArgumentError('vcpus must be at most 64', 'vcpus');
    return { name: req.name, present: true, runState: 'running', pid: 4242, accelerator: 'tcg', uuid: req.uuid };
  }
  async vmAction(name: string, action: VmAction, options?: VmActionOptions): Promise<VmObservation> {
    this.calls.push(['vmAction', { name, action, ...options }]);
    return { name, present: true, runState: action === 'PAUSE' ? 'paused' : 'running' };
  }
  async deleteVm(name: string): Promise<void> {
    this.calls.push(['deleteVm', name]);
    // An agent call that takes long (an ACPI shutdown): what a reconcile may be waiting on when it loses the lead.
    if (name === 'slow') await new Promise((r) => setTimeout(r, 10_000).unref());
  }
  async observe(): Promise<NodeObservation> {
    this.calls.push(['observe', undefined]);
    return {
      nodeName: 'node1', accelerator: 'tcg', agentVersion: '0.1.0',
      blockStorages: [{ name: 'd', present: false, error: 'fetch failed: 404' }],
      networks: [{ name: 'n', bridgeName: 'n0brx', present: true, peers: ['10.0.0.2'], taps: ['n0tpx'] }],
      vms: [{ name: 'v', present: true, runState: 'shutdown' }],
    };
  }
  watchVms(signal: AbortSignal, onChange: (name: string) => void): Promise<void> {
    this.calls.push(['watchVms', undefined]);
    onChange('watched-vm');
    return new Promise((resolve) => { if (signal.aborted) resolve(); else signal.addEventListener('abort', () => resolve(), { once: true }); });
  }

  async listVms(): Promise<VmObservation[]> {
    this.calls.push(['listVms', undefined]);
    return [{ name: 'v', present: true, runState: 'paused', pid: 42, accelerator: 'tcg', uuid: '0b3a7c1e-8f6d-4c2a-9e5b-1d2f3a4b5c6d' }, { name: 'w', present: true, runState: 'crashed', startedAt: '2026-12-01T21:00:00.000Z', failure: { message: 'QEMU exited (1) during start: kvm_buf_set_msrs: Assertion failed', startedAt: '2026-12-01T21:00:00.000Z' } }];
  }
  async openConsole(name: string, kind: 'serial' | 'vnc'): Promise<ConsoleStream> {
    if (name !== 'echo') throw new NotFoundError('virtual machine', name);
    expect(kind).toBe('serial');
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection({ path: this.echoPath }, () => resolve(s));
      s.once('error', reject);
    });
    return socketConsole(socket);
  }
  close(): void {}
}

const ca = createCa();
const serverPair = issueServerCert(ca, { commonName: 'agent', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
const clientPair = issueClientCert(ca, { commonName: 'controller' });
const foreignCa = createCa({ commonName: 'foreign' });
const foreignPair = issueClientCert(foreignCa, { commonName: 'mallory' });

let server: AgentServer;
let agent: RecordingAgent;
let client: AgentClient;
let echo: net.Server;
const sockDir = require('node:fs').mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'n0srv-'));

beforeAll(async () => {
  agent = new RecordingAgent();
  // A unix socket echo server standing in for QEMU's serial chardev: it greets, then echoes.
  agent.echoPath = `${sockDir}/serial.sock`;
  echo = net.createServer((s) => { s.write('login: '); s.pipe(s); });
  await new Promise<void>((r) => echo.listen(agent.echoPath, r));
  server = await AgentServer.start({ agent, listen: '127.0.0.1:0', tls: { ca: ca.certPem, cert: serverPair.certPem, key: serverPair.keyPem } });
  client = new AgentClient({ endpoint: server.endpoint, tls: { ca: ca.certPem, cert: clientPair.certPem, key: clientPair.keyPem }, deadlineMs: 5_000 });
});

afterAll(async () => {
  client?.close();
  await server?.stop(1_000);
  await new Promise((r) => echo.close(r));
  require('node:fs').rmSync(sockDir, { recursive: true, force: true });
});

test('requests and answers cross the wire field by field', async () => {
  const overlay = await client.ensureBlockStorage({ name: 'd1', limitBytes: 2 ** 33, backingFrom: 'base' });
  expect(overlay).toEqual({ name: 'd1', present: true, info: { path: '/d/d1.qcow2', format: 'qcow2', virtualSize: 2 ** 33, actualSize: 196608, backingFile: '/d/base.qcow2' } });
  expect(agent.calls.at(-1)).toEqual(['ensureBlockStorage', { name: 'd1', limitBytes: 2 ** 33, backingFrom: 'base' }]);

  const fetching = await client.ensureBlockStorage({ name: 'd2', limitBytes: 1 << 30, sourceUrl: 'http://127.0.0.1:1/x.qcow2', sourceSha256: 'ab'.repeat(32) });
  expect(fetching).toEqual({ name: 'd2', present: false, inProgress: { phase: 'fetching', bytesDone: 5, bytesTotal: 2 ** 40 } });
  expect(agent.calls.at(-1)?.[1]).toEqual({ name: 'd2', limitBytes: 1 << 30, sourceUrl: 'http://127.0.0.1:1/x.qcow2', sourceSha256: 'ab'.repeat(32) });

  const netState = await client.ensureNetwork({ name: 'n1', segmentId: 7, peers: ['10.0.0.2'], gatewayCidr: '192.168.1.1/24' });
  expect(netState).toEqual({ name: 'n1', bridgeName: 'n0br12345678', present: true, segmentId: 7, peers: ['10.0.0.2'], taps: [] });
  expect(agent.calls.at(-1)?.[1]).toEqual({ name: 'n1', segmentId: 7, peers: ['10.0.0.2'], gatewayCidr: '192.168.1.1/24' });

  const vmReq: EnsureVmRequest = {
    name: 'vm1', uuid: '0b0e4a3e-6d5f-4a57-9c3a-5b8c2f1e9d00', vcpus: 2, memoryBytes: 512 * 2 ** 20, blockStorageNames: ['d1'],
    nics: [{ networkName: 'n1', hardwareAddress: '52:54:00:00:00:01', ipv4Address: '192.168.1.5', ipv4PrefixLength: 24, ipv4Gateway: '192.168.1.1' }],
    loginUsername: 'user', loginPassword: 'pw', sshAuthorizedKeys: ['ssh-ed25519 AAAA'], runState: 'RUNNING',
    loginPasswordHash: '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1',
    kernel: '/boot/k', initrd: '/tmp/i', kernelArgs: 'console=ttyS0',
  };
  expect(await client.ensureVm(vmReq)).toEqual({ name: 'vm1', present: true, runState: 'running', pid: 4242, accelerator: 'tcg', uuid: vmReq.uuid });
  expect(agent.calls.at(-1)?.[1]).toEqual(vmReq);

  expect(await client.vmAction('vm1', 'PAUSE')).toEqual({ name: 'vm1', present: true, runState: 'paused' });
  // The action id crosses the wire (the agent's at-most-once guard keys on it).
  await client.vmAction('vm1', 'REBOOT', { id: 'act-7' });
  expect(agent.calls.at(-1)).toEqual(['vmAction', { name: 'vm1', action: 'REBOOT', id: 'act-7' }]);
  await client.deleteVm('vm1');
  await client.deleteNetwork('n1');
  await client.deleteBlockStorage('d1');
  expect(agent.calls.slice(-3)).toEqual([['deleteVm', 'vm1'], ['deleteNetwork', 'n1'], ['deleteBlockStorage', 'd1']]);

  expect(await client.observe()).toEqual(await agent.observe());
  expect(await client.listVms()).toEqual(await agent.listVms());
});

test('WatchVms streams the agent\'s VM events until the caller stops listening', async () => {
  const stop = new AbortController();
  const seen: string[] = [];
  const watching = client.watchVms(stop.signal, (name) => { seen.push(name); stop.abort(); });
  await watching;
  expect(seen).toEqual(['watched-vm']);
  expect(agent.calls.some(([m]) => m === 'watchVms')).toBe(true);
});

test('a call made through withSignal is cancelled when the signal aborts, and not sent once it has', async () => {
  const lead = new AbortController();
  const view = client.withSignal(lead.signal);
  const started = Date.now();
  const waiting = view.deleteVm('slow').catch((e) => e);
  setTimeout(() => lead.abort(new Error('leadership lost')), 200);
  const err = await waiting;
  expect(err).toMatchObject({ code: 'Unavailable' });
  expect(Date.now() - started).toBeLessThan(3_000);
  const calls = agent.calls.length;
  expect(await view.deleteVm('vm9').catch((e) => e)).toMatchObject({ code: 'Unavailable', message: 'DeleteVm not sent: leadership lost' });
  expect(agent.calls.length).toBe(calls);
  // The client itself is untouched.
  await client.deleteVm('vm9');
  expect(agent.calls.at(-1)).toEqual(['deleteVm', 'vm9']);
});

test('typed errors come back with their message and field', async () => {
  const err1 = await client.ensureVm({ name: 'vm1', uuid: 'x', vcpus: 100, memoryBytes: 1, blockStorageNames: [], nics: [], sshAuthorizedKeys: [], runState: 'RUNNING' }).catch((e) => e);
  expect(err1).toBeInstanceOf(InvalidArgumentError);
  expect(err1).toMatchObject({ field: 'vcpus', message: 'vcpus must be at most 64' });
  const err2 = await client.resizeBlockStorage('nope', 1).catch((e) => e);
  expect(err2).toBeInstanceOf(NotFoundError);
  expect(err2.message).toBe('block storage "nope" not found');
  const err3 = await client.ensureBlockStorage({ name: 'missing-source', limitBytes: 1, backingFrom: 'base' }).catch((e) => e);
  expect(err3).toBeInstanceOf(FailedPreconditionError);
  expect(err3.field).toBe('backing_from');
});

test('the console streams both ways and errors are typed', async () => {
  const stream = await client.openConsole('echo', 'serial');
  let text = '';
  const ended = new Promise<Error | undefined>((resolve) => stream.onEnd(resolve));
  stream.onData((c) => { text += c.toString(); });
  stream.write(Buffer.from('hello\n'));
  const deadline = Date.now() + 5_000;
  while (!text.includes('hello') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(text).toBe('login: hello\n');
  stream.close();
  expect(await ended).toBeUndefined();

  const missing = await client.openConsole('ghost', 'serial').catch((e) => e);
  expect(missing).toBeInstanceOf(NotFoundError);
  const badKind = await client.openConsole('echo', 'spice' as never).catch((e) => e);
  expect(badKind).toBeInstanceOf(InvalidArgumentError);
  expect(badKind.field).toBe('kind');
});

test('clients without a certificate from the cluster CA are refused', async () => {
  const anonymous = new AgentClient({ endpoint: server.endpoint, tls: { ca: ca.certPem }, deadlineMs: 3_000 });
  const foreign = new AgentClient({ endpoint: server.endpoint, tls: { ca: ca.certPem, cert: foreignPair.certPem, key: foreignPair.keyPem }, deadlineMs: 3_000 });
  // A client that does not trust the server's CA refuses the server as well.
  const distrustful = new AgentClient({ endpoint: server.endpoint, tls: { ca: foreignCa.certPem, cert: clientPair.certPem, key: clientPair.keyPem }, deadlineMs: 3_000 });
  const observesBefore = agent.calls.filter(([m]) => m === 'observe').length;
  try {
    for (const c of [anonymous, foreign, distrustful]) {
      const err = await c.observe().catch((e) => e);
      expect(isN0Error(err)).toBe(true);
      // Refused at the handshake: the client only ever sees the channel as unavailable (or timed out).
      expect(err instanceof UnavailableError || isN0Error(err, 'DeadlineExceeded')).toBe(true);
    }
    expect(agent.calls.filter(([m]) => m === 'observe')).toHaveLength(observesBefore);
    // The valid client still gets through on the same server.
    expect((await client.observe()).nodeName).toBe('node1');
  } finally {
    anonymous.close();
    foreign.close();
    distrustful.close();
  }
});

test('splitHostPort', () => {
  expect(splitHostPort('127.0.0.1:20181')).toEqual({ host: '127.0.0.1', port: 20181 });
  expect(splitHostPort('[::1]:0')).toEqual({ host: '::1', port: 0 });
  expect(() => splitHostPort('localhost')).toThrow(InvalidArgumentError);
  expect(() => splitHostPort('a:99999')).toThrow(/listen/);
});
