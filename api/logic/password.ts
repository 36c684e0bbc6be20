// SHA-512 crypt ("$6$", Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512", the scheme of
// glibc's crypt(3) and /etc/shadow), so a VM's login password is stored only as a hash that
// cloud-init hands to chpasswd/usermod unchanged. Written on node:crypto because the one
// maintained npm implementation is ESM-only and this code base is CommonJS.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const ROUNDS_DEFAULT = 5000;
const ROUNDS_MIN = 1000;
const ROUNDS_MAX = 999_999_999;
const SALT_MAX = 16;
/** verifyPassword refuses more: a stored hash must not make the facade spin for seconds. */
const VERIFY_ROUNDS_MAX = 100_000;

/** A complete SHA-512 crypt hash, as accepted by spec.login_password_hash. */
export const SHA512_CRYPT_PATTERN = /^\$6\$(rounds=[1-9][0-9]{0,8}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}$/;

const sha512 = (...parts: Buffer[]): Buffer => {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return h.digest();
};

/** `length` bytes of `digest` repeated (the spec's P and S sequences). */
const repeatTo = (digest: Buffer, length: number): Buffer => {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += digest.length) digest.copy(out, i, 0, Math.min(digest.length, length - i));
  return out;
};

// The spec's byte order of the final digest in its base-64 output, three bytes per 4 characters.
const ORDER = [
  [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48],
  [28, 49, 7], [50, 8, 29], [9, 30, 51], [31, 52, 10], [53, 11, 32], [12, 33, 54], [34, 55, 13],
  [56, 14, 35], [15, 36, 57], [37, 58, 16], [59, 17, 38], [18, 39, 60], [40, 61, 19], [62, 20, 41],
];

function encode(digest: Buffer): string {
  let out = '';
  const put = (w: number, n: number): void => { for (let i = 0; i < n; i++, w >>= 6) out += ALPHABET[w & 0x3f]; };
  for (const [a, b, c] of ORDER) put((digest[a] << 16) | (digest[b] << 8) | digest[c], 4);
  put(digest[63], 2);
  return out;
}

/**
 * crypt(password, setting) for SHA-512: setting is "$6$salt" or "$6$rounds=N$salt" (a longer salt
 * is cut to 16 characters and rounds are clamped to 1000..999999999, as glibc does).
 */
export function sha512Crypt(password: string, setting: string): string {
  const m = /^\$6\$(?:rounds=(\d+)\$)?([^$]*)/.exec(setting);
  if (!m) throw new Error(`sha512Crypt: setting must start with $6$, got ${JSON.stringify(setting.slice(0, 20))}`);
  const customRounds = m[1] !== undefined;
  const rounds = customRounds ? Math.min(ROUNDS_MAX, Math.max(ROUNDS_MIN, Number(m[1]))) : ROUNDS_DEFAULT;
  const saltText = m[2].slice(0, SALT_MAX);
  const P = Buffer.from(password, 'utf8');
  const S = Buffer.from(saltText, 'utf8');

  const B = sha512(P, S, P);
  const a = createHash('sha512').update(P).update(S);
  let n = P.length;
  for (; n > 64; n -= 64) a.update(B);
  a.update(B.subarray(0, n));
  for (let len = P.length; len > 0; len >>= 1) a.update(len & 1 ? B : P);
  const A = a.digest();

  const dp = createHash('sha512');
  for (let i = 0; i < P.length; i++) dp.update(P);
  const Pseq = repeatTo(dp.digest(), P.length);
  const ds = createHash('sha512');
  for (let i = 0; i < 16 + A[0]; i++) ds.update(S);
  const Sseq = repeatTo(ds.digest(), S.length);

  let C = A;
  for (let i = 0; i < rounds; i++) {
    const h = createHash('sha512');
    h.update(i & 1 ? Pseq : C);
    if (i % 3) h.update(Sseq);
    if (i % 7) h.update(Pseq);
    h.update(i & 1 ? C : Pseq);
    C = h.digest();
  }
  return `$6$${customRounds ? `rounds=${rounds}$` : ''}${saltText}$${encode(C)}`;
}

/** A fresh hash with a random 16-character salt and the default 5000 rounds. */
export function hashPassword(password: string, random: (n: number) => Buffer = randomBytes): string {
  const salt = [...random(SALT_MAX)].map((b) => ALPHABET[b & 0x3f]).join('');
  return sha512Crypt(password, `$6$${salt}`);
}

/** Whether `password` is the one `hash` was made from (in constant time over the hash). */
export function verifyPassword(password: string, hash: string): boolean {
  if (!SHA512_CRYPT_PATTERN.test(hash)) return false;
  const rounds = /^\$6\$rounds=(\d+)\$/.exec(hash);
  if (rounds && Number(rounds[1]) > VERIFY_ROUNDS_MAX) return false;
  const again = Buffer.from(sha512Crypt(password, hash));
  const expected = Buffer.from(hash);
  return again.length === expected.length && timingSafeEqual(again, expected);
}
