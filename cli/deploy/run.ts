// Runs a checked n0deploy plan over one SSH session: the bootstrap section when the VM's record
// of it differs from this file's (or there is none), then every deploy step; the first step that
// fails ends the run with its exit code. The record is the bootstrap hash in
// ~/.n0deploy/NAME.bootstrap of the login user, written only after the whole section succeeded.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Writable } from 'node:stream';
import { describeStep, shellQuote } from './parse';
import type { DeployPlan, PlannedCopy, PlannedSection, PlannedStep } from './plan';
import { exitCodeOf, type ExecResult, type SshSession } from './ssh';

export const RECORD_DIR = '.n0deploy';
/** What names a record: the file's base name by default, so two apps on one VM keep theirs apart. */
export const RECORD_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export interface DeployOptions {
  /** The record's name on the VM (RECORD_NAME). */
  name: string;
  /** Steps run as root through `sudo -n` (the login user's record stays in its own home). */
  sudo?: boolean;
  /** Run the bootstrap section whatever the record says. */
  forceBootstrap?: boolean;
  /** The steps' own output, as it comes. */
  stdout: Writable;
  stderr: Writable;
  /** n0ctl's progress lines (which step, skipped or not). */
  log: (line: string) => void;
}

export interface DeployOutcome {
  exitCode: number;
  bootstrap: 'ran' | 'skipped' | 'absent';
  stepsRun: number;
  /** The step that failed, as describeStep shows it, with its section and position. */
  failed?: { section: string; index: number; of: number; step: string; exitCode: number; message?: string };
}

/** One command line for the VM's login shell: /bin/sh runs `script` with `args` as $1.. (never spliced in). */
export function remoteCommand(script: string, args: string[] = [], sudo = false): string {
  return [...(sudo ? ['sudo', '-n', '--'] : []), '/bin/sh', '-c', script, ...(args.length ? ['sh', ...args] : [])].map(shellQuote).join(' ');
}

const RECORD = `"$HOME"/${RECORD_DIR}/"$1".bootstrap`;
export const READ_RECORD = `cat -- ${RECORD} 2>/dev/null || true`;
export const WRITE_RECORD = `mkdir -p -- "$HOME"/${RECORD_DIR} && printf '%s\\n' "$2" > ${RECORD}.tmp && mv -f -- ${RECORD}.tmp ${RECORD}`;
// A trailing "/" or an existing folder means "into it" (Docker's rule); otherwise the path is the file.
export const COPY_FILE = 't=$1; case $1 in */) t=$1$2 ;; *) if [ -d "$1" ]; then t=$1/$2; fi ;; esac; '
  + 'mkdir -p -- "$(dirname -- "$t")" && cat > "$t" && chmod -- "$3" "$t"';
// --no-overwrite-dir: copying into /opt must not give /opt the mode of the local folder.
export const COPY_FOLDER = 'mkdir -p -- "$1" && tar -x -f - -C "$1" --no-same-owner --no-overwrite-dir';

async function copy(session: SshSession, step: PlannedCopy, sudo: boolean, stderr: Writable): Promise<ExecResult> {
  if (step.kind === 'file') {
    const cmd = remoteCommand(COPY_FILE, [step.destination, path.basename(step.absolute), (step.mode & 0o7777).toString(8)], sudo);
    return session.exec(cmd, { stderr, input: fs.createReadStream(step.absolute) });
  }
  // Symlinks inside the folder travel as symlinks: their targets are never read here.
  const tar = spawn('tar', ['-c', '-f', '-', '-C', step.absolute, '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tarErr = '';
  tar.stderr.setEncoding('utf8').on('data', (d: string) => { tarErr += d; });
  const tarDone = new Promise<number>((resolve) => {
    tar.once('error', (e) => { tarErr += e.message; resolve(127); });
    tar.once('close', (code, signal) => resolve(exitCodeOf(code, signal)));
  });
  const [remote, local] = await Promise.all([session.exec(remoteCommand(COPY_FOLDER, [step.destination], sudo), { stderr, input: tar.stdout }), tarDone]);
  // A remote side that failed first leaves the local tar writing into a closed pipe: its code is the story.
  if (remote.code !== 0 || local === 0) return remote;
  return { code: local, stdout: '', stderr: `tar here failed (exit ${local}): ${tarErr.trim()}` };
}

async function runStep(session: SshSession, step: PlannedStep, options: DeployOptions): Promise<ExecResult> {
  if (step.instruction === 'RUN') return session.exec(remoteCommand(step.command, [], options.sudo), { stdout: options.stdout, stderr: options.stderr });
  return copy(session, step, !!options.sudo, options.stderr);
}

async function runSection(session: SshSession, section: PlannedSection, options: DeployOptions, outcome: DeployOutcome): Promise<boolean> {
  const label = section.name.toLowerCase();
  for (const [i, step] of section.steps.entries()) {
    const where = `[${label} ${i + 1}/${section.steps.length}]`;
    options.log(`${where} ${describeStep(step)}`);
    const result = await runStep(session, step, options);
    outcome.stepsRun++;
    if (result.code !== 0) {
      outcome.exitCode = result.code;
      outcome.failed = { section: label, index: i + 1, of: section.steps.length, step: describeStep(step), exitCode: result.code, message: result.stderr.trim() || undefined };
      return false;
    }
  }
  return true;
}

export async function runDeploy(plan: DeployPlan, session: SshSession, options: DeployOptions): Promise<DeployOutcome> {
  if (!RECORD_NAME.test(options.name)) throw new Error(`record name ${JSON.stringify(options.name)} must match ${RECORD_NAME.source}`);
  const outcome: DeployOutcome = { exitCode: 0, bootstrap: 'absent', stepsRun: 0 };
  const recordShown = `~/${RECORD_DIR}/${options.name}.bootstrap`;
  if (plan.bootstrap) {
    const read = await session.exec(remoteCommand(READ_RECORD, [options.name]));
    if (read.code !== 0) {
      outcome.exitCode = read.code;
      outcome.failed = { section: 'bootstrap', index: 0, of: plan.bootstrap.steps.length, step: `reading ${recordShown}`, exitCode: read.code, message: read.stderr.trim() || undefined };
      return outcome;
    }
    const recorded = read.stdout.trim().split('\n')[0] ?? '';
    if (recorded === plan.bootstrap.hash && !options.forceBootstrap) {
      options.log(`bootstrap: skipped, it ran before on this VM (${recordShown} holds ${plan.bootstrap.hash.slice(0, 19)}\u2026)`);
      outcome.bootstrap = 'skipped';
    } else {
      options.log(`bootstrap: runs, ${options.forceBootstrap ? 'as --force-bootstrap asks' : recorded ? `the section changed since the recorded ${recorded.slice(0, 19)}\u2026` : 'it never ran on this VM'}`);
      if (!await runSection(session, plan.bootstrap, options, outcome)) return outcome;
      const write = await session.exec(remoteCommand(WRITE_RECORD, [options.name, plan.bootstrap.hash]));
      if (write.code !== 0) {
        outcome.exitCode = write.code;
        outcome.failed = { section: 'bootstrap', index: plan.bootstrap.steps.length, of: plan.bootstrap.steps.length, step: `writing ${recordShown}`, exitCode: write.code, message: write.stderr.trim() || undefined };
        return outcome;
      }
      outcome.bootstrap = 'ran';
    }
  }
  await runSection(session, plan.deploy, options, outcome);
  return outcome;
}
