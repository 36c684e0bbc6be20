// The accelerator probe's verdict, remembered for the rest of this boot of the host. On a host
// whose KVM hangs the probe waits out its whole timeout (5 s), and an agent restarted after a
// crash or an upgrade would pay that each time. What the verdict depends on is in the key: the
// boot (a reboot may load another kvm module or firmware setting), the QEMU binary that runs,
// the KVM device node (a module reload makes a new one), and the probe's settings. SIGHUP or the
// agent's ProbeAccelerator RPC probes again and replaces the remembered verdict.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AcceleratorProbe } from './accel-probe';

export interface ProbeInputs {
  choice: string;
  binary: string;
  kvmDevice: string;
  timeoutMs: number;
}

const BOOT_ID = '/proc/sys/kernel/random/boot_id';

/** Where `binary` resolves on PATH (as execvp would), or undefined when it does not. */
export function resolveBinary(binary: string, searchPath = process.env.PATH ?? ''): string | undefined {
  if (binary.includes('/')) return fs.existsSync(binary) ? path.resolve(binary) : undefined;
  for (const dir of searchPath.split(':').filter(Boolean)) {
    const candidate = path.join(dir, binary);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch { /* next */ }
  }
  return undefined;
}

function fileIdentity(file: string | undefined): string {
  if (!file) return 'absent';
  try {
    const st = fs.statSync(file);
    return `${fs.realpathSync(file)}:${st.dev}:${st.ino}:${st.rdev}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  } catch {
    return 'absent';
  }
}

/** The key a remembered verdict must match; undefined when this host cannot tell one boot from another. */
export function probeCacheKey(inputs: ProbeInputs): string | undefined {
  let bootId: string;
  try { bootId = fs.readFileSync(BOOT_ID, 'utf8').trim(); } catch { return undefined; }
  if (!bootId) return undefined;
  return JSON.stringify({
    bootId, choice: inputs.choice, timeoutMs: inputs.timeoutMs,
    qemu: fileIdentity(resolveBinary(inputs.binary)), kvm: fileIdentity(inputs.kvmDevice),
  });
}

interface CacheFile { key: string; probedAt: string; probe: AcceleratorProbe }

/** The verdict remembered under `key`, marked as such in its reason. */
export function readProbeCache(file: string, key: string): AcceleratorProbe | undefined {
  let cached: CacheFile;
  try { cached = JSON.parse(fs.readFileSync(file, 'utf8')) as CacheFile; } catch { return undefined; }
  if (cached?.key !== key || !cached.probe?.accelerator || !cached.probe.cpuModel) return undefined;
  return { ...cached.probe, probeMs: 0, reason: `${cached.probe.reason} (this boot's probe of ${cached.probedAt}; SIGHUP probes again)` };
}

/** Remembers a verdict; written whole (rename) so a reader never sees half of it. */
export function writeProbeCache(file: string, key: string, probe: AcceleratorProbe, now = new Date()): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(tmp, JSON.stringify({ key, probedAt: now.toISOString(), probe } satisfies CacheFile), { mode: 0o600 });
  fs.renameSync(tmp, file);
}
