// Test hosts as network namespaces. A NetnsLab remembers every namespace, root-side veth and
// process it made, and cleanupAll() removes them all even when a test failed half-way.
// The namespaces are islands: they get only lo and the veths a test asks for, never a link to the
// host's real interfaces nor a default route, so no packet can leave them. Use private test
// addresses (10.250.x.y for underlay links, 192.168.x.y for overlays).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../api/errors';
import { CommandError, run } from '../agent/exec';

export const TEST_NETNS_PREFIX = 'n0t-';
const NETNS = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const IP_TIMEOUT_MS = 10_000;

export interface VethEnd {
  /** Namespace of this end; undefined = the root namespace. */
  ns?: string;
  /** Interface name (default: a unique t0v<hex>, deliberately without the driver's n0 prefix). */
  name?: string;
  /** Address with prefix length, e.g. 10.250.0.1/24. */
  cidr?: string;
  /** A bridge (made with bridge()) in the same namespace that this end joins. */
  master?: string;
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

function checkNetns(ns: string): string {
  if (typeof ns !== 'string' || !NETNS.test(ns) || ns.includes('..')) throw new InvalidArgumentError(`netns ${JSON.stringify(ns)} is not a valid name`, 'netns');
  return ns;
}

function checkIfname(name: string): string {
  if (!IFNAME.test(name)) throw new InvalidArgumentError(`interface ${JSON.stringify(name)} is not a valid name`, 'ifname');
  return name;
}

function checkCidr(cidr: string): string {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
  if (!m || isIP(m[1]) === 0) throw new InvalidArgumentError(`address ${JSON.stringify(cidr)} must be ADDRESS/PREFIX`, 'cidr');
  return cidr;
}

function unique(prefix: string, bytes = 4): string {
  return `${prefix}${randomBytes(bytes).toString('hex')}`;
}

export class NetnsLab {
  private readonly namespaces = new Set<string>();
  private readonly rootLinks = new Set<string>();
  private readonly children = new Set<ChildProcess>();

  /** Every namespace this lab made and has not destroyed yet. */
  get created(): string[] { return [...this.namespaces]; }

  /** A fresh namespace `n0t-<random>` with lo up. */
  async create(): Promise<string> {
    const ns = unique(TEST_NETNS_PREFIX);
    await run('ip', ['netns', 'add', ns], { timeoutMs: IP_TIMEOUT_MS });
    this.namespaces.add(ns);
    await run('ip', ['-n', ns, 'link', 'set', 'dev', 'lo', 'up'], { timeoutMs: IP_TIMEOUT_MS });
    return ns;
  }

  /** A veth pair between two namespaces (or one and the root namespace), addressed and up. */
  async veth(a: VethEnd, b: VethEnd): Promise<{ a: string; b: string }> {
    const ends = [a, b].map((end) => ({
      ns: end.ns === undefined ? undefined : checkNetns(end.ns),
      name: checkIfname(end.name ?? unique('t0v')),
      cidr: end.cidr === undefined ? undefined : checkCidr(end.cidr),
      master: end.master === undefined ? undefined : checkIfname(end.master),
    }));
    const [ea, eb] = ends;
    const args = ['link', 'add', ea.name];
    if (ea.ns) args.push('netns', ea.ns);
    args.push('type', 'veth', 'peer', 'name', eb.name);
    if (eb.ns) args.push('netns', eb.ns);
    await run('ip', args, { timeoutMs: IP_TIMEOUT_MS });
    for (const end of ends) if (!end.ns) this.rootLinks.add(end.name);
    for (const end of ends) {
      const prefix = end.ns ? ['-n', end.ns] : [];
      if (end.cidr) await run('ip', [...prefix, 'addr', 'add', end.cidr, 'dev', end.name], { timeoutMs: IP_TIMEOUT_MS });
      if (end.master) await run('ip', [...prefix, 'link', 'set', 'dev', end.name, 'master', end.master], { timeoutMs: IP_TIMEOUT_MS });
      await run('ip', [...prefix, 'link', 'set', 'dev', end.name, 'up'], { timeoutMs: IP_TIMEOUT_MS });
    }
    return { a: ea.name, b: eb.name };
  }

  /**
   * A bridge, up, inside one of this lab's namespaces (never the root one): a test "switch"
   * that veth ends join with `master`. It goes away with its namespace.
   */
  async bridge(ns: string, name: string): Promise<string> {
    checkNetns(ns);
    if (!this.namespaces.has(ns)) throw new InvalidArgumentError(`netns ${ns} was not made by this lab`, 'netns');
    checkIfname(name);
    await run('ip', ['-n', ns, 'link', 'add', 'name', name, 'type', 'bridge'], { timeoutMs: IP_TIMEOUT_MS });
    await run('ip', ['-n', ns, 'link', 'set', 'dev', name, 'up'], { timeoutMs: IP_TIMEOUT_MS });
    return name;
  }

  /** Runs `prog args...` inside `ns` and collects its output; kills it at the deadline. */
  exec(ns: string, prog: string, args: readonly string[] = [], options: { timeoutMs?: number } = {}): Promise<ExecResult> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const child = this.spawn(ns, prog, args);
    return new Promise((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      child.stdout?.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
      child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
      child.once('error', (err) => { clearTimeout(timer); reject(err); });
      child.once('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr, timedOut }); });
    });
  }

  /** Starts a long-running `prog args...` inside `ns`; cleanupAll() kills it if the test does not. */
  spawn(ns: string, prog: string, args: readonly string[] = []): ChildProcess {
    checkNetns(ns);
    if (typeof prog !== 'string' || prog === '') throw new InvalidArgumentError('program must be a non-empty string', 'prog');
    const child = spawn('ip', ['netns', 'exec', ns, prog, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.once('error', () => this.children.delete(child));
    return child;
  }

  /** Deletes one namespace (its veth ends go with it). */
  async destroy(ns: string): Promise<void> {
    checkNetns(ns);
    try {
      await run('ip', ['netns', 'del', ns], { timeoutMs: IP_TIMEOUT_MS });
    } catch (err) {
      if (!(err instanceof CommandError && /No such file or directory/.test(err.stderr))) throw err;
    }
    this.namespaces.delete(ns);
  }

  /** Kills every process and removes every namespace and root-side link this lab made. */
  async cleanupAll(): Promise<void> {
    const errors: unknown[] = [];
    await Promise.all([...this.children].map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(resolve, 5_000);
      child.once('exit', () => { clearTimeout(timer); resolve(); });
      child.kill('SIGKILL');
    })));
    this.children.clear();
    for (const name of [...this.rootLinks]) {
      try {
        await run('ip', ['link', 'del', 'dev', name], { timeoutMs: IP_TIMEOUT_MS });
      } catch (err) {
        // Deleting a namespace takes its veth peer along; a missing root end is the usual case.
        if (!(err instanceof CommandError && /Cannot find device|does not exist/.test(err.stderr))) errors.push(err);
      }
      this.rootLinks.delete(name);
    }
    for (const ns of [...this.namespaces]) {
      try { await this.destroy(ns); } catch (err) { errors.push(err); }
    }
    if (errors.length) throw new AggregateError(errors, `netns clean-up left ${errors.length} problem(s): ${errors.map((e) => (e as Error).message).join('; ')}`);
  }
}

/** Parses the round-trip time (ms) of the first reply in `ping` output. */
export function pingRttMs(output: string): number | undefined {
  const m = /time[=<]([\d.]+) ?ms/.exec(output);
  return m ? Number(m[1]) : undefined;
}
