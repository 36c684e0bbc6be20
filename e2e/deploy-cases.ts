// n0deploy on a real VM (issue [K]): run by e2e/seed-ssh.test.ts on the Debian guest the seed's
// files booted there, so the e2e tier boots that guest once. The built `n0ctl deploy` finds the VM
// through the facade (its NIC address and login_username), logs in with the seed key (ssh reaches
// the host's namespace through a ProxyCommand), and runs a bootstrap that writes a file as root and
// a deploy that copies a folder and proves the copy; then a second run, a changed bootstrap and a
// failing step.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CliRunner } from '../cli/testing/n0ctl';
import { loadDeployPlan } from '../cli/deploy/plan';
import { timing } from './images';

const BOOTSTRAP_LOG = '/var/lib/n0deploy-e2e/bootstrap.log';

export async function runDeployCases(o: { cli: CliRunner; dir: string; netns: string; key: string }): Promise<void> {
  const { cli, dir } = o;
  const started = Date.now();
  const relay = path.join(__dirname, 'tcp-relay.js');
  const sshArgs = ['-i', o.key, '-o', `ProxyCommand=ip netns exec ${o.netns} ${process.execPath} ${relay} %h %p`,
    '-o', `UserKnownHostsFile=${path.join(dir, 'known_hosts')}`, '-o', 'StrictHostKeyChecking=accept-new'];
  const project = path.join(dir, 'project');
  fs.mkdirSync(path.join(project, 'app', 'static'), { recursive: true });
  fs.writeFileSync(path.join(project, 'app', 'hello.sh'), 'echo "hello from $(hostname)"\n', { mode: 0o755 });
  fs.writeFileSync(path.join(project, 'app', 'static', 'data.bin'), Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256)));

  function writeN0deploy(bootstrapSteps: string[]): string {
    const file = path.join(project, 'n0deploy');
    fs.writeFileSync(file, [
      'BOOTSTRAP',
      // What a real bootstrap on a fresh VM does first: let cloud-init finish (its exit code tells of
      // warnings too; only the waiting matters here).
      'RUN cloud-init status --wait >/dev/null || true',
      `RUN mkdir -p ${path.dirname(BOOTSTRAP_LOG)} \\`,
      `  && echo "bootstrap by $(id -un)" >> ${BOOTSTRAP_LOG}`,
      ...bootstrapSteps,
      'DEPLOY',
      'COPY app/ /opt/app',
      'RUN sh /opt/app/hello.sh && sha256sum /opt/app/static/data.bin \\',
      `  && echo "bootstrap runs: $(wc -l < ${BOOTSTRAP_LOG})"`,
    ].join('\n'));
    return file;
  }

  // --wait on every run: cloud-init's late stages restart sshd on a slow (TCG) guest.
  const deploy = (file: string, ...extra: string[]) => cli.run(['deploy', '-f', file, ...sshArgs, '--wait', '2m', ...extra, 'vm', 'test-vm'], { timeoutMs: 10 * 60_000 });

  function expectExit(r: { code: number | null; stdout: string; stderr: string }, code: number): void {
    if (r.code !== code) throw new Error(`n0ctl deploy exited ${r.code}, not ${code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  }

  const dataHash = createHash('sha256').update(fs.readFileSync(path.join(project, 'app', 'static', 'data.bin'))).digest('hex');
  const file = writeN0deploy([]);
  const firstStarted = Date.now();
  // The address and n0user come from the facade; the bootstrap waits for cloud-init to finish.
  const first = await deploy(file, '--sudo', '--wait', '8m');
  timing('deploy', 'first deploy (bootstrap ran)', Date.now() - firstStarted);
  expect(first.stderr).not.toContain('n0ctl:');
  expectExit(first, 0);
  expect(first.stdout).toContain('bootstrap: runs, it never ran on this VM');
  expect(first.stdout).toContain('hello from test-vm\n');
  expect(first.stdout).toContain(`${dataHash}  /opt/app/static/data.bin\nbootstrap runs: 1\n`);
  expect(first.stdout).toMatch(/deployed to n0user@192\.168\.0\.1: 4 steps \(bootstrap ran\)/);
  // The record is on the VM, in n0user's home, with this file's bootstrap hash.
  const hash = loadDeployPlan(file).bootstrap!.hash;
  const record = path.join(project, 'record.n0deploy');
  fs.writeFileSync(record, 'DEPLOY\nRUN cat ~/.n0deploy/n0deploy.bootstrap; stat -c %U ~/.n0deploy/n0deploy.bootstrap; cat /var/lib/n0deploy-e2e/bootstrap.log\n');
  const shown = await deploy(record);
  expectExit(shown, 0);
  expect(shown.stdout).toContain(`${hash}\nn0user\nbootstrap by root\n`);

  const secondStarted = Date.now();
  const second = await deploy(file, '--sudo');
  timing('deploy', 'second deploy (bootstrap skipped)', Date.now() - secondStarted);
  expectExit(second, 0);
  expect(second.stdout).toContain('bootstrap: skipped, it ran before on this VM');
  expect(second.stdout).toContain('bootstrap runs: 1\n');

  const changed = writeN0deploy(['RUN echo "changed bootstrap" >> /var/lib/n0deploy-e2e/bootstrap.log']);
  const third = await deploy(changed, '--sudo');
  expectExit(third, 0);
  expect(third.stdout).toContain('bootstrap: runs, the section changed since the recorded');
  expect(third.stdout).toContain('bootstrap runs: 3\n');

  const failing = path.join(project, 'failing.n0deploy');
  fs.writeFileSync(failing, 'DEPLOY\nCOPY app /home/n0user/app\nRUN test -x /home/n0user/app/hello.sh && exit 42\nRUN echo never\n');
  const failed = await deploy(failing);
  expectExit(failed, 42);
  expect(failed.stderr).toContain('n0ctl: deploy to n0user@192.168.0.1 stopped: [deploy 2/3] RUN test -x /home/n0user/app/hello.sh && exit 42 (line 3) failed with exit code 42');
  expect(failed.stdout).not.toContain('never');
  timing('deploy', 'all cases', Date.now() - started);
}
