import { isN0Error } from '../errors';
import { formatBytes, formatCpu, parseBytes, parseCpuMilli } from './quantity';

describe('quantity', () => {
  it('formats bytes with binary units', () => {
    expect(formatBytes(536870912)).toBe('512 MiB');
    expect(formatBytes(1073741824)).toBe('1 GiB');
    expect(formatBytes(1610612736)).toBe('1.5 GiB');
    expect(formatBytes(1000)).toBe('1000 B');
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(-2048)).toBe('-2 KiB');
  });

  it('formats cpu', () => {
    expect(formatCpu(1000)).toBe('1 core');
    expect(formatCpu(2500)).toBe('2.5 cores');
    expect(formatCpu(10)).toBe('10m');
    expect(formatCpu(0)).toBe('0 cores');
  });

  it('parses byte quantities', () => {
    expect(parseBytes('1Gi')).toBe(1073741824);
    expect(parseBytes('512Mi')).toBe(536870912);
    expect(parseBytes('10G')).toBe(10_000_000_000);
    expect(parseBytes('1024')).toBe(1024);
    expect(parseBytes('1.5Gi')).toBe(1610612736);
    expect(parseBytes(42)).toBe(42);
    for (const bad of ['', 'abc', '1Xi', '-1', '0.3']) {
      let err: unknown;
      try { parseBytes(bad, 'limit_bytes'); } catch (e) { err = e; }
      expect(isN0Error(err, 'InvalidArgument')).toBe(true);
      expect((err as Error).message).toContain('limit_bytes');
    }
  });

  it('parses cpu quantities', () => {
    expect(parseCpuMilli('1500m')).toBe(1500);
    expect(parseCpuMilli('2')).toBe(2000);
    expect(parseCpuMilli('0.5')).toBe(500);
    expect(() => parseCpuMilli('0.0005')).toThrow(/milli cores/);
    expect(() => parseCpuMilli('two')).toThrow(/CPU quantity/);
  });
});
