// Browser sessions of the web UI: POST /api/v0/session trades a bearer token for an HttpOnly,
// SameSite=Strict cookie, so the token never sits in localStorage, a URL or script-readable
// storage. Sessions live in this process's memory only (a restart logs everyone out), and each
// has a CSRF token that the UI keeps in memory and sends as X-CSRF-Token on every mutating call.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Role } from '../server/auth';

export const SESSION_COOKIE = 'n0stack_session';
const TTL_MS = 12 * 3600_000;
const MAX_SESSIONS = 10_000;

export interface Session {
  /** SHA-256 of the cookie value (the value itself is not kept). */
  id: string;
  /** The bearer token it was made from: checked again on every request, so a revoked token ends it. */
  token: string;
  role: Role;
  csrf: string;
  expires: number;
  cookieValue?: string;
}

const hash = (value: string) => createHash('sha256').update(value).digest('hex');

export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  create(token: string, role: Role): Session & { cookieValue: string } {
    this.sweep();
    if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    const cookieValue = randomBytes(32).toString('base64url');
    const session = { id: hash(cookieValue), token, role, csrf: randomBytes(24).toString('base64url'), expires: Date.now() + TTL_MS, cookieValue };
    this.sessions.set(session.id, { ...session, cookieValue: undefined });
    return session;
  }

  cookie(session: Session, secure: boolean): string {
    return `${SESSION_COOKIE}=${session.cookieValue}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.floor(TTL_MS / 1000)}${secure ? '; Secure' : ''}`;
  }

  fromCookie(header: string | undefined): Session | undefined {
    if (!header) return undefined;
    for (const part of header.split(';')) {
      const [name, ...rest] = part.trim().split('=');
      if (name !== SESSION_COOKIE) continue;
      const session = this.sessions.get(hash(rest.join('=')));
      if (session && session.expires > Date.now()) return session;
    }
    return undefined;
  }

  csrfMatches(session: Session, header: string | string[] | undefined): boolean {
    const given = Buffer.from(typeof header === 'string' ? header : '');
    const expected = Buffer.from(session.csrf);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  delete(session: Session): void {
    this.sessions.delete(session.id);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, s] of this.sessions) if (s.expires <= now) this.sessions.delete(id);
  }
}
