// Human-readable quantities for messages a user acts on ("512 MiB free, 1 GiB requested") and
// parsing of Kubernetes-style quantities ("1Gi", "512M", "1500m") for inputs.
import { InvalidArgumentError } from '../errors';

const BINARY = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 536870912 -> "512 MiB", 1073741824 -> "1 GiB", 1610612736 -> "1.5 GiB". */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const sign = bytes < 0 ? '-' : '';
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < BINARY.length - 1) { value /= 1024; unit++; }
  // Two decimals at most, trailing zeros dropped, so exact powers read as whole numbers.
  const text = unit === 0 ? String(value) : String(Math.round(value * 100) / 100);
  return `${sign}${text} ${BINARY[unit]}`;
}

/** 1000 -> "1 core", 2500 -> "2.5 cores", 10 -> "10m". */
export function formatCpu(milliCores: number): string {
  if (milliCores % 1000 !== 0 && Math.abs(milliCores) < 1000) return `${milliCores}m`;
  const cores = Math.round(milliCores) / 1000;
  return `${cores} ${cores === 1 ? 'core' : 'cores'}`;
}

const SUFFIX: Record<string, number> = {
  '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50,
};

/** Parses "1Gi", "512Mi", "10G", "1024" into bytes (integers only). */
export function parseBytes(text: string | number, field = 'bytes'): number {
  if (typeof text === 'number') {
    if (!Number.isSafeInteger(text) || text < 0) throw new InvalidArgumentError(`${field} must be a non-negative integer, got ${text}`, field);
    return text;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*(k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?B?\s*$/.exec(text);
  if (!m) throw new InvalidArgumentError(`${field} ${JSON.stringify(text)} is not a quantity (examples: 1073741824, 1Gi, 512Mi, 10G)`, field);
  const value = Number(m[1]) * SUFFIX[m[2] ?? ''];
  if (!Number.isSafeInteger(value)) throw new InvalidArgumentError(`${field} ${JSON.stringify(text)} is not a whole number of bytes or is too large`, field);
  return value;
}

/** Parses "1500m", "2", "0.5" into milli cores. */
export function parseCpuMilli(text: string | number, field = 'cpu'): number {
  const m = typeof text === 'number' ? [String(text), String(text), undefined] : /^\s*(\d+(?:\.\d+)?)(m)?\s*$/.exec(text);
  if (!m) throw new InvalidArgumentError(`${field} ${JSON.stringify(text)} is not a CPU quantity (examples: 2, 0.5, 1500m)`, field);
  const value = m[2] === 'm' ? Number(m[1]) : Number(m[1]) * 1000;
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidArgumentError(`${field} ${JSON.stringify(text)} is not a whole number of milli cores`, field);
  return value;
}
