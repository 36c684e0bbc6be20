// Kubernetes equality-based label selectors: "a=b", "a==b", "a!=b", "a" (exists), "!a" (absent),
// comma-separated and ANDed. Set-based selectors (in/notin) are not supported and rejected.
import { InvalidArgumentError } from '../errors';

export type Requirement =
  | { op: 'eq' | 'neq'; key: string; value: string }
  | { op: 'exists' | 'absent'; key: string };

export function parseLabelSelector(selector: string | undefined): Requirement[] {
  if (!selector || !selector.trim()) return [];
  return selector.split(',').map((raw) => {
    const term = raw.trim();
    let m: RegExpMatchArray | null;
    if ((m = term.match(/^([^=!\s]+)\s*!=\s*([^=!\s]*)$/))) return { op: 'neq', key: m[1], value: m[2] };
    if ((m = term.match(/^([^=!\s]+)\s*==?\s*([^=!\s]*)$/))) return { op: 'eq', key: m[1], value: m[2] };
    if ((m = term.match(/^!([^=!\s]+)$/))) return { op: 'absent', key: m[1] };
    if ((m = term.match(/^([^=!\s()]+)$/))) return { op: 'exists', key: m[1] };
    throw new InvalidArgumentError(`labelSelector term ${JSON.stringify(term)} is not understood (supported: k=v, k!=v, k, !k)`, 'labelSelector');
  });
}

export function matchesLabels(labels: Record<string, string> | undefined, requirements: Requirement[]): boolean {
  const l = labels ?? {};
  return requirements.every((r) => {
    switch (r.op) {
      case 'eq': return l[r.key] === r.value;
      case 'neq': return l[r.key] !== r.value;
      case 'exists': return r.key in l;
      case 'absent': return !(r.key in l);
    }
  });
}
