import { KvEventStore, eventsFor, validateEvent, type Event } from '../../api/store/events';
import { Recorder, recordTransition, type EventObject } from './events';
import { MemoryKv, MemoryStore } from './testing/memory-store';

const vm = (uid = 'u1'): EventObject => ({ kind: 'VirtualMachine', apiVersion: 'n0stack.io/v1alpha1', metadata: { name: 'test_vm', uid } });

const T0 = Math.floor(Date.now() / 1000) * 1000 - 10_000;
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

function clock(start = T0) {
  let t = start;
  return { now: () => new Date(t), advance: (ms: number) => { t += ms; } };
}

describe('event recorder (client-go aggregation)', () => {
  it('counts the same object, type, reason and message on one Event, with first and last timestamps', async () => {
    const store = new MemoryStore();
    const c = clock();
    const rec = new Recorder(store.events, { now: c.now });
    rec.warning(vm(), 'StartFailed', 'qemu: failed to set MSR 0x10a');
    c.advance(2000);
    rec.warning(vm(), 'StartFailed', 'qemu: failed to set MSR 0x10a');
    c.advance(4000);
    rec.warning(vm(), 'StartFailed', 'qemu: failed to set MSR 0x10a');
    await rec.flush();
    const { items } = await store.events.list();
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({
      type: 'Warning', reason: 'StartFailed', message: 'qemu: failed to set MSR 0x10a', count: 3,
      firstTimestamp: iso(T0), lastTimestamp: iso(T0 + 6000),
      involvedObject: { kind: 'VirtualMachine', name: 'test_vm', uid: 'u1' }, source: { component: 'n0stack-controllers' },
    });
    expect(() => validateEvent(items[0])).not.toThrow();
  });

  it('keeps a new Event for another message, reason, type or object (a namesake with another uid too)', async () => {
    const store = new MemoryStore();
    const rec = new Recorder(store.events);
    rec.normal(vm(), 'Scheduled', 'placed on node a');
    rec.normal(vm(), 'Scheduled', 'placed on node b');
    rec.normal(vm(), 'Started', 'placed on node a');
    rec.warning(vm(), 'Scheduled', 'placed on node a');
    rec.normal(vm('u2'), 'Scheduled', 'placed on node a');
    rec.normal(vm(), 'Scheduled', 'placed on node a');
    await rec.flush();
    const { items } = await store.events.list();
    expect(items).toHaveLength(5);
    expect(items.map((e) => e.count).sort()).toEqual([1, 1, 1, 1, 2]);
    // describe matches by uid: the namesake's Event is not this object's.
    expect(eventsFor(items, vm('u2'))).toHaveLength(1);
    expect(eventsFor(items, vm('u1'))).toHaveLength(4);
  });

  it('starts a new Event when the aggregated one expired and was swept', async () => {
    const kv = new MemoryKv();
    const events = new KvEventStore(kv, '/t', 60_000);
    const c = clock(Date.now() - 120_000);
    const rec = new Recorder(events, { now: c.now });
    rec.warning(vm(), 'GuestCrashed', 'guest panicked');
    await rec.flush();
    expect((await events.list()).items).toHaveLength(0); // its lastTimestamp is past the TTL
    expect(await events.sweep()).toBe(1);
    c.advance(120_000);
    rec.warning(vm(), 'GuestCrashed', 'guest panicked');
    await rec.flush();
    expect((await events.list()).items).toMatchObject([{ reason: 'GuestCrashed', count: 1 }]);
    expect(await events.sweep()).toBe(0);
  });

  it('never fails the caller: a sink that throws is logged', async () => {
    const failing = { create: async () => { throw new Error('store down'); } } as unknown as KvEventStore;
    const rec = new Recorder(failing);
    expect(() => rec.normal(vm(), 'Started', 'x')).not.toThrow();
    await expect(rec.flush()).resolves.toBeUndefined();
  });

  it('truncates long messages to what the schema allows', async () => {
    const store = new MemoryStore();
    const rec = new Recorder(store.events);
    rec.warning(vm(), 'StartFailed', 'x'.repeat(5000));
    await rec.flush();
    expect((await store.events.list()).items[0].message).toHaveLength(1024);
  });
});

describe('recordTransition', () => {
  const table = { Scheduled: { type: 'Normal' as const }, RUNNING: { type: 'Normal' as const, reason: 'Started' }, Unschedulable: { type: 'Warning' as const } };
  it('records only a change of reason, and only reasons the table names', () => {
    const seen: string[] = [];
    const events = { normal: (_o: EventObject, r: string, m: string) => seen.push(`Normal ${r} ${m}`), warning: (_o: EventObject, r: string, m: string) => seen.push(`Warning ${r} ${m}`) };
    recordTransition(events, vm(), undefined, { reason: 'Scheduled', message: 'placed on node a' }, table);
    recordTransition(events, vm(), 'Scheduled', { reason: 'Scheduled', message: 'placed on node a' }, table);
    recordTransition(events, vm(), 'Scheduled', { reason: 'Converging', message: 'x' }, table);
    recordTransition(events, vm(), 'Converging', { reason: 'RUNNING', message: 'RUNNING on node a' }, table);
    recordTransition(events, vm(), 'RUNNING', { reason: 'Unschedulable', message: 'no node fits' }, table);
    recordTransition(undefined, vm(), 'RUNNING', { reason: 'Unschedulable', message: 'no node fits' }, table);
    expect(seen).toEqual(['Normal Scheduled placed on node a', 'Normal Started RUNNING on node a', 'Warning Unschedulable no node fits']);
  });
});

describe('the Event schema', () => {
  const good: Event = {
    apiVersion: 'v1', kind: 'Event', metadata: { name: 'vm.1' }, involvedObject: { kind: 'VirtualMachine', name: 'vm' },
    type: 'Normal', reason: 'Started', message: 'ok', count: 1, firstTimestamp: '2026-12-01T10:00:00Z', lastTimestamp: '2026-12-01T10:00:00Z',
  };
  it.each([
    ['type', { type: 'Info' }], ['reason', { reason: 'not camel' }], ['count', { count: 0 }], ['lastTimestamp', { lastTimestamp: 'yesterday' }],
    ['involvedObject', { involvedObject: { kind: 'VirtualMachine', name: '' } }], ['metadata.name', { metadata: { name: 'a/b' } }],
  ])('refuses a bad %s', async (_field, change) => {
    const events = new KvEventStore(new MemoryKv(), '/t');
    await expect(events.create({ ...good, ...change } as Event)).rejects.toThrow(/invalid|must|needs/);
  });
  it('watches creations and updates', async () => {
    const events = new KvEventStore(new MemoryKv(), '/t');
    const stop = new AbortController();
    const seen: string[] = [];
    const done = (async () => { for await (const ev of events.watch({ signal: stop.signal })) { seen.push(`${ev.type} ${ev.object.count}`); if (seen.length === 2) stop.abort(); } })();
    await new Promise((r) => setTimeout(r, 20));
    const created = await events.create(good);
    await events.update({ ...created, count: 2 });
    await done;
    expect(seen).toEqual(['ADDED 1', 'MODIFIED 2']);
  });
});
