// Which accelerator boots on this host. `/dev/kvm` existing and QMP saying "KVM enabled" prove
// little: on nested hosts QEMU can abort as it sets the vCPU's MSRs for `-cpu host`, the guest can
// die with "KVM internal error" in its first instructions, or KVM can run guest code so slowly
// that it hangs. So, like libvirt's virt-host-validate but stricter, the probe boots a guest with
// the same machine type and CPU model VMs get: a 512-byte boot sector (probe-guest.S) that goes
// from real mode to long mode with paging, touches memory, computes for a while, writes a marker
// to COM1 and powers off through isa-debug-exit. KVM counts only when the marker arrives before
// the deadline.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '../../api/errors';
import { classifyQmpMessage, encodeQmpCommand, splitQmpLines } from './qmp';
import type { Accelerator } from './types';

export const PROBE_MARKER = 'N0STACK-PROBE-OK';
export const ACCELERATOR_CHOICES = ['auto', 'kvm', 'tcg'] as const;
export type AcceleratorChoice = (typeof ACCELERATOR_CHOICES)[number];
/** The machine type VMs use (buildQemuArgs' default). */
export const VM_MACHINE = 'q35';
/** CPU models tried under TCG, best first: `max` exposes every feature TCG emulates. */
const TCG_CPU_MODELS = ['max', 'qemu64'] as const;
const ISA_DEBUG_EXIT_PORT = 0xf4;

export function parseAcceleratorChoice(value: string | undefined, field = 'accelerator'): AcceleratorChoice {
  const v = (value ?? 'auto').trim().toLowerCase() || 'auto';
  if (!(ACCELERATOR_CHOICES as readonly string[]).includes(v)) throw new InvalidArgumentError(`${field} must be one of ${ACCELERATOR_CHOICES.join('|')}, got ${JSON.stringify(value)}`, field);
  return v as AcceleratorChoice;
}

/** agent/drivers/probe-guest.S assembled by hack/build-probe-guest.sh (a unit test checks they agree). */
export const PROBE_GUEST_BASE64 =
  '+vwxwI7YjsCO0LwAfLr4A7Ax7mYPARYgfQ8gwGaDyAEPIsBm6it8AAAIAGa4EACO2I7AjtC8AHwAAGa6+AOwMu6/ABAAADHAuQAMAADzq8cFABAAAAMgAADHBQAgAAADMAAAvwAwAAC4gwAAALkgAAAAiQcFAAAgAIPHCOL0uAAQAAAPItgPIOCDyCAPIuC5gAAAwA8yDQABAAAPMA8gwA0AAACADyLA6q98AAAYAGa6+AOwM+5Ix8cAAEAAxgcBSIHHABAAAEiB/wAAQAJy7bA07kjHwYDw+gJI/8l1+7A17kiNNT0AAACshMB0A+7r+Ga69ACwEO706/0PH0QAAAAAAAAAAAAA//8AAACazwD//wAAAJLPAP//AAAAmq8AHwAAfQAACk4wU1RBQ0stUFJPQkUtT0sKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAVao=';

/** What the stage digits the probe guest writes before the marker mean (probe-guest.S). */
export const PROBE_STAGES = ['started', 'real mode', 'protected mode', 'long mode with paging', '32 MiB of memory touched', '50 million loop iterations'] as const;

/**
 * A raw disk image whose first sector is the probe guest, padded to 1 MiB: SeaBIOS cannot read
 * the boot sector of a smaller virtio disk (64 KiB fails: "could not read the boot disk").
 */
export function probeBootImage(): Buffer {
  const sector = Buffer.from(PROBE_GUEST_BASE64, 'base64');
  if (sector.length !== 512 || sector[510] !== 0x55 || sector[511] !== 0xaa) throw new Error('the embedded probe guest is not a boot sector');
  const image = Buffer.alloc(1024 * 1024);
  sector.copy(image, 0);
  return image;
}

/** How far the guest got, from what it wrote to COM1 (pure). */
export function probeStage(serial: string): string {
  const digits = serial.replace(/[^1-5]/g, '').slice(0, 5);
  return PROBE_STAGES[digits.length];
}

export type ProbeOutcome = 'booted' | 'aborted' | 'internal-error' | 'guest-panicked' | 'timeout' | 'cannot-run';

export interface BootProbeResult {
  ok: boolean;
  outcome: ProbeOutcome;
  /** One line a user can act on, with QEMU's own words where it said any. */
  reason: string;
  ms: number;
}

