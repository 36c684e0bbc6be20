// Names become file paths (disk files, sockets, pidfiles), process arguments and store keys, so
// they are validated before anything else sees them.
//
// Rule: a Kubernetes DNS-1123 subdomain (lower-case alphanumerics, '-' and '.', starting and ending
// alphanumeric, at most 253 characters), widened to also allow '_' because the seed's own examples
// use names like `debug_ipv6`. Never '/', '..', NUL, whitespace, or upper case.

import { InvalidArgumentError } from './errors';

export const MAX_NAME_LENGTH = 253;
const NAME_PATTERN = /^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/;

/** Returns a reason the name is invalid, or undefined when it is fine. */
export function nameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'must be a string';
  if (name.length === 0) return 'must not be empty';
  if (name.length > MAX_NAME_LENGTH) return `must be at most ${MAX_NAME_LENGTH} characters`;
  if (name.includes('..')) return "must not contain '..'";
  if (!NAME_PATTERN.test(name)) {
    return "must consist of lower-case letters, digits, '-', '_' or '.', and start and end with a letter or digit";
  }
  return undefined;
}

export function validateName(name: unknown, field = 'name'): string {
  const problem = nameProblem(name);
  if (problem) throw new InvalidArgumentError(`${field} ${JSON.stringify(name)} is invalid: ${problem}`, field);
  return name as string;
}

// Label keys follow Kubernetes: optional DNS prefix + '/' + name of at most 63 characters.
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

export function labelKeyProblem(key: string): string | undefined {
  const parts = key.split('/');
  if (parts.length > 2) return 'may contain at most one /';
  const [prefix, name] = parts.length === 2 ? parts : [undefined, parts[0]];
  if (prefix !== undefined && nameProblem(prefix)) return 'prefix must be a DNS subdomain';
  if (!LABEL_NAME.test(name)) return 'name part must be 1-63 alphanumerics, -, _ or . and start and end alphanumeric';
  return undefined;
}

export function labelValueProblem(value: string): string | undefined {
  return LABEL_VALUE.test(value) ? undefined : 'must be at most 63 alphanumerics, -, _ or ., starting and ending alphanumeric';
}
