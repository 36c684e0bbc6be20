// `npm run bench`: every benchmark in turn with its defaults, each in its own process (their
// figures must not share a heap or a CPU budget), stopping at the first that fails. To pass
// options, run one by one (npm run bench:density -- --vms 10000).
import { spawn } from 'node:child_process';
import * as path from 'node:path';

const BENCHMARKS = ['store', 'facade', 'density', 'disk', 'vm-latency'];

async function main(): Promise<void> {
  for (const name of BENCHMARKS) {
    process.stdout.write(`\n## ${name}\n\n`);
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(__dirname, `${name}.js`)], { stdio: 'inherit' });
      child.once('error', reject);
      child.once('exit', resolve);
    });
    if (code !== 0) throw new Error(`benchmark ${name} exited with ${code}`);
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
