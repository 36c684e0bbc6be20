import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { probeCacheKey, readProbeCache, resolveBinary, writeProbeCache } from './probe-cache';
import type { AcceleratorProbe } from './accel-probe';

const probe: AcceleratorProbe = { accelerator: 'tcg', cpuModel: 'max', reason: 'KVM probe failed (timeout): x; using TCG -cpu max', kvm: 'broken', conditionReason: 'KvmTimeout', probeMs: 5300 };
let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0-probe-cache-')); });
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a verdict is read back only under its own key, marked as remembered', () => {
  const file = path.join(dir, 'sub', 'accel-probe.json');
  writeProbeCache(file, 'k1', probe, new Date('2026-12-02T00:00:00Z'));
  expect((fs.statSync(file).mode & 0o777).toString(8)).toBe('600');
  expect(readProbeCache(file, 'k2')).toBeUndefined();
  expect(readProbeCache(file, 'k1')).toEqual({ ...probe, probeMs: 0, reason: `${probe.reason} (this boot's probe of 2026-12-02T00:00:00.000Z; SIGHUP probes again)` });
});

test('a missing, torn or foreign file is no verdict', () => {
  const file = path.join(dir, 'accel-probe.json');
  expect(readProbeCache(file, 'k')).toBeUndefined();
  fs.writeFileSync(file, '{"key":"k","probe":{"accel');
  expect(readProbeCache(file, 'k')).toBeUndefined();
  fs.writeFileSync(file, JSON.stringify({ key: 'k', probe: { reason: 'no accelerator field' } }));
  expect(readProbeCache(file, 'k')).toBeUndefined();
});

test('the key changes with the QEMU binary, the KVM device and the settings', () => {
  const bin = path.join(dir, 'qemu-system-x86_64');
  fs.writeFileSync(bin, '#!/bin/sh\n', { mode: 0o755 });
  const base = { choice: 'auto', binary: bin, kvmDevice: '/dev/null', timeoutMs: 5000 };
  const key = probeCacheKey(base);
  expect(key).toBeDefined();
  expect(probeCacheKey(base)).toBe(key);
  expect(probeCacheKey({ ...base, timeoutMs: 3000 })).not.toBe(key);
  expect(probeCacheKey({ ...base, choice: 'kvm' })).not.toBe(key);
  expect(probeCacheKey({ ...base, kvmDevice: path.join(dir, 'no-kvm') })).not.toBe(key);
  fs.appendFileSync(bin, 'exit 0\n');
  expect(probeCacheKey(base)).not.toBe(key);
});

test('a bare binary name resolves on PATH as exec would', () => {
  const bin = path.join(dir, 'qemu-system-x86_64');
  fs.writeFileSync(bin, '#!/bin/sh\n', { mode: 0o755 });
  expect(resolveBinary('qemu-system-x86_64', `/nonexistent:${dir}`)).toBe(bin);
  expect(resolveBinary('qemu-system-x86_64', '/nonexistent')).toBeUndefined();
  expect(resolveBinary(bin, '')).toBe(bin);
});
