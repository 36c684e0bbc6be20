// ssh's ProxyCommand in the e2e tests: `ip netns exec NS node tcp-relay.js %h %p` reaches a VM
// that only the host's network namespace can see, with stdin/stdout as the TCP stream.
const net = require('node:net');

const [host, port] = process.argv.slice(2);
const socket = net.connect(Number(port), host);
process.stdin.pipe(socket);
socket.pipe(process.stdout);
socket.on('error', (e) => { process.stderr.write(`tcp-relay: ${host}:${port}: ${e.message}\n`); process.exit(1); });
socket.on('close', () => process.exit(0));
