// Who is calling and what they may do. Three roles, after Kubernetes' node authorizer and
// NodeRestriction: admin (everything), viewer (reads only) and node (its own Node only: a
// compromised hypervisor must not be able to redirect other nodes' agent_endpoint and receive
// their VMs). Admin and viewer present bearer tokens; a node presents its client certificate.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError } from '../errors';
import { NODE_ORGANIZATION } from '../pki';

export type Role = 'admin' | 'viewer' | 'node';
export const TOKEN_ROLES = ['admin', 'viewer'] as const;
export type TokenRole = typeof TOKEN_ROLES[number];

export interface Principal {
  role: Role;
  /** For the node role: the Node it is; for a token: `token <id>` (the bootstrap one: `token admin`). */
  name: string;
}

/** Who a token is: its role and the id `n0stack token create` printed (the bootstrap token's: admin). */
export interface TokenIdentity { role: TokenRole; id: string }

/** Looks a presented bearer token up; undefined when it is not one of ours. */
export interface TokenAuthority {
  lookup(token: string): TokenIdentity | undefined;
}

/** One string per caller, as console tickets record it: `admin:token 3fa2b1c0`, `node:host-1`. */
export function principalId(p: Principal): string {
  return `${p.role}:${p.name}`;
}

function denied(message: string): Error {
  return Object.assign(new Error(message), { grpcCode: grpc.status.PERMISSION_DENIED });
}

function unauthenticated(message: string): Error {
  return Object.assign(new Error(message), { grpcCode: grpc.status.UNAUTHENTICATED });
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * Tokens already verified, so a client's every call does not hash its token again. Only verified
 * tokens go in (a flood of wrong ones neither grows nor evicts it). A Map lookup compares the
 * presented string with a stored one only when their hashes collide, which the caller cannot
 * steer towards a token it does not know, so it leaks no more than the hashed comparison.
 */
class VerifiedTokens {
  private readonly identities = new Map<string, TokenIdentity>();
  constructor(private readonly limit = 1024) {}
  get(token: string): TokenIdentity | undefined { return this.identities.get(token); }
  remember(token: string, identity: TokenIdentity | undefined): TokenIdentity | undefined {
    if (identity === undefined) return undefined;
    if (this.identities.size >= this.limit) this.identities.clear();
    this.identities.set(token, identity);
    return identity;
  }
  clear(): void { this.identities.clear(); }
}

/** The one admin token of `<data-dir>/token` (or `--token-file`), compared in constant time. */
export function singleToken(token: string, role: TokenRole = 'admin', id: string = role): TokenAuthority {
  const expected = sha256(token);
  const verified = new VerifiedTokens(1);
  return {
    lookup: (presented) => verified.get(presented) ?? verified.remember(presented, timingSafeEqual(sha256(presented), expected) ? { role, id } : undefined),
  };
}

export function anyOf(...authorities: (TokenAuthority | undefined)[]): TokenAuthority {
  const list = authorities.filter((a): a is TokenAuthority => a !== undefined);
  return { lookup: (token) => { for (const a of list) { const r = a.lookup(token); if (r) return r; } return undefined; } };
}

interface StoredToken { id: string; role: TokenRole; sha256: string; created: string }

/**
 * `<data-dir>/tokens.json`: tokens made by `n0stack token create`, kept as SHA-256 hashes only
 * (the token itself is printed once). Re-read when the file changes, so a facade that runs picks
 * up a new token without a restart.
 */
export class TokenFile implements TokenAuthority {
  private cache: { mtimeMs: number; size: number; byHash: Map<string, TokenIdentity> } | undefined;
  private checkedAt = 0;
  /** Emptied whenever the file changes, so a removed token stops working within the re-read second. */
  private readonly verified = new VerifiedTokens();

  constructor(readonly file: string) {}

  static create(file: string, role: TokenRole): { token: string; id: string } {
    if (!TOKEN_ROLES.includes(role)) throw new InvalidArgumentError(`role ${JSON.stringify(role)} must be one of ${TOKEN_ROLES.join(', ')}`, '--role');
    const token = randomBytes(24).toString('base64url');
    const id = randomBytes(4).toString('hex');
    const entries = TokenFile.read(file);
    entries.push({ id, role, sha256: sha256(token).toString('hex'), created: new Date().toISOString() });
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(entries, null, 2) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, file);
    return { token, id };
  }

  private static read(file: string): StoredToken[] {
    let text: string;
    try { text = fs.readFileSync(file, 'utf8'); } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const parsed = JSON.parse(text) as unknown;
    if (!Array.isArray(parsed)) throw new InvalidArgumentError(`${file} must hold a JSON list of tokens`);
    return parsed.filter((e): e is StoredToken => !!e && TOKEN_ROLES.includes(e.role) && typeof e.sha256 === 'string');
  }

  lookup(token: string): TokenIdentity | undefined {
    const now = Date.now();
    if (!this.cache || now - this.checkedAt > 1000) {
      this.checkedAt = now;
      const stat = fs.statSync(this.file, { throwIfNoEntry: false });
      if (!stat) this.cache = { mtimeMs: 0, size: 0, byHash: new Map() };
      else if (!this.cache || stat.mtimeMs !== this.cache.mtimeMs || stat.size !== this.cache.size) {
        let entries: StoredToken[];
        try { entries = TokenFile.read(this.file); } catch (err) {
          // A broken file must not let anyone in, nor turn every call into INTERNAL.
          throw Object.assign(new Error(`the facade cannot read its token file ${this.file}: ${(err as Error).message}`), { grpcCode: grpc.status.UNAVAILABLE });
        }
        this.cache = { mtimeMs: stat.mtimeMs, size: stat.size, byHash: new Map(entries.map((e) => [e.sha256, { role: e.role, id: e.id }])) };
        this.verified.clear();
      }
      if (!stat) this.verified.clear();
    }
    // A hash lookup is not a timing oracle for the token: the attacker does not control the hash.
    return this.verified.get(token) ?? this.verified.remember(token, this.cache.byHash.get(sha256(token).toString('hex')));
  }
}

