// Builds the web UI into dist/web: one JS and one CSS bundle (xterm.js included, nothing from a
// CDN) with content hashes in their names, and index.html pointing at them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(here, '..', 'dist', 'web');
fs.rmSync(out, { recursive: true, force: true });
const result = await esbuild.build({
  entryPoints: [path.join(here, 'src', 'main.ts')],
  bundle: true, minify: true, sourcemap: true, format: 'esm', target: 'es2022',
  outdir: path.join(out, 'assets'), entryNames: 'app-[hash]', chunkNames: 'chunk-[hash]', splitting: true, metafile: true, logLevel: 'warning',
});
const outputs = Object.keys(result.metafile.outputs).map((f) => path.relative(out, path.resolve(f)));
const entry = Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint);
const js = path.relative(out, path.resolve(entry[0]));
const css = path.relative(out, path.resolve(entry[1].cssBundle));
const html = fs.readFileSync(path.join(here, 'index.template.html'), 'utf8').replace('%CSS%', `/${css}`).replace('%JS%', `/${js}`);
fs.writeFileSync(path.join(out, 'index.html'), html);
const size = outputs.filter((f) => !f.endsWith('.map')).map((f) => `${f} ${(fs.statSync(path.join(out, f)).size / 1024).toFixed(0)} KiB`);
console.log(`web UI: ${size.join(', ')}`);
