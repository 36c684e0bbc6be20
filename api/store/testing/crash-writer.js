// Child process of the embedded store's crash test: creates Networks through the embedded store
// as fast as it can (8 in flight) and prints each name once its create was acknowledged. The
// test kill -9s it mid-burst.
'use strict';
// TypeScript sources compile on require (hack/swc-register.js), so the child runs the code under test.
require('../../../hack/swc-register.js');

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
