import { conditionChanged, getCondition, isTrue, setCondition } from './conditions';

const t0 = new Date('2024-01-01T00:00:00.000Z');
const t1 = new Date('2024-01-01T00:05:00.000Z');

describe('conditions', () => {
  it('adds a condition with the transition time and observedGeneration', () => {
    const list = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'Pending', message: 'waiting' }, t0, 3);
    expect(list).toEqual([{ type: 'Ready', status: 'False', reason: 'Pending', message: 'waiting', lastTransitionTime: '2024-01-01T00:00:00Z', observedGeneration: 3 }]);
  });

  it('keeps lastTransitionTime when only reason/message change, moves it when status flips', () => {
    const a = setCondition([], { type: 'Ready', status: 'False', reason: 'Pending' }, t0);
    const b = setCondition(a, { type: 'Ready', status: 'False', reason: 'Fetching', message: '40%' }, t1);
    expect(getCondition(b, 'Ready')).toMatchObject({ reason: 'Fetching', message: '40%', lastTransitionTime: '2024-01-01T00:00:00Z' });
    const c = setCondition(b, { type: 'Ready', status: 'True', reason: 'Available' }, t1);
    expect(getCondition(c, 'Ready')?.lastTransitionTime).toBe('2024-01-01T00:05:00Z');
    expect(isTrue(c, 'Ready')).toBe(true);
    expect(isTrue(b, 'Ready')).toBe(false);
    expect(isTrue(c, 'Scheduled')).toBe(false);
  });

  it('does not mutate its input and keeps other conditions in place', () => {
    const a = setCondition(setCondition([], { type: 'Scheduled', status: 'True' }, t0), { type: 'Ready', status: 'False' }, t0);
    const frozen = JSON.parse(JSON.stringify(a));
    const b = setCondition(a, { type: 'Scheduled', status: 'False', reason: 'NodeGone' }, t1);
    expect(a).toEqual(frozen);
    expect(b.map((c) => c.type)).toEqual(['Scheduled', 'Ready']);
    expect(b[0].lastTransitionTime).toBe('2024-01-01T00:05:00Z');
  });

  it('tells whether a write is needed', () => {
    const a = setCondition([], { type: 'Ready', status: 'True', reason: 'Ok', message: '' }, t0, 2);
    expect(conditionChanged(a, { type: 'Ready', status: 'True', reason: 'Ok' }, 2)).toBe(false);
    expect(conditionChanged(a, { type: 'Ready', status: 'True', reason: 'Ok' }, 3)).toBe(true);
    expect(conditionChanged(a, { type: 'Ready', status: 'True', reason: 'Other' }, 2)).toBe(true);
    expect(conditionChanged(a, { type: 'Other', status: 'True' })).toBe(true);
  });
});