export interface BootProbeTarget {
  accel: Accelerator;
  cpu: string;
  machine?: string;
}

/** The argument vector of one probe boot (pure; the image and serial log live in `dir`). */
export function bootProbeArgs(target: BootProbeTarget, dir: string): string[] {
  return [
    '-machine', `${target.machine ?? VM_MACHINE},accel=${target.accel}`,
    '-cpu', target.cpu,
    '-nodefaults', '-no-user-config', '-display', 'none', '-m', '32',
    '-drive', `file=${path.join(dir, 'probe.img')},format=raw,if=none,id=probe0,readonly=on`,
    '-device', 'virtio-blk-pci,drive=probe0,bootindex=0',
    '-device', `isa-debug-exit,iobase=0x${ISA_DEBUG_EXIT_PORT.toString(16)},iosize=0x04`,
    '-chardev', `file,id=serial0,path=${path.join(dir, 'serial.log')}`,
    '-serial', 'chardev:serial0',
    '-qmp', 'stdio',
  ];
}

const lastLines = (text: string, n = 3): string => text.trim().split('\n').slice(-n).join(' | ');

/** Boots the probe guest once and says how it went. Never throws. */
export async function bootProbe(binary: string, target: BootProbeTarget, timeoutMs: number): Promise<BootProbeResult> {
  const started = Date.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-accel-probe-'));
  fs.writeFileSync(path.join(dir, 'probe.img'), probeBootImage());
  const serialFile = path.join(dir, 'serial.log');
  try {
    return await new Promise<BootProbeResult>((resolve) => {
      // env given explicitly: the binary is looked up on this process.env's PATH (tests put a stand-in first).
      const child = spawn(binary, bootProbeArgs(target, dir), { stdio: ['pipe', 'pipe', 'pipe'], env: process.env });
      let stdout = '';
      let stderr = '';
      let done = false;
      const serial = (): string => { try { return fs.readFileSync(serialFile, 'latin1'); } catch { return ''; } };
      const markerSeen = (): boolean => serial().includes(PROBE_MARKER);
      const finish = (ok: boolean, outcome: ProbeOutcome, reason: string): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(poll);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        resolve({ ok, outcome, reason, ms: Date.now() - started });
      };
      const booted = (): void => finish(true, 'booted', `${target.accel} -cpu ${target.cpu} booted the probe guest`);
      const timer = setTimeout(() => {
        if (markerSeen()) return booted();
        const said = lastLines(stderr);
        finish(false, 'timeout', `the probe guest did not finish within ${timeoutMs} ms (it got as far as: ${probeStage(serial())})${said ? `: ${said}` : ''}`);
      }, timeoutMs);
      const poll = setInterval(() => { if (markerSeen()) booted(); }, 20);
      child.on('error', (err) => finish(false, 'cannot-run', `cannot run ${binary}: ${err.message}`));
      child.stdin.on('error', () => undefined);
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (c: string) => {
        stderr += c;
        // QEMU stops the guest and keeps running after a KVM internal error; no point waiting.
        if (/KVM internal error/i.test(stderr)) finish(false, 'internal-error', `the probe guest stopped: ${lastLines(stderr)}`);
      });
      child.on('close', (code, signal) => {
        if (markerSeen()) return booted();
        finish(false, 'aborted', `QEMU exited (${signal ?? code}) before the probe guest booted: ${lastLines(stderr) || 'no output'}`);
      });
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => {
        const { lines, rest } = splitQmpLines(stdout + chunk);
        stdout = rest;
        for (const line of lines) {
          let msg;
          try { msg = classifyQmpMessage(JSON.parse(line)); } catch { continue; }
          if (msg.kind === 'greeting') child.stdin.write(encodeQmpCommand('qmp_capabilities', undefined, 'caps'));
          else if (msg.kind === 'event' && msg.event === 'GUEST_PANICKED') finish(false, 'guest-panicked', 'the probe guest panicked');
          else if (msg.kind === 'event' && msg.event === 'STOP') child.stdin.write(encodeQmpCommand('query-status', undefined, 'status'));
          else if (msg.kind === 'return' && msg.id === 'status') {
            const status = (msg.value as { status?: string }).status;
            if (status === 'internal-error' || status === 'guest-panicked') finish(false, status, `the probe guest stopped with status ${status}${stderr ? `: ${lastLines(stderr)}` : ''}`);
          }
        }
      });
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface AcceleratorProbe {
  accelerator: Accelerator;
  /** The `-cpu` model VMs get with it. */
  cpuModel: string;
  /** Why this accelerator: what the probe saw, in one line. */
  reason: string;
  /** What became of KVM on this host: the kind of host it is. */
  kvm: 'works' | 'absent' | 'broken' | 'not-tried';
  /** Condition reason for the Node (KvmBooted, KvmAbsent, KvmAborted, KvmInternalError, KvmTimeout, TcgForced). */
  conditionReason: string;
  probeMs: number;
}

export interface ChooseAcceleratorOptions {
  choice: AcceleratorChoice;
  binary: string;
  kvmDevice: string;
  timeoutMs: number;
  /** The boot probe (tests pass their own). */
  boot?: typeof bootProbe;
}

const KVM_CONDITION_REASON: Record<ProbeOutcome, string> = {
  booted: 'KvmBooted', aborted: 'KvmAborted', 'internal-error': 'KvmInternalError', 'guest-panicked': 'KvmInternalError', timeout: 'KvmTimeout', 'cannot-run': 'KvmAborted',
};

/**
 * Picks the accelerator VMs will use. `kvm` that does not boot is an error naming the probe's
 * output (the operator asked for it); `auto` falls back to TCG and says why.
 */
export async function chooseAccelerator(o: ChooseAcceleratorOptions): Promise<AcceleratorProbe> {
  const boot = o.boot ?? bootProbe;
  const started = Date.now();
  let kvmFailure: { reason: string; outcome: ProbeOutcome } | undefined;
  if (o.choice !== 'tcg') {
    if (!fs.existsSync(o.kvmDevice)) {
      if (o.choice === 'kvm') throw new FailedPreconditionError(`accelerator kvm was requested but ${o.kvmDevice} is absent`, 'accelerator');
    } else {
      const r = await boot(o.binary, { accel: 'kvm', cpu: 'host' }, o.timeoutMs);
      if (r.ok) return { accelerator: 'kvm', cpuModel: 'host', reason: `KVM boots (-cpu host, probe guest in ${r.ms} ms)`, kvm: 'works', conditionReason: 'KvmBooted', probeMs: Date.now() - started };
      if (o.choice === 'kvm') throw new FailedPreconditionError(`accelerator kvm was requested but the KVM probe failed (${r.outcome}): ${r.reason}`, 'accelerator');
      kvmFailure = { reason: r.reason, outcome: r.outcome };
    }
  }
  const tcgFailures: string[] = [];
  for (const cpu of TCG_CPU_MODELS) {
    const r = await boot(o.binary, { accel: 'tcg', cpu }, o.timeoutMs);
    if (!r.ok) { tcgFailures.push(`-cpu ${cpu}: ${r.reason}`); continue; }
    const why = o.choice === 'tcg'
      ? 'TCG forced (--accelerator tcg / N0STACK_ACCELERATOR=tcg)'
      : kvmFailure ? `KVM probe failed (${kvmFailure.outcome}): ${kvmFailure.reason}` : `${o.kvmDevice} is absent`;
    return {
      accelerator: 'tcg', cpuModel: cpu, reason: `${why}; using TCG -cpu ${cpu}`,
      kvm: o.choice === 'tcg' ? 'not-tried' : kvmFailure ? 'broken' : 'absent',
      conditionReason: o.choice === 'tcg' ? 'TcgForced' : kvmFailure ? KVM_CONDITION_REASON[kvmFailure.outcome] : 'KvmAbsent',
      probeMs: Date.now() - started,
    };
  }
  throw new FailedPreconditionError(`no accelerator boots on this host: ${[...(kvmFailure ? [`kvm: ${kvmFailure.reason}`] : []), ...tcgFailures].join('; ')}`, 'accelerator');
}

/** The one line that says what kind of host this is (agent start-up, `n0stack probe-accelerator`, test output). */
export function describeProbe(p: AcceleratorProbe): string {
  const kind = { works: 'KVM works', absent: 'no KVM', broken: 'KVM present but broken', 'not-tried': 'KVM not tried' }[p.kvm];
  return `accelerator probe: ${kind}: using ${p.accelerator} (-cpu ${p.cpuModel}) in ${p.probeMs} ms: ${p.reason}`;
}
