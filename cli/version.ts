// The one place the version is read from package.json (works from sources and from dist/).
import * as fs from 'node:fs';
import * as path from 'node:path';

function findPackageJson(): string {
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (fs.existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('package.json not found');
    dir = parent;
  }
}

export const VERSION: string = JSON.parse(fs.readFileSync(findPackageJson(), 'utf8')).version;
