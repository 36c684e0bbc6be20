// From a parsed n0deploy file to what will be sent: every COPY source checked on disk (it exists,
// is a file or a folder, and does not lead out of the file's folder through a symlink) before
// anything connects, and the bootstrap section's hash, which covers the content it copies, so an
// edited bootstrap script counts as a changed bootstrap.
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { N0deployError, parseN0deploy, type CopyStep, type N0deployFile, type Section, type Step } from './parse';

export interface PlannedCopy extends CopyStep { absolute: string; kind: 'file' | 'folder'; mode: number }
export type PlannedStep = Exclude<Step, CopyStep> | PlannedCopy;
export interface PlannedSection { name: Section['name']; steps: PlannedStep[] }

export interface DeployPlan {
  file: string;
  bootstrap?: PlannedSection & { hash: string };
  deploy: PlannedSection;
}

const inside = (root: string, p: string): boolean => p === root || p.startsWith(root.endsWith('/') ? root : `${root}/`);

function planSection(section: Section, baseDir: string, realBase: string, problems: string[]): PlannedSection {
  const steps = section.steps.map((step): PlannedStep => {
    if (step.instruction !== 'COPY') return step;
    const absolute = path.join(baseDir, step.source);
    let stat: fs.Stats;
    let real: string;
    try {
      real = fs.realpathSync(absolute);
      stat = fs.statSync(real);
    } catch {
      problems.push(`line ${step.line}: COPY source ${step.source} does not exist in ${baseDir}`);
      return { ...step, absolute, kind: 'file', mode: 0 };
    }
    if (!inside(realBase, real)) problems.push(`line ${step.line}: COPY source ${step.source} leads outside the file's folder through a symlink (to ${real})`);
    else if (!stat.isFile() && !stat.isDirectory()) problems.push(`line ${step.line}: COPY source ${step.source} is neither a file nor a folder`);
    return { ...step, absolute: real, kind: stat.isDirectory() ? 'folder' : 'file', mode: stat.mode & 0o7777 };
  });
  return { name: section.name, steps };
}

function hashFile(hash: Hash, file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 16);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) hash.update(buf.subarray(0, n));
  } finally { fs.closeSync(fd); }
}

/** What a copy sends, in a stable order: names, kinds, modes, bytes and link targets. */
function hashTree(hash: Hash, root: string, rel = ''): void {
  const full = rel ? path.join(root, rel) : root;
  const st = fs.lstatSync(full);
  const head = `${rel || '.'}\0${(st.mode & 0o7777).toString(8)}\0`;
  if (st.isSymbolicLink()) hash.update(`L${head}${fs.readlinkSync(full)}\0`);
  else if (st.isFile()) { hash.update(`F${head}${st.size}\0`); hashFile(hash, full); }
  else if (st.isDirectory()) {
    hash.update(`D${head}`);
    for (const name of fs.readdirSync(full).sort()) hashTree(hash, root, rel ? path.join(rel, name) : name);
  } else hash.update(`O${head}`);
}

/** sha256 of the section's steps in order, with the content of what its COPY steps send. */
export function sectionHash(section: PlannedSection): string {
  const hash = createHash('sha256').update('n0deploy bootstrap v1\0');
  for (const step of section.steps) {
    if (step.instruction === 'RUN') hash.update(`RUN\0${step.command}\0`);
    else { hash.update(`COPY\0${step.source}\0${step.destination}\0`); hashTree(hash, step.absolute); }
  }
  return `sha256:${hash.digest('hex')}`;
}

export function planDeploy(parsed: N0deployFile, file: string): DeployPlan {
  const baseDir = path.dirname(path.resolve(file));
  const realBase = fs.realpathSync(baseDir);
  const problems: string[] = [];
  const bootstrap = parsed.bootstrap ? planSection(parsed.bootstrap, baseDir, realBase, problems) : undefined;
  const deploy = planSection(parsed.deploy, baseDir, realBase, problems);
  if (problems.length) throw new N0deployError(file, problems);
  return { file, deploy, bootstrap: bootstrap ? { ...bootstrap, hash: sectionHash(bootstrap) } : undefined };
}

/** Reads, parses and checks an n0deploy file; every problem is an N0deployError naming lines. */
export function loadDeployPlan(file: string): DeployPlan {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch (e) {
    throw new N0deployError(file, [(e as Error).message]);
  }
  return planDeploy(parseN0deploy(text, { file, baseDir: path.dirname(path.resolve(file)) }), file);
}
