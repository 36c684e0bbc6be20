#!/usr/bin/env node
// Writes the CEL rules of api/admission/rules.ts into crds/*.yaml as x-kubernetes-validations (see
// api/admission/crd-validations.ts) and copies the CRDs into charts/n0stack/crds/. `--check` exits 1
// when a CRD (or its chart copy) is not what the table says; api/admission/crd-validations.test.ts checks it too.
'use strict';
require('./swc-register.js');
const fs = require('node:fs');
const path = require('node:path');
const YAML = require('yaml');
const { renderCrdValidations } = require('../api/admission/crd-validations.ts');

const root = path.resolve(__dirname, '..');
const check = process.argv.includes('--check');
let stale = 0;
for (const file of fs.readdirSync(path.join(root, 'crds')).filter((f) => f.endsWith('.yaml')).sort()) {
  const src = path.join(root, 'crds', file);
  const chart = path.join(root, 'charts', 'n0stack', 'crds', file);
  const text = fs.readFileSync(src, 'utf8');
  const next = renderCrdValidations(text, YAML.parse(text).spec.names.kind);
  YAML.parse(next); // still YAML
  if (check) {
    if (next !== text || !fs.existsSync(chart) || fs.readFileSync(chart, 'utf8') !== next) { console.error(`${file}: stale, run node hack/gen-crd-validations.js`); stale++; }
    continue;
  }
  fs.writeFileSync(src, next);
  fs.writeFileSync(chart, next);
  console.log(`wrote crds/${file} and charts/n0stack/crds/${file}`);
}
if (stale) process.exit(1);
