import { hashPassword, SHA512_CRYPT_PATTERN, sha512Crypt, verifyPassword } from './password';

// The SHA-512 test vectors of Drepper's specification, which glibc's crypt test suite
// (crypt/sha512c-test.c) runs. libxcrypt's crypt(3) gives the same answers, except that it
// refuses the last one's rounds=10 where glibc (and we) clamp to 1000.
const VECTORS: [string, string, string][] = [
  ['$6$saltstring', 'Hello world!',
    '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1'],
  ['$6$rounds=10000$saltstringsaltstring', 'Hello world!',
    '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.'],
  ['$6$rounds=5000$toolongsaltstring', 'This is just a test',
    '$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0'],
  ['$6$rounds=1400$anotherlongsaltstring', 'a very much longer text to encrypt.  This one even stretches over morethan one line.',
    '$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1'],
  ['$6$rounds=77777$short', 'we have a short salt string but not a short password',
    '$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0'],
  ['$6$rounds=123456$asaltof16chars..', 'a short string',
    '$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1'],
  ['$6$rounds=10$roundstoolow', 'the minimum number is still observed',
    '$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.'],
];

const LONG = '$6$abc$8knRde6bUcKt60C1r6lJVhEsk308eHiET26Y6K6rfZjmcxVa7T7KVJE9BXzBwwbgav0R3aIuLSdeo/e4Fs99m.';
const UNICODE = '$6$abc$wXvLgMChht3U87i888StiQy1W/EK2Ge3H6rxIRM8l0prwhG1icmLmgEOcYMiXbSth/t5JyRjjVGbqvVEQ7j9n/';

describe('sha512Crypt', () => {
  it.each(VECTORS)('crypt(%j, %j) is the published answer', (setting, password, expected) => {
    expect(sha512Crypt(password, setting)).toBe(expected);
    expect(expected).toMatch(SHA512_CRYPT_PATTERN);
  });

  it('handles passwords longer than one digest (64 bytes) and non-ASCII ones', () => {
    // Answers from libxcrypt's crypt(3), via perl -e 'print crypt($password, q($6$abc))' (UTF-8 bytes).
    expect(sha512Crypt('x'.repeat(130), '$6$abc')).toBe(LONG);
    expect(sha512Crypt('pässwörd', '$6$abc')).toBe(UNICODE);
  });

  it('rejects a setting of another scheme', () => {
    expect(() => sha512Crypt('pw', '$5$abc')).toThrow('sha512Crypt: setting must start with $6$');
  });
});

describe('hashPassword / verifyPassword', () => {
  it('makes a $6$ hash with a random 16-character salt that verifies only the same password', () => {
    const hash = hashPassword('s3cret');
    expect(hash).toMatch(/^\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/);
    expect(hash).not.toContain('s3cret');
    expect(verifyPassword('s3cret', hash)).toBe(true);
    expect(verifyPassword('s3cret ', hash)).toBe(false);
    expect(hashPassword('s3cret')).not.toBe(hash); // salted
  });

  it('uses the given randomness for the salt', () => {
    const hash = hashPassword('Hello world!', (n) => Buffer.alloc(n, 0));
    expect(hash.startsWith('$6$................$')).toBe(true);
    expect(verifyPassword('Hello world!', hash)).toBe(true);
  });

  it('does not verify against something that is not a SHA-512 crypt hash', () => {
    expect(verifyPassword('pw', 'pw')).toBe(false);
    expect(verifyPassword('pw', '$1$abc$xyz')).toBe(false);
    // Too many rounds to check on a request path: not verified (the caller hashes afresh).
    expect(verifyPassword('a short string', VECTORS[5][2])).toBe(false);
    expect(verifyPassword('Hello world!', VECTORS[1][2])).toBe(true);
  });
});
