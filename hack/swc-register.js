// A require hook that lets `node --require ./hack/swc-register.js file.ts` run TypeScript
// directly (child processes in integration tests, one-off scripts), compiling each .ts file with
// @swc/core to CommonJS like jest's transform does. Type errors are not checked here: that is
// `npx tsc --noEmit`'s job. ESM-only packages in node_modules (client-node 1.x) load through
// Node 20's require(esm) as they do in the built CLI.
'use strict';
const fs = require('node:fs');
const Module = require('node:module');
const { transformSync } = require('@swc/core');

function compile(source, filename) {
  return transformSync(source, {
    filename,
    sourceMaps: 'inline',
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
    module: { type: 'commonjs' },
  }).code;
}

Module._extensions['.ts'] = function loadTs(module, filename) {
  module._compile(compile(fs.readFileSync(filename, 'utf8'), filename), filename);
};

module.exports = { compile };
