// `n0ctl deploy -f FILE vm NAME`: where the VM is (the facade's GetVirtualMachine, or --host),
// who logs in (its login_username, or --user), then the n0deploy plan over one SSH session.
import * as path from 'node:path';
import { Command } from 'commander';
import { FailedPreconditionError, InvalidArgumentError } from '../../api/errors';
import { resolveKind } from '../kinds';
import { describeStep } from './parse';
import { loadDeployPlan, type DeployPlan } from './plan';
import { RECORD_DIR, RECORD_NAME, runDeploy } from './run';
import { SshConnectError, SshSession, type SshTarget } from './ssh';

interface VmAnswer { name?: string; login_username?: string; nics?: { network_name?: string; ipv4_address?: string }[] }

export interface DeployDeps {
  /** VirtualMachineService.GetVirtualMachine through the user's connection. */
  getVm: (name: string) => Promise<VmAnswer>;
  parseDuration: (value: string) => number;
  out: (line: string) => void;
  err: (line: string) => void;
  /** The error that makes n0ctl exit with `code` after the message already printed. */
  fail: (code: number) => Error;
}

interface DeployFlags {
  filename: string; identity?: string; user?: string; host?: string; port?: string; sshOption?: string[];
  sudo?: boolean; name?: string; forceBootstrap?: boolean; wait: string; dryRun?: boolean;
}

/** The record's default name: the file's base name, made safe for a path on the VM. */
export function recordName(file: string): string {
  const name = path.basename(file).replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 100);
  return name || 'n0deploy';
}

/** Where to log in: the flags first, then what the facade says of the VM. */
export function sshTarget(vmName: string, vm: VmAnswer | undefined, flags: { host?: string; user?: string }): { host: string; user: string } {
  const host = flags.host ?? vm?.nics?.find((n) => n.ipv4_address)?.ipv4_address;
  if (!host) throw new FailedPreconditionError(`virtualmachine/${vmName} has no NIC with an ipv4_address; give --host`, 'nics');
  const user = flags.user ?? (vm?.login_username || undefined);
  if (!user) throw new FailedPreconditionError(`virtualmachine/${vmName} has no login_username; give --user`, 'login_username');
  return { host, user };
}

function printPlan(plan: DeployPlan, out: (line: string) => void): void {
  for (const section of [plan.bootstrap, plan.deploy]) {
    if (!section) continue;
    out(`${section.name}${section === plan.bootstrap ? ` (${plan.bootstrap.hash})` : ''}`);
    section.steps.forEach((s, i) => out(`  ${i + 1}. ${describeStep(s, Infinity)}${s.instruction === 'COPY' ? ` [${s.kind}]` : ''}`));
  }
}

async function openWithin(session: SshSession, waitMs: number, err: (line: string) => void): Promise<void> {
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    try { return await session.open(); } catch (e) {
      if (!(e instanceof SshConnectError) || Date.now() >= deadline) throw e;
      if (!told) err(`waiting up to ${Math.round(waitMs / 1000)} s for SSH on ${session.destination} (${e.stderr.split('\n')[0] || `exit ${e.exitCode}`})`);
      told = true;
      await new Promise((r) => setTimeout(r, 3000));
    }
  }
}

