// The roles on their own: which principal a call becomes, and what each role may call.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { NODE_ORGANIZATION } from '../pki';
import { anyOf, authenticate, authorize, isReadOnly, singleToken, TokenFile } from './auth';

const bearer = (token?: string): grpc.Metadata => {
  const md = new grpc.Metadata();
  if (token !== undefined) md.set('authorization', `Bearer ${token}`);
  return md;
};

const codeOf = (fn: () => unknown): number | undefined => {
  try { fn(); return undefined; } catch (err) { return (err as { grpcCode?: number }).grpcCode; }
};

describe('authenticate', () => {
  const tokens = anyOf(singleToken('admin-secret'), singleToken('viewer-secret', 'viewer'));

  it('remembers a verified single token without letting near misses in', () => {
    const authority = singleToken('s3cret-token');
    expect(authority.lookup('s3cret-token')).toEqual({ role: 'admin', id: 'admin' });
    expect(authority.lookup('s3cret-token')).toEqual({ role: 'admin', id: 'admin' });
    expect(authority.lookup('s3cret-tokeN')).toBeUndefined();
    expect(authority.lookup('s3cret-token ')).toBeUndefined();
    expect(authority.lookup('')).toBeUndefined();
  });

  it('maps tokens to their role and refuses a wrong or missing one', () => {
    expect(authenticate(bearer('admin-secret'), undefined, { tokens })).toEqual({ role: 'admin', name: 'token admin' });
    expect(authenticate(bearer('viewer-secret'), undefined, { tokens }).role).toBe('viewer');
    expect(codeOf(() => authenticate(bearer('nope'), undefined, { tokens }))).toBe(grpc.status.UNAUTHENTICATED);
    expect(() => authenticate(bearer(), undefined, { tokens })).toThrow('missing bearer token or node client certificate');
  });

  it('makes a verified node certificate that node, and ignores client certificates of other kinds', () => {
    expect(authenticate(bearer(), { subject: { CN: 'host2', O: NODE_ORGANIZATION } }, { tokens })).toEqual({ role: 'node', name: 'host2' });
    expect(codeOf(() => authenticate(bearer(), { subject: { CN: 'controllers', O: 'n0stack' } }, { tokens }))).toBe(grpc.status.UNAUTHENTICATED);
    // A wrong token is not rescued by a certificate that came along.
    expect(codeOf(() => authenticate(bearer('nope'), { subject: { CN: 'host2', O: NODE_ORGANIZATION } }, { tokens }))).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('asks for the peer certificate only when no token decides', () => {
    let asked = 0;
    const peer = () => { asked++; return { subject: { CN: 'host2', O: NODE_ORGANIZATION } }; };
    expect(authenticate(bearer('admin-secret'), peer, { tokens })).toEqual({ role: 'admin', name: 'token admin' });
    expect(codeOf(() => authenticate(bearer('nope'), peer, { tokens }))).toBe(grpc.status.UNAUTHENTICATED);
    expect(asked).toBe(0);
    expect(authenticate(bearer(), peer, { tokens })).toEqual({ role: 'node', name: 'host2' });
    expect(asked).toBe(1);
    expect(codeOf(() => authenticate(bearer(), () => undefined, { tokens }))).toBe(grpc.status.UNAUTHENTICATED);
  });
});

describe('authorize', () => {
  it('lets a viewer read and names the RPC it refuses', () => {
    const viewer = { role: 'viewer' as const, name: 'viewer token' };
    for (const [s, m] of [['NodeService', 'ListNodes'], ['VirtualMachineService', 'GetVirtualMachine'], ['ResourceService', 'Watch'], ['ResourceService', 'List']]) {
      expect(() => authorize(viewer, s, m, {})).not.toThrow();
    }
    for (const [s, m] of [['NetworkService', 'ApplyNetwork'], ['ImageService', 'GenerateBlockStorage'], ['VirtualMachineService', 'OpenConsole'], ['ResourceService', 'Apply'], ['NodeService', 'HeartbeatNode']]) {
      expect(codeOf(() => authorize(viewer, s, m, {}))).toBe(grpc.status.PERMISSION_DENIED);
    }
    expect(() => authorize(viewer, 'NetworkService', 'DeleteNetwork', { name: 'n' })).toThrow('NetworkService.DeleteNetwork changes state and a viewer token may only read');
  });

  it('lets a node apply and heartbeat its own Node only', () => {
    const node = { role: 'node' as const, name: 'host2' };
    expect(() => authorize(node, 'NodeService', 'ApplyNode', { name: 'host2' })).not.toThrow();
    expect(() => authorize(node, 'NodeService', 'HeartbeatNode', { name: 'host2' })).not.toThrow();
    expect(() => authorize(node, 'NodeService', 'ApplyNode', { name: 'host3' })).toThrow('NodeService.ApplyNode of Node "host3" is not allowed for node "host2"');
    expect(() => authorize(node, 'NodeService', 'DeleteNode', { name: 'host2' })).toThrow('NodeService.DeleteNode is not allowed for node "host2"');
    expect(() => authorize(node, 'NodeService', 'GetNode', { name: 'host2' })).toThrow(/not allowed/);
    expect(() => authorize(node, 'NodeService', 'ApplyNode', { name: 'host2', labels: { rack: 'r1' }, unschedulable: false })).not.toThrow();
    expect(() => authorize(node, 'NodeService', 'ApplyNode', { name: 'host2', unschedulable: true })).toThrow('unschedulable is not allowed for node "host2"');
    expect(() => authorize(node, 'NodeService', 'ApplyNode', { name: 'host2', labels: { 'node-restriction.n0stack.io/zone': 'a' } })).toThrow('label "node-restriction.n0stack.io/zone" is not allowed');
    expect(() => authorize({ role: 'admin', name: 'token admin' }, 'NodeService', 'ApplyNode', { name: 'host2', unschedulable: true, labels: { 'node-restriction.n0stack.io/zone': 'a' } })).not.toThrow();
    expect(codeOf(() => authorize(node, 'ResourceService', 'Apply', { document_json: '{"kind":"Node","metadata":{"name":"host2"}}' }))).toBe(grpc.status.PERMISSION_DENIED);
    expect(codeOf(() => authorize(node, 'VirtualMachineService', 'CreateVirtualMachine', { name: 'host2' }))).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('classifies reads by name, not by accident of a prefix', () => {
    expect(isReadOnly('ImageService', 'GenerateBlockStorage')).toBe(false);
    expect(isReadOnly('ImageService', 'GetImage')).toBe(true);
    expect(isReadOnly('ResourceService', 'Delete')).toBe(false);
  });
});

describe('TokenFile', () => {
  it('keeps only hashes, and a running reader sees a token created later', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-tokens-'));
    try {
      const file = path.join(dir, 'tokens.json');
      const reader = new TokenFile(file);
      expect(reader.lookup('anything')).toBeUndefined();
      const viewer = TokenFile.create(file, 'viewer');
      const admin = TokenFile.create(file, 'admin');
      const text = fs.readFileSync(file, 'utf8');
      expect(text).not.toContain(viewer.token);
      expect(text).not.toContain(admin.token);
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      await new Promise((r) => setTimeout(r, 1100));
      expect(reader.lookup(viewer.token)).toEqual({ role: 'viewer', id: viewer.id });
      expect(reader.lookup(admin.token)).toEqual({ role: 'admin', id: admin.id });
      expect(reader.lookup(`${viewer.token}x`)).toBeUndefined();
      // Verified tokens are remembered, but a token taken out of the file stops working with its re-read.
      const kept = (JSON.parse(fs.readFileSync(file, 'utf8')) as { role: string }[]).filter((e) => e.role !== 'viewer');
      fs.writeFileSync(file, JSON.stringify(kept));
      await new Promise((r) => setTimeout(r, 1100));
      expect(reader.lookup(viewer.token)).toBeUndefined();
      expect(reader.lookup(admin.token)).toEqual({ role: 'admin', id: admin.id });
      expect(() => TokenFile.create(file, 'root' as never)).toThrow('role "root" must be one of admin, viewer');
      // A broken file is UNAVAILABLE naming it, never a way in.
      fs.writeFileSync(file, '{not json');
      const broken = new TokenFile(file);
      expect(codeOf(() => broken.lookup(viewer.token))).toBe(grpc.status.UNAVAILABLE);
      expect(() => broken.lookup(viewer.token)).toThrow(`cannot read its token file ${file}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
