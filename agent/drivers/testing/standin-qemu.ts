// A stand-in `qemu-system-x86_64` for tests of hosts whose KVM is broken: a small script that a
// test puts first on PATH. It behaves like the real QEMU on the machine of issue [H]: given KVM
// it aborts as QEMU does when KVM refuses the vCPU's MSRs (or, in other modes, hangs or stops the
// guest with a KVM internal error); anything else is handed to the real binary.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type StandInKvm = 'abort' | 'hang' | 'internal-error';

export interface StandInOptions {
  /** What `-accel kvm` / `accel=kvm` does. */
  kvm: StandInKvm;
  /** Also abort every VM launch (not the accelerator probe's boot): a VM whose QEMU always dies. */
  abortVms?: boolean;
}

/** The lines the real QEMU printed on the machine of issue [H]. */
export const MSR_ABORT_LINES = [
  'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69',
  "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3000: kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.",
];

export interface StandInQemu {
  dir: string;
  /** PATH with the stand-in first. */
  path: string;
  remove(): void;
}

function script(o: StandInOptions, real: string): string {
  const abort = [...MSR_ABORT_LINES.map((l) => `echo ${JSON.stringify(l).replace(/`/g, '\\`')} >&2`), 'kill -ABRT $$'].join('; ');
  const onKvm = {
    abort,
    hang: 'exec sleep 600',
    // QEMU stops the guest and keeps running after a KVM internal error.
    'internal-error': 'echo "KVM internal error. Suberror: 1" >&2; echo "emulation failure" >&2; exec sleep 600',
  }[o.kvm];
  return [
    '#!/bin/sh',
    'case " $* " in *accel=kvm*|*"-accel kvm"*) ' + onKvm + ' ;; esac',
    ...(o.abortVms ? ['case " $* " in *isa-debug-exit*) ;; *) ' + abort + ' ;; esac'] : []),
    `exec ${real} "$@"`,
    '',
  ].join('\n');
}

/** Writes the stand-in into a temp dir; `path` puts it before the real one. */
export function installStandInQemu(o: StandInOptions, real = '/usr/bin/qemu-system-x86_64'): StandInQemu {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0-standin-qemu-'));
  fs.writeFileSync(path.join(dir, 'qemu-system-x86_64'), script(o, real), { mode: 0o755 });
  return { dir, path: `${dir}:${process.env.PATH ?? ''}`, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
