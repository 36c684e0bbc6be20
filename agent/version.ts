// The agent's version is the package's: it lands in Node annotations and observe(), so operators
// see which nodes still run an old agent.
import * as fs from 'node:fs';
import * as path from 'node:path';

let cached: string | undefined;

export function agentVersion(): string {
  if (cached) return cached;
  // Works from both the TypeScript sources (agent/) and the build (dist/agent/).
  for (const candidate of [path.resolve(__dirname, '..', 'package.json'), path.resolve(__dirname, '..', '..', 'package.json')]) {
    try {
      const pkg = JSON.parse(fs.readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'n0stack' && pkg.version) return (cached = pkg.version);
    } catch {
      // try the next candidate
    }
  }
  return (cached = '0.0.0-unknown');
}
