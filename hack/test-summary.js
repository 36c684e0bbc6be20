#!/usr/bin/env node
// Prints one plain closing line over every tier's jest JSON report, e.g. "593 passed, 0 failed",
// because CI reads exactly that shape as the last line (jest's own "Tests: 433 passed, 433 total"
// is per tier and not one it reads; a "tests: " prefix was recorded as having run no test).
// Usage: node hack/test-summary.js REPORT.json [REPORT.json ...]  (missing files are tiers that did not run)
'use strict';
const fs = require('node:fs');

let passed = 0;
let failed = 0;
let skipped = 0;
let failedSuites = 0;
for (const file of process.argv.slice(2)) {
  if (!fs.existsSync(file)) continue;
  const report = JSON.parse(fs.readFileSync(file, 'utf8'));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + report.numTodoTests;
  // A suite that fails to load (syntax error, a throwing beforeAll) counts no failed test on its own.
  failedSuites += report.numRuntimeErrorTestSuites;
}
failed += failedSuites;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