async function deployAction(deps: DeployDeps, kind: string, vmName: string, flags: DeployFlags): Promise<void> {
  if (resolveKind(kind) !== 'VirtualMachine') throw new InvalidArgumentError('deploy works on virtual machines only: n0ctl deploy -f FILE vm NAME', 'kind');
  const name = flags.name ?? recordName(flags.filename);
  if (!RECORD_NAME.test(name)) throw new InvalidArgumentError(`--name ${JSON.stringify(name)}: letters, digits, ".", "_" and "-", starting with a letter or digit`, '--name');
  const port = flags.port === undefined ? undefined : Number(flags.port);
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) throw new InvalidArgumentError(`--port ${flags.port}: a TCP port (1-65535)`, '--port');
  let waitMs: number;
  try { waitMs = deps.parseDuration(flags.wait); } catch {
    throw new InvalidArgumentError(`--wait ${JSON.stringify(flags.wait)}: use a duration such as 30s or 5m`, '--wait');
  }
  const plan = loadDeployPlan(flags.filename);
  if (flags.dryRun) { printPlan(plan, deps.out); return; }

  const vm = flags.host && flags.user ? undefined : await deps.getVm(vmName);
  const target: SshTarget = { ...sshTarget(vmName, vm, flags), port, identity: flags.identity, options: flags.sshOption ?? [] };
  const session = new SshSession(target);
  const started = Date.now();
  try {
    await openWithin(session, waitMs, deps.err);
    const outcome = await runDeploy(plan, session, {
      name, sudo: flags.sudo, forceBootstrap: flags.forceBootstrap,
      stdout: process.stdout, stderr: process.stderr, log: deps.out,
    });
    if (outcome.failed) {
      const f = outcome.failed;
      const step = f.index > 0 ? `[${f.section} ${f.index}/${f.of}] ${f.step}` : f.step;
      deps.err(`n0ctl: deploy to ${session.destination} stopped: ${step} failed with exit code ${f.exitCode}${f.message ? `: ${f.message}` : ''}`);
      throw deps.fail(outcome.exitCode);
    }
    deps.out(`deployed to ${session.destination}: ${outcome.stepsRun} step${outcome.stepsRun === 1 ? '' : 's'} (bootstrap ${outcome.bootstrap}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally { session.close(); }
}

export function deployCommand(deps: DeployDeps): Command {
  return new Command('deploy')
    .description('run an n0deploy file on a virtual machine over SSH: its BOOTSTRAP once, its DEPLOY every time')
    .argument('<kind>', 'vm')
    .argument('<name>', 'virtual machine name')
    .requiredOption('-f, --filename <file>', 'the n0deploy file; COPY sources are relative to its folder')
    .option('-i, --identity <key>', 'private key for SSH (default: ssh\'s own, e.g. the agent or ~/.ssh/id_*)')
    .option('--user <name>', 'login user (default: the VM\'s login_username)')
    .option('--host <address>', 'address to connect to (default: the VM\'s first NIC ipv4_address); with --user the facade is not asked')
    .option('--port <port>', 'SSH port (default 22 or ~/.ssh/config)')
    .option('-o, --ssh-option <option>', 'an ssh -o option, e.g. StrictHostKeyChecking=accept-new or ProxyJump=node1 (repeatable)', (v: string, all: string[] = []) => [...all, v])
    .option('--sudo', 'run RUN and COPY as root with sudo -n (the record stays in the login user\'s home)')
    .option('--name <record>', `name of the bootstrap record ~/${RECORD_DIR}/NAME.bootstrap on the VM (default: the file's name)`)
    .option('--force-bootstrap', 'run BOOTSTRAP even if the VM\'s record says this section already ran')
    .option('--wait <duration>', 'keep trying to log in this long (a VM that is still booting)', '0s')
    .option('--dry-run', 'check the file and print its steps and bootstrap hash, without connecting')
    .addHelpText('after', `
n0deploy file (Dockerfile-like; # starts a comment, a trailing \\ continues the line):
  BOOTSTRAP                 optional, once per VM: runs again only when the section changes
  RUN apt-get install -y nginx
  DEPLOY                    every run
  COPY site/ /var/www/html  a folder's contents into a folder, or a file
  RUN systemctl reload nginx

Each RUN is /bin/sh -c on the VM, its output streamed here; the first failing step stops the
deploy and n0ctl exits with that step's exit code. After BOOTSTRAP succeeds, the sha256 of the
section (its steps and the bytes it copies) is written to ~/${RECORD_DIR}/NAME.bootstrap of the
login user on the VM.

Examples:
  n0ctl deploy -f n0deploy -i ~/.ssh/id_ed25519 vm test-vm
  n0ctl deploy -f app/n0deploy --sudo -o StrictHostKeyChecking=accept-new vm test-vm
  n0ctl deploy -f n0deploy --dry-run vm test-vm`)
    .action((kind: string, vmName: string, flags: DeployFlags) => deployAction(deps, kind, vmName, flags));
}
