// Child process of the embedded store's crash test: creates Networks through the embedded store
// as fast as it can (8 in flight) and prints each name once its create was acknowledged. The
// test kill -9s it mid-burst. TypeScript sources are compiled on require with @swc/core (a dev
// dependency already used by jest), so the child runs exactly the code under test.
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
  const store = await openStore({ backend: 'embedded', dataDir: process.argv[2] });
  let next = 0;
  const worker = async () => {
    for (;;) {
      const name = `crash-${next++}`;
      await store.create({ apiVersion: 'n0stack.io/v1alpha1', kind: 'Network', metadata: { name }, spec: { ipv4_cidr: '10.0.0.0/24' } });
      process.stdout.write(`${name}\n`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}
main().catch((err) => { process.stderr.write(`${err.stack}\n`); process.exit(1); });
