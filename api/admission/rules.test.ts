import { celRules, RULES, violation } from './rules';

describe('the rule table', () => {
  it('ids are unique, every CEL rule has a scope, and violation() takes code, field and message from it', () => {
    expect(new Set(RULES.map((r) => r.id)).size).toBe(RULES.length);
    for (const r of RULES) if ('cel' in r) expect(['spec', 'object']).toContain((r as { celScope?: string }).celScope);
    const err = violation('blockstorage.limit-only-grows');
    expect(err).toMatchObject({ code: 'InvalidArgument', field: 'limit_bytes', message: expect.stringMatching(/only grow/) });
    expect(violation('network.ipv4-cidr-immutable-while-reserved', 'detail', 'x')).toMatchObject({ code: 'FailedPrecondition', field: 'x', message: 'detail' });
  });

  it('renders x-kubernetes-validations entries: field rules at spec scope with their path; rules needing other objects have none', () => {
    expect(celRules('VirtualMachine', 'spec')).toContainEqual({ rule: expect.stringContaining('self.nics == oldSelf.nics'), message: expect.any(String), fieldPath: '.nics' });
    expect(celRules('NetworkAddress', 'spec')).toEqual([{ rule: 'self == oldSelf', message: expect.stringMatching(/immutable/), fieldPath: '.address' }]);
    // A cidr is fixed while the Network lends addresses: those are other objects now, so no CEL can say it.
    expect(celRules('Network', 'object')).toEqual([]);
  });
});
