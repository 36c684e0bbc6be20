import { nameProblem, validateName, labelKeyProblem, labelValueProblem } from './names';
import { InvalidArgumentError } from './errors';

describe('resource names', () => {
  it.each(['test-vm', 'vm-host1', 'cloudimage-ubuntu-1804', 'debug_ipv6', 'a', 'a.b.c', '0', 'x'.repeat(253)])(
    'accepts %s', (name) => expect(nameProblem(name)).toBeUndefined());

  it.each([
    ['', 'empty'], ['../etc/passwd', 'path traversal'], ['a/b', 'slash'], ['a..b', 'double dot'], ['..', 'dots only'],
    ['a\u0000b', 'NUL'], ['a b', 'space'], ['a\tb', 'tab'], ['a\nb', 'newline'], ['Test', 'upper case'],
    ['-a', 'leading dash'], ['a-', 'trailing dash'], ['.hidden', 'leading dot'], ['_a', 'leading underscore'],
    ['x'.repeat(254), 'too long'], ['ä', 'non-ascii'], ['a;rm -rf', 'shell metachar'], ['$(id)', 'command substitution'],
    ['a\\b', 'backslash'], ['a:b', 'colon'],
  ])('rejects %j (%s)', (name) => expect(nameProblem(name)).toBeDefined());

  it('rejects non-strings', () => {
    expect(nameProblem(undefined)).toBe('must be a string');
    expect(nameProblem(42)).toBe('must be a string');
  });

  it('throws InvalidArgument naming the field', () => {
    expect(() => validateName('../x', 'block_storage_name')).toThrow(InvalidArgumentError);
    try { validateName('../x', 'block_storage_name'); } catch (e) {
      expect((e as InvalidArgumentError).field).toBe('block_storage_name');
      expect((e as Error).message).toContain('block_storage_name');
    }
  });

  it('validates label keys and values like Kubernetes', () => {
    expect(labelKeyProblem('app')).toBeUndefined();
    expect(labelKeyProblem('n0stack.io/role')).toBeUndefined();
    expect(labelKeyProblem('a/b/c')).toBeDefined();
    expect(labelKeyProblem('-x')).toBeDefined();
    expect(labelValueProblem('')).toBeUndefined();
    expect(labelValueProblem('v1.2')).toBeUndefined();
    expect(labelValueProblem('has space')).toBeDefined();
  });
});
