// Child process of the embedded store's lock test: opens the embedded store on argv[2] and holds
// it until its stdin closes (then closes it cleanly) or it is killed. Prints "ready" once open;
// on a failure to open prints the error's message on stderr and exits 3. TypeScript sources are
// compiled on require with @swc/core, as in crash-writer.js, so it runs the code under test.
'use strict';
const fs = require('node:fs');
const swc = require('@swc/core');

require.extensions['.ts'] = (module, filename) => {
  const { code } = swc.transformSync(fs.readFileSync(filename, 'utf8'), {
    filename,
    jsc: { target: 'es2022', parser: { syntax: 'typescript' } },
    module: { type: 'commonjs' },
  });
  module._compile(code, filename);
};

const { openStore } = require('../index.ts');

async function main() {
  let store;
  try {
    store = await openStore({ backend: 'embedded', dataDir: process.argv[2] });
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(3);
  }
  process.stdout.write('ready\n');
  process.stdin.resume();
  process.stdin.on('end', () => { store.close().then(() => process.exit(0)); });
}
main().catch((err) => { process.stderr.write(`${err.stack}\n`); process.exit(1); });