export interface AuthOptions {
  /** Undefined with no node certificates either: no authentication (unit tests only). */
  tokens?: TokenAuthority;
}

export interface PeerCertificateLike { subject?: { CN?: string | string[]; O?: string | string[] } }

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * A bearer token, when one is sent, decides (a wrong one is refused even if a certificate came
 * along); otherwise a verified client certificate of a node (O = n0stack:nodes) makes the caller
 * that node. The TLS layer has already checked the certificate chains to the client CA.
 */
export function authenticate(metadata: grpc.Metadata, peerOf: PeerCertificateLike | (() => PeerCertificateLike | undefined) | undefined, options: AuthOptions): Principal {
  const header = String(metadata.get('authorization')[0] ?? '');
  if (header) {
    if (!options.tokens) return { role: 'admin', name: 'anonymous' };
    const identity = options.tokens.lookup(header.replace(/^Bearer\s+/i, ''));
    if (!identity) throw unauthenticated('wrong bearer token (n0ctl reads it from ~/.n0stack/config)');
    return { role: identity.role, name: `token ${identity.id}` };
  }
  // Asked for only now: a call with a token never needs it, and grpc-js's getAuthContext goes
  // through the HTTP/2 session's socket proxy (13 µs a call under the profiler, more than the store read's JSON.parse).
  const peer = typeof peerOf === 'function' ? peerOf() : peerOf;
  if (peer && first(peer.subject?.O) === NODE_ORGANIZATION && first(peer.subject?.CN)) {
    return { role: 'node', name: first(peer.subject!.CN)! };
  }
  if (!options.tokens) return { role: 'admin', name: 'anonymous' };
  throw unauthenticated('missing bearer token or node client certificate (n0ctl reads the token from ~/.n0stack/config)');
}

/** RPCs that only read: Get*, List* and the document Watch. Everything else changes something. */
export function isReadOnly(service: string, method: string): boolean {
  return /^(Get|List)[A-Z]/.test(method) || (service === 'ResourceService' && (method === 'Get' || method === 'List' || method === 'Watch'));
}

/** Labels a node identity may neither set nor remove on its own Node (kubernetes.io's node-restriction prefix). */
export const NODE_RESTRICTION_PREFIX = 'node-restriction.n0stack.io/';

/** What a node identity may call, always for its own name. */
const NODE_RPCS = new Set(['NodeService/ApplyNode', 'NodeService/HeartbeatNode']);

export function authorize(principal: Principal, service: string, method: string, request: unknown): void {
  const rpc = `${service}.${method}`;
  if (principal.role === 'admin') return;
  if (principal.role === 'viewer') {
    if (isReadOnly(service, method)) return;
    throw denied(`${rpc} changes state and a viewer token may only read (use an admin token)`);
  }
  if (!NODE_RPCS.has(`${service}/${method}`)) {
    throw denied(`${rpc} is not allowed for node "${principal.name}": a node identity may only register and heartbeat its own Node`);
  }
  const name = (request as { name?: unknown } | null)?.name;
  if (name !== principal.name) {
    throw denied(`${rpc} of Node ${JSON.stringify(name)} is not allowed for node "${principal.name}": a node identity may only write its own Node`);
  }
  if (method !== 'ApplyNode') return;
  // Kubernetes' NodeRestriction: what steers workloads onto a node is the admin's to say, or a
  // compromised host could make itself the place for VMs meant elsewhere (or leave a cordon).
  const { unschedulable, labels } = request as { unschedulable?: unknown; labels?: Record<string, unknown> };
  if (unschedulable) throw denied(`${rpc}: unschedulable is not allowed for node "${principal.name}": cordoning is an admin's decision (n0ctl apply of the Node)`);
  const restricted = Object.keys(labels ?? {}).find((k) => k.startsWith(NODE_RESTRICTION_PREFIX));
  if (restricted) throw denied(`${rpc}: label ${JSON.stringify(restricted)} is not allowed for node "${principal.name}": labels under ${NODE_RESTRICTION_PREFIX} are set by admins only`);
}
