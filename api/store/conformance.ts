/// <reference types="jest" />
// The one conformance suite every Store backend must pass (embedded, etcd, kubernetes). It pins
// the Kubernetes API-server semantics described in store.ts; a backend test file only says how
// to open a fresh store:
//   describeStoreConformance('etcd', async () => ({ store, cleanup }), { supportsCompaction });
// Every test uses names unique to this run, so backends shared between runs (a long-lived etcd
// or cluster) do not see each other's objects.
import { randomBytes } from 'node:crypto';
import { isN0Error, type ErrorCode } from '../errors';
import type { Network } from '../types';
import type { Store, WatchEvent } from './store';

export interface ConformanceOptions {
  /** Returns a function that compacts the backend's history up to (and including) a revision. */
  supportsCompaction?: () => Promise<(revision: string) => Promise<void>>;
}

const WATCH_DEADLINE_MS = 10_000;

function network(name: string, extra: Partial<Network['metadata']> = {}, spec: Network['spec'] = { ipv4_cidr: '10.0.0.0/24' }): Network {
  return { apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name, ...extra }, spec };
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  let caught: unknown;
  try { await promise; } catch (err) { caught = err; }
  if (!isN0Error(caught, code)) throw new Error(`expected a ${code} error, got ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`);
}

function rvOf(obj: { metadata: { resourceVersion?: string } }): bigint {
  const rv = obj.metadata.resourceVersion;
  if (!rv || !/^\d+$/.test(rv)) throw new Error(`resourceVersion ${JSON.stringify(rv)} is not a decimal revision`);
  return BigInt(rv);
}

/**
 * Reads watch events whose object name starts with `namePrefix` until `count` of them arrived,
 * then stops the watch. Fails (instead of hanging) when they do not arrive within the deadline.
 */
async function collect(store: Store, namePrefix: string, resourceVersion: string | undefined, count: number): Promise<WatchEvent<Network>[]> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), WATCH_DEADLINE_MS);
  const events: WatchEvent<Network>[] = [];
  try {
    for await (const event of store.watch('Network', { resourceVersion, signal: controller.signal })) {
      if (!event.object.metadata.name.startsWith(namePrefix)) continue;
      events.push(event);
      if (events.length >= count) break;
    }
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  if (events.length < count) throw new Error(`watch delivered ${events.length} of ${count} events within ${WATCH_DEADLINE_MS} ms: ${events.map((e) => `${e.type} ${e.object.metadata.name}`).join(', ')}`);
  return events;
}

function summary(events: WatchEvent<Network>[]): string[] {
  return events.map((e) => `${e.type} ${e.object.metadata.name}`);
}

