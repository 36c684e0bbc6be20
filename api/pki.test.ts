import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { certDetails, createCa, ensureAgentIdentity, ensureCertBundle, exportAgentBundle, issueClientCert, issueServerCert, NODE_ORGANIZATION, peerNameMismatch, readTlsMaterial, verifyCert } from './pki';
import { InvalidArgumentError } from './errors';

describe('pki', () => {
  const ca = createCa({ commonName: 'test CA' });
  const otherCa = createCa({ commonName: 'other CA' });

  test('server certs verify against their CA and carry the SANs', () => {
    const server = issueServerCert(ca, { commonName: 'agent', dnsNames: ['localhost', 'node1.example'], ipAddresses: ['127.0.0.1', '10.0.0.5', '::1'] });
    expect(verifyCert(ca.certPem, server.certPem)).toBe(true);
    const d = certDetails(server.certPem);
    expect(d.commonName).toBe('agent');
    expect(d.dnsNames).toEqual(['localhost', 'node1.example']);
    expect(d.ipAddresses).toEqual(['127.0.0.1', '10.0.0.5', '::1']);
    expect(d.serverAuth).toBe(true);
    // Node's own X.509 parser (OpenSSL) agrees: what grpc will check.
    const x = new X509Certificate(server.certPem);
    expect(x.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(x.checkHost('localhost')).toBe('localhost');
    expect(x.checkIP('10.0.0.5')).toBe('10.0.0.5');
    expect(x.checkIP('10.0.0.6')).toBeUndefined();
    expect(x.checkPrivateKey(require('node:crypto').createPrivateKey(server.keyPem))).toBe(true);
  });

  test('client certs carry the identity as CN and verify', () => {
    const client = issueClientCert(ca, { commonName: 'controller' });
    expect(verifyCert(ca.certPem, client.certPem)).toBe(true);
    expect(certDetails(client.certPem)).toMatchObject({ commonName: 'controller', clientAuth: true, serverAuth: false });
  });

  test('a cert from another CA fails verification', () => {
    const foreign = issueClientCert(otherCa, { commonName: 'mallory' });
    expect(verifyCert(ca.certPem, foreign.certPem)).toBe(false);
    expect(verifyCert(otherCa.certPem, foreign.certPem)).toBe(true);
    expect(new X509Certificate(foreign.certPem).verify(new X509Certificate(ca.certPem).publicKey)).toBe(false);
  });

  test('expired certificates do not verify', () => {
    const client = issueClientCert(ca, { commonName: 'x', validDays: 1 });
    expect(verifyCert(ca.certPem, client.certPem, new Date(Date.now() + 3 * 24 * 3600 * 1000))).toBe(false);
  });

  test('bad SANs are refused with the field named', () => {
    expect(() => issueServerCert(ca, { commonName: 'a', ipAddresses: ['300.1.1.1'] })).toThrow(InvalidArgumentError);
    expect(() => issueServerCert(ca, { commonName: 'a', dnsNames: ['bad name'] })).toThrow(/dnsNames|dns name/);
    expect(() => issueServerCert(ca, { commonName: 'a' })).toThrow(/at least one/);
  });

  test('the CA and a server/client pair complete a real TLS handshake', async () => {
    const server = issueServerCert(ca, { commonName: 'agent', ipAddresses: ['127.0.0.1'] });
    const client = issueClientCert(ca, { commonName: 'controller' });
    const srv = tls.createServer({ cert: server.certPem, key: server.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (s) => {
      s.end(`hello ${(s.getPeerCertificate() as tls.PeerCertificate).subject.CN}`);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as { port: number }).port;
      const text = await new Promise<string>((resolve, reject) => {
        const c = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, cert: client.certPem, key: client.keyPem }, () => undefined);
        let out = '';
        c.on('data', (d) => (out += d));
        c.on('end', () => resolve(out));
        c.on('error', reject);
        setTimeout(() => reject(new Error('tls handshake timed out')), 5000).unref();
      });
      expect(text).toBe('hello controller');
    } finally {
      srv.close();
    }
  });

  describe('ensureCertBundle', () => {
    let dir: string;
    beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0pki-')); });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    test('writes the bundle with private keys at 0600 and is idempotent', () => {
      const opts = { servers: [{ name: 'agent', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }], clients: [{ name: 'controller' }] };
      const b = ensureCertBundle(dir, opts);
      for (const f of ['ca.crt', 'ca.key', 'agent.crt', 'agent.key', 'controller.crt', 'controller.key']) expect(fs.existsSync(path.join(dir, f))).toBe(true);
      for (const f of ['ca.key', 'agent.key', 'controller.key']) expect(fs.statSync(path.join(dir, f)).mode & 0o777).toBe(0o600);
      expect(b.certs.agent.cert).toBe(path.join(dir, 'agent.crt'));
      const before = Object.fromEntries(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]));
      ensureCertBundle(dir, opts);
      const after = Object.fromEntries(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]));
      expect(after).toEqual(before);
      const m = readTlsMaterial(dir, 'controller');
      expect(verifyCert(m.ca.toString(), m.cert.toString())).toBe(true);
    });

    test('a new SAN re-issues the server cert, keeping the CA and old SANs', () => {
      ensureCertBundle(dir, { servers: [{ name: 'agent', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }] });
      const caBefore = fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8');
      ensureCertBundle(dir, { servers: [{ name: 'agent', ipAddresses: ['10.1.2.3'] }] });
      expect(fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8')).toBe(caBefore);
      const d = certDetails(fs.readFileSync(path.join(dir, 'agent.crt'), 'utf8'));
      expect(d.ipAddresses.sort()).toEqual(['10.1.2.3', '127.0.0.1']);
      expect(d.dnsNames).toEqual(['localhost']);
      expect(verifyCert(caBefore, fs.readFileSync(path.join(dir, 'agent.crt'), 'utf8'))).toBe(true);
    });

    test('a leaf signed by another CA is replaced', () => {
      ensureCertBundle(dir, { clients: [{ name: 'controller' }] });
      const foreign = issueClientCert(otherCa, { commonName: 'controller' });
      fs.writeFileSync(path.join(dir, 'controller.crt'), foreign.certPem);
      fs.writeFileSync(path.join(dir, 'controller.key'), foreign.keyPem);
      ensureCertBundle(dir, { clients: [{ name: 'controller' }] });
      const ca = fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8');
      expect(verifyCert(ca, fs.readFileSync(path.join(dir, 'controller.crt'), 'utf8'))).toBe(true);
    });

    test('hostile names are refused before touching the disk', () => {
      expect(() => ensureCertBundle(dir, { clients: [{ name: '../evil' }] })).toThrow(InvalidArgumentError);
      expect(() => ensureCertBundle(dir, { clients: [{ name: 'ca' }] })).toThrow(/reserved/);
      expect(fs.readdirSync(dir)).toEqual([]);
    });
  });

  describe('node identities', () => {
    let dir: string;
    beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'n0stack-pki-node-')); });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    test('CN and SAN are the node name, O marks a node, and it serves and authenticates', () => {
      const material = ensureAgentIdentity(dir, 'host2', ['10.0.0.2']);
      const d = certDetails(material.cert.toString());
      expect(d).toMatchObject({ commonName: 'host2', organization: NODE_ORGANIZATION, dnsNames: ['host2'], ipAddresses: ['10.0.0.2'], serverAuth: true, clientAuth: true });
      expect(verifyCert(material.ca.toString(), material.cert.toString())).toBe(true);
      // A node name that is no DNS name (the seed allows `_`) is in the CN only.
      expect(certDetails(ensureAgentIdentity(dir, 'debug_ipv6', ['10.0.0.3']).cert.toString()).dnsNames).toEqual([]);
    });

    test('an old agent certificate that names localhost is re-issued for the node, without the old names', () => {
      ensureCertBundle(dir, { servers: [{ name: 'agent-host2', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }] });
      const d = certDetails(ensureAgentIdentity(dir, 'host2', ['10.0.0.2']).cert.toString());
      expect(d.commonName).toBe('host2');
      expect(d.dnsNames).toEqual(['host2']);
      expect(d.ipAddresses).toEqual(['10.0.0.2']);
    });

    test('exportAgentBundle writes what the agent\'s --pki-dir holds, the key private', () => {
      ensureAgentIdentity(dir, 'host2', ['10.0.0.2']);
      const out = path.join(dir, 'out');
      exportAgentBundle(dir, 'host2', out);
      expect(fs.readdirSync(out).sort()).toEqual(['agent.crt', 'agent.key', 'ca.crt']);
      expect(fs.statSync(path.join(out, 'agent.key')).mode & 0o777).toBe(0o600);
      expect(readTlsMaterial(out, 'agent').cert.toString()).toBe(fs.readFileSync(path.join(dir, 'agent-host2.crt'), 'utf8'));
    });

    test('peerNameMismatch accepts the node by CN or DNS SAN and describes anyone else', () => {
      expect(peerNameMismatch('host2', { subject: { CN: 'host2' } })).toBeUndefined();
      expect(peerNameMismatch('host2', { subject: { CN: 'x' }, subjectaltname: 'DNS:host2, IP Address:10.0.0.2' })).toBeUndefined();
      expect(peerNameMismatch('host2', { subject: { CN: 'host3' }, subjectaltname: 'DNS:host3' })).toBe('CN "host3", DNS host3');
      // The IP SAN is no identity: an agent is who its certificate names, not where it listens.
      expect(peerNameMismatch('10.0.0.2', { subject: { CN: 'host3' }, subjectaltname: 'IP Address:10.0.0.2' })).toBe('CN "host3"');
    });
  });
});
