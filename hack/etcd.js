#!/usr/bin/env node
// Starts or stops a throwaway etcd (Debian's etcd-server) on free loopback ports for the tests.
//   eval "$(node hack/etcd.js start)"   -> exports N0STACK_TEST_ETCD (client URL) and the pid/dir
//   node hack/etcd.js stop              -> kills it and removes its data dir
// Tests can also start their own with startEtcd() from api/store/testing/etcd.ts.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => { const { port } = server.address(); server.close(() => resolve(port)); });
  });
}

async function waitHealthy(url, deadline) {
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`etcd at ${url} did not become healthy`);
}

async function start() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-etcd-'));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const log = fs.openSync(path.join(dir, 'etcd.log'), 'a');
  const child = spawn('etcd', [
    '--name', 'test', '--data-dir', path.join(dir, 'data'),
    '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `test=${peer}`, '--initial-cluster-state', 'new',
    '--unsafe-no-fsync', // throwaway test data: durability of this etcd is not under test here
  ], { detached: true, stdio: ['ignore', log, log] });
  child.unref();
  await waitHealthy(client, Date.now() + 20000);
  process.stdout.write(`export N0STACK_TEST_ETCD=${client}\nexport N0STACK_TEST_ETCD_PID=${child.pid}\nexport N0STACK_TEST_ETCD_DIR=${dir}\n`);
}

function stop() {
  const pid = Number(process.env.N0STACK_TEST_ETCD_PID);
  const dir = process.env.N0STACK_TEST_ETCD_DIR;
  if (pid) { try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ } }
  if (dir && dir.startsWith(path.join(os.tmpdir(), 'n0stack-etcd-'))) fs.rmSync(dir, { recursive: true, force: true });
}

const cmd = process.argv[2];
if (cmd === 'start') start().catch((e) => { console.error(e.message); process.exit(1); });
else if (cmd === 'stop') stop();
else { console.error('usage: etcd.js start|stop'); process.exit(2); }