export function describeStoreConformance(
  name: string,
  open: () => Promise<{ store: Store; cleanup: () => Promise<void> }>,
  options: ConformanceOptions = {},
): void {
  describe(`Store conformance: ${name}`, () => {
    let store: Store;
    let cleanup: (() => Promise<void>) | undefined;
    const run = randomBytes(4).toString('hex');
    const n = (suffix: string) => `c${run}-${suffix}`;

    beforeAll(async () => {
      ({ store, cleanup } = await open());
    }, 60_000);
    afterAll(async () => {
      await cleanup?.();
    }, 60_000);

    it('creates, gets, lists, updates and deletes', async () => {
      const created = await store.create(network(n('crud'), { labels: { app: 'x' } }));
      expect(created.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
      expect(created.metadata.generation).toBe(1);
      expect(created.metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT/);
      rvOf(created);
      expect(created.spec).toEqual({ ipv4_cidr: '10.0.0.0/24' });

      const got = await store.get('Network', n('crud'));
      expect(got).toEqual(created);
      await expectCode(store.create(network(n('crud'))), 'AlreadyExists');

      const listed = await store.list('Network');
      expect(listed.items.filter((i) => i.metadata.name === n('crud'))).toEqual([created]);
      expect(BigInt(listed.resourceVersion)).toBeGreaterThanOrEqual(rvOf(created));

      const updated = await store.update({ ...got, spec: { ipv4_cidr: '10.0.1.0/24' } });
      expect(updated.spec).toEqual({ ipv4_cidr: '10.0.1.0/24' });
      expect(rvOf(updated)).toBeGreaterThan(rvOf(created));
      expect(updated.metadata.uid).toBe(created.metadata.uid);
      expect(await store.get('Network', n('crud'))).toEqual(updated);

      expect(await store.delete('Network', n('crud'))).toBeUndefined();
      await expectCode(store.get('Network', n('crud')), 'NotFound');
      await expectCode(store.delete('Network', n('crud')), 'NotFound');
      await expectCode(store.update(updated), 'NotFound');
      await expectCode(store.patch('Network', n('crud'), { type: 'merge', value: { spec: { domain: 'x' } } }), 'NotFound');
    });

    it('drops status on create, like a CRD with a status subresource', async () => {
      const created = await store.create({ ...network(n('nostatus')), status: { state: 'AVAILABLE' } });
      expect(created.status?.state).toBeUndefined();
      expect((await store.get('Network', n('nostatus'))).status?.state).toBeUndefined();
    });

    it('bumps generation only for spec changes; resourceVersion on every write', async () => {
      const v1 = await store.create(network(n('gen')));
      const labelled = await store.update({ ...v1, metadata: { ...v1.metadata, labels: { a: 'b' }, annotations: { note: 'x' }, finalizers: ['n0stack.io/test'] } });
      expect(labelled.metadata.generation).toBe(1);
      expect(labelled.metadata.labels).toEqual({ a: 'b' });
      expect(labelled.metadata.finalizers).toEqual(['n0stack.io/test']);
      expect(rvOf(labelled)).toBeGreaterThan(rvOf(v1));

      const specChanged = await store.update({ ...labelled, spec: { ipv4_cidr: '10.9.0.0/24' } });
      expect(specChanged.metadata.generation).toBe(2);

      // Status writes never bump generation and never change spec, even if the caller sent one.
      const statusWritten = await store.update({ ...specChanged, spec: { ipv4_cidr: '10.7.0.0/24' }, status: { state: 'AVAILABLE', observedGeneration: 2 } }, { subresource: 'status' });
      expect(statusWritten.metadata.generation).toBe(2);
      expect(statusWritten.spec).toEqual({ ipv4_cidr: '10.9.0.0/24' });
      expect(statusWritten.status).toEqual({ state: 'AVAILABLE', observedGeneration: 2 });
      expect(rvOf(statusWritten)).toBeGreaterThan(rvOf(specChanged));

      // A spec update ignores status from the caller and keeps the stored one.
      const specAgain = await store.update({ ...statusWritten, spec: { ipv4_cidr: '10.8.0.0/24' }, status: { state: 'FAILED' } });
      expect(specAgain.status).toEqual({ state: 'AVAILABLE', observedGeneration: 2 });
      expect(specAgain.metadata.generation).toBe(3);

      // Immutable metadata: creationTimestamp is kept; a different uid is a failed precondition.
      const kept = await store.update({ ...specAgain, metadata: { ...specAgain.metadata, creationTimestamp: '2000-01-01T00:00:00Z', labels: { a: 'c' } } });
      expect(kept.metadata.creationTimestamp).toBe(v1.metadata.creationTimestamp);
      expect(kept.metadata.uid).toBe(v1.metadata.uid);
      await expectCode(store.update({ ...kept, metadata: { ...kept.metadata, uid: '00000000-0000-4000-8000-000000000000' } }), 'Conflict');

      // resourceVersion is required and must be current.
      const { resourceVersion: _dropped, ...noRv } = kept.metadata;
      await expectCode(store.update({ ...kept, metadata: noRv }), 'InvalidArgument');
      await expectCode(store.update({ ...kept, spec: { ipv4_cidr: '10.6.0.0/24' }, metadata: { ...kept.metadata, resourceVersion: v1.metadata.resourceVersion } }), 'Conflict');
      await expectCode(store.update({ ...kept, status: { state: 'FAILED' }, metadata: { ...kept.metadata, resourceVersion: v1.metadata.resourceVersion } }, { subresource: 'status' }), 'Conflict');
      expect(await store.get('Network', n('gen'))).toEqual(kept);
    });

    it('patches with JSON Patch and merge patch, honouring test ops and resourceVersion', async () => {
      const v1 = await store.create(network(n('patch'), { labels: { a: '1' } }));
      const merged = await store.patch('Network', n('patch'), { type: 'merge', value: { metadata: { labels: { a: null, b: '2' } }, spec: { domain: 'example.org' } } });
      expect(merged.metadata.labels).toEqual({ b: '2' });
      expect(merged.spec).toEqual({ ipv4_cidr: '10.0.0.0/24', domain: 'example.org' });
      expect(merged.metadata.generation).toBe(2);

      const jsonPatched = await store.patch('Network', n('patch'), { type: 'json', ops: [
        { op: 'test', path: '/spec/domain', value: 'example.org' },
        { op: 'replace', path: '/spec/domain', value: 'example.com' },
      ] });
      expect(jsonPatched.spec.domain).toBe('example.com');
      await expectCode(store.patch('Network', n('patch'), { type: 'json', ops: [
        { op: 'test', path: '/spec/domain', value: 'example.org' },
        { op: 'replace', path: '/spec/domain', value: 'lost.example' },
      ] }), 'Conflict');

      await expectCode(store.patch('Network', n('patch'), { type: 'merge', value: { spec: { domain: 'stale.example' } } }, { resourceVersion: v1.metadata.resourceVersion }), 'Conflict');
      const withRv = await store.patch('Network', n('patch'), { type: 'merge', value: { spec: { domain: 'fresh.example' } } }, { resourceVersion: jsonPatched.metadata.resourceVersion });
      expect(withRv.spec.domain).toBe('fresh.example');

      const status = await store.patch('Network', n('patch'), { type: 'merge', value: { status: { state: 'AVAILABLE' }, spec: { domain: 'ignored.example' } } }, { subresource: 'status' });
      expect(status.status?.state).toBe('AVAILABLE');
      expect(status.spec.domain).toBe('fresh.example');
      expect(status.metadata.generation).toBe(withRv.metadata.generation);

      await expectCode(store.patch('Network', n('patch'), { type: 'merge', value: { spec: { nonsense: 1 } } }), 'InvalidArgument');
      await expectCode(store.patch('Network', n('patch'), { type: 'json', ops: [{ op: 'replace', path: '/metadata/name', value: n('other') }] }), 'InvalidArgument');
      expect(await store.get('Network', n('patch'))).toEqual(status);
    });

    it('lets exactly one of 50 concurrent read-modify-write updaters win each round', async () => {
      await store.create(network(n('counter'), { annotations: { count: '0' } }));
      const winners: number[] = [];
      let conflicts = 0;
      await Promise.all(Array.from({ length: 50 }, async () => {
        for (let attempt = 0; attempt < 1000; attempt++) {
          const current = await store.get('Network', n('counter'));
          const next = Number(current.metadata.annotations!.count) + 1;
          try {
            await store.update({ ...current, metadata: { ...current.metadata, annotations: { count: String(next) } } });
            winners.push(next);
            return;
          } catch (err) {
            if (!isN0Error(err, 'Conflict')) throw err;
            conflicts++;
            // Jitter spreads the herd, so 50 writers finish in about 50 rounds, not 50² attempts.
            await new Promise((r) => setTimeout(r, Math.random() * 20));
          }
        }
        throw new Error('an updater gave up after 1000 conflicts');
      }));
      expect((await store.get('Network', n('counter'))).metadata.annotations!.count).toBe('50');
      // Each round (the counter value written) has exactly one winner: no lost updates.
      expect([...winners].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      expect(conflicts).toBeGreaterThan(0);
    }, 120_000);

    it('deletes an object with finalizers only when the last finalizer is removed', async () => {
      const created = await store.create(network(n('fin'), { finalizers: ['n0stack.io/a', 'n0stack.io/b'] }));
      const marked = await store.delete('Network', n('fin'));
      expect(marked).toBeDefined();
      expect(marked!.metadata.deletionTimestamp).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(rvOf(marked!)).toBeGreaterThan(rvOf(created));
      const again = await store.delete('Network', n('fin'));
      expect(again!.metadata.deletionTimestamp).toBe(marked!.metadata.deletionTimestamp);

      const one = await store.update({ ...again!, metadata: { ...again!.metadata, finalizers: ['n0stack.io/b'] } });
      expect(one.metadata.finalizers).toEqual(['n0stack.io/b']);
      expect((await store.get('Network', n('fin'))).metadata.deletionTimestamp).toBe(marked!.metadata.deletionTimestamp);
      await store.patch('Network', n('fin'), { type: 'merge', value: { metadata: { finalizers: null } } });
      await expectCode(store.get('Network', n('fin')), 'NotFound');

      const stale = await store.create(network(n('fin-rv2')));
      await expectCode(store.delete('Network', n('fin-rv2'), { resourceVersion: '1' }), 'Conflict');
      expect(await store.delete('Network', n('fin-rv2'), { resourceVersion: stale.metadata.resourceVersion })).toBeUndefined();
    });

    it('watches in revision order with correct types, and resumes without gaps or duplicates', async () => {
      const p = n('w-');
      const start = await store.list('Network');
      const a = await store.create(network(`${p}a`, { finalizers: ['n0stack.io/w'] }));
      const a2 = await store.update({ ...a, spec: { ipv4_cidr: '10.1.0.0/24' } });
      const b = await store.create(network(`${p}b`));
      const aMarked = (await store.delete('Network', `${p}a`))!;
      await store.update({ ...aMarked, metadata: { ...aMarked.metadata, finalizers: [] } });
      const b2 = await store.update({ ...b, status: { state: 'AVAILABLE' } }, { subresource: 'status' });
      const written = [a, a2, b, aMarked, aMarked, b2];

      const events = await collect(store, p, start.resourceVersion, written.length);
      expect(summary(events)).toEqual([`ADDED ${p}a`, `MODIFIED ${p}a`, `ADDED ${p}b`, `MODIFIED ${p}a`, `DELETED ${p}a`, `MODIFIED ${p}b`]);
      // The write that removes the last finalizer is the deletion; only its revision order is pinned.
      const rvs = (list: { metadata: { resourceVersion?: string } }[]) => list.map((w, i) => (i === 4 ? '-' : w.metadata.resourceVersion));
      expect(rvs(events.map((e) => e.object))).toEqual(rvs(written));
      for (let i = 1; i < events.length; i++) expect(rvOf(events[i].object)).toBeGreaterThan(rvOf(events[i - 1].object));
      expect(events[4].object.metadata.deletionTimestamp).toBe(aMarked.metadata.deletionTimestamp);
      expect(events[5].object.status?.state).toBe('AVAILABLE');

      // Resume from the middle: exactly the rest, then the next new write, nothing twice.
      const resumed = await collect(store, p, events[2].object.metadata.resourceVersion, 3);
      expect(summary(resumed)).toEqual(summary(events.slice(3)));
      const listed = await store.list('Network', { labelSelector: '' });
      const sentinel = await store.create(network(`${p}c`));
      const afterList = await collect(store, p, listed.resourceVersion, 1);
      expect(summary(afterList)).toEqual([`ADDED ${p}c`]);
      expect(afterList[0].object.metadata.resourceVersion).toBe(sentinel.metadata.resourceVersion);
    }, 30_000);

    it('delivers writes made while a watch is open, then stops on abort', async () => {
      const p = n('live-');
      const { resourceVersion } = await store.list('Network');
      const controller = new AbortController();
      const seen: string[] = [];
      const done = (async () => {
        for await (const event of store.watch('Network', { resourceVersion, signal: controller.signal })) {
          if (event.object.metadata.name.startsWith(p)) seen.push(`${event.type} ${event.object.metadata.name}`);
          if (seen.length === 2) controller.abort();
        }
      })();
      const timer = setTimeout(() => controller.abort(), WATCH_DEADLINE_MS);
      await new Promise((r) => setTimeout(r, 50));
      const x = await store.create(network(`${p}x`));
      await store.patch('Network', `${p}x`, { type: 'merge', value: { metadata: { labels: { k: 'v' } } } }, { resourceVersion: x.metadata.resourceVersion });
      await done;
      clearTimeout(timer);
      expect(seen).toEqual([`ADDED ${p}x`, `MODIFIED ${p}x`]);
    }, 30_000);

    if (options.supportsCompaction) {
      it('throws TooOldError when watching from a compacted revision', async () => {
        const compact = await options.supportsCompaction!();
        const first = await store.create(network(n('old-1')));
        await store.create(network(n('old-2')));
        const third = await store.create(network(n('old-3')));
        await compact(third.metadata.resourceVersion!);
        let caught: unknown;
        const controller = new AbortController();
        const timer = setTimeout(() => controller.abort(), WATCH_DEADLINE_MS);
        try {
          for await (const _event of store.watch('Network', { resourceVersion: first.metadata.resourceVersion, signal: controller.signal })) { /* must not get here */ }
        } catch (err) { caught = err; }
        clearTimeout(timer);
        expect(isN0Error(caught, 'TooOld')).toBe(true);
        // A fresh list gives a revision that can be watched again.
        const listed = await store.list('Network');
        const fresh = await store.create(network(n('old-4')));
        expect(summary(await collect(store, n('old-'), listed.resourceVersion, 1))).toEqual([`ADDED ${fresh.metadata.name}`]);
      }, 30_000);
    }

    it('filters lists with label selectors', async () => {
      const p = n('sel-');
      await store.create(network(`${p}web-prod`, { labels: { tier: 'web', env: 'prod' } }));
      await store.create(network(`${p}web-dev`, { labels: { tier: 'web', env: 'dev' } }));
      await store.create(network(`${p}db`, { labels: { tier: 'db' } }));
      await store.create(network(`${p}none`));
      const names = async (labelSelector: string) => (await store.list('Network', { labelSelector })).items
        .map((i) => i.metadata.name).filter((x) => x.startsWith(p)).map((x) => x.slice(p.length)).sort();
      expect(await names('tier=web')).toEqual(['web-dev', 'web-prod']);
      expect(await names('tier==web,env=prod')).toEqual(['web-prod']);
      expect(await names('tier!=web')).toEqual(['db', 'none']);
      expect(await names('tier')).toEqual(['db', 'web-dev', 'web-prod']);
      expect(await names('!tier')).toEqual(['none']);
      expect(await names('')).toEqual(['db', 'none', 'web-dev', 'web-prod']);
      await expectCode(store.list('Network', { labelSelector: 'tier in (web)' }), 'InvalidArgument');
    });

    it('rejects documents of 1 MiB and invalid documents, writing nothing', async () => {
      const big = network(n('big'), { annotations: { blob: 'x'.repeat(1024 * 1024) } });
      await expectCode(store.create(big), 'InvalidArgument');
      await expectCode(store.get('Network', n('big')), 'NotFound');

      await expectCode(store.create(network(n('bad'), {}, { ipv4_cidr: '10.0.0.0/24', nonsense: true } as Network['spec'])), 'InvalidArgument');
      await expectCode(store.get('Network', n('bad')), 'NotFound');
      await expectCode(store.create(network('Not_A_Name')), 'InvalidArgument');
      await expectCode(store.create({ ...network(n('bad-kind')), kind: 'Nope' } as unknown as Network), 'InvalidArgument');

      const ok = await store.create(network(n('valid')));
      await expectCode(store.update({ ...ok, status: { state: 'NOT-A-STATE' } } as unknown as Network, { subresource: 'status' }), 'InvalidArgument');
      await expectCode(store.update({ ...ok, metadata: { ...ok.metadata, annotations: { blob: 'x'.repeat(1024 * 1024) } } }), 'InvalidArgument');
      expect(await store.get('Network', n('valid'))).toEqual(ok);
    });
  });
}
