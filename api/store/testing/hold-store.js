// Child process of the embedded store's lock test: opens the embedded store on argv[2] and holds
// it until its stdin closes (then closes it cleanly) or it is killed. Prints "ready" once open;
// on a failure to open prints the error's message on stderr and exits 3.
'use strict';
// TypeScript sources compile on require (hack/swc-register.js), so the child runs the code under test.
require('../../../hack/swc-register.js');

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
