// Throwaway Debian docker-registry (distribution 2.8) instances for tests: bound to 127.0.0.1 on a
// free random port (never 5000, the peers' script uses it), plain HTTP or TLS with a test CA made
// here with openssl, optionally htpasswd auth. stop() kills the process and removes its directory.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { tempDir } from './helpers.js';

export interface Registry {
  /** "127.0.0.1:PORT" */
  host: string;
  dir: string;
  /** the registry's storage root (docker/registry/v2/...) */
  dataDir: string;
  /** directory with the test CA as ca.crt (certs.d layout), when TLS */
  certDir?: string;
  stop(): Promise<void>;
}

export interface RegistryConfig {
  tls?: boolean;
  /** htpasswd users (bcrypt, as distribution requires) */
  users?: Record<string, string>;
  /** Bearer token auth: the registry trusts tokens signed by the key of `rootCertBundle` */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
}

async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    if (port !== 5000) return port;
  }
}

/** A CA and a server certificate for 127.0.0.1 and localhost signed by it. */
function makeCertificates(dir: string): { certDir: string; cert: string; key: string } {
  const certDir = path.join(dir, 'certs.d');
  fs.mkdirSync(certDir);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=strata test CA', '-keyout', 'ca.key', '-out', 'ca.crt');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr');
  fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'ext.cnf', '-out', 'server.crt');
  fs.copyFileSync(path.join(dir, 'ca.crt'), path.join(certDir, 'ca.crt'));
  return { certDir, cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key') };
}

export async function startRegistry(config: RegistryConfig = {}): Promise<Registry> {
  const dir = tempDir('registry');
  const dataDir = path.join(dir, 'data');
  fs.mkdirSync(dataDir);
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const tls = config.tls ? makeCertificates(dir) : undefined;
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${dataDir}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${host}`,
  ];
  if (tls) lines.push('  tls:', `    certificate: ${tls.cert}`, `    key: ${tls.key}`);
  if (config.users) {
    const htpasswd = path.join(dir, 'htpasswd');
    fs.writeFileSync(htpasswd, '');
    for (const [user, password] of Object.entries(config.users)) {
      const line = execFileSync('htpasswd', ['-nbB', user, password]).toString().trim();
      fs.appendFileSync(htpasswd, `${line}\n`);
    }
    lines.push('auth:', '  htpasswd:', '    realm: strata-test', `    path: ${htpasswd}`);
  }
  if (config.token) {
    const t = config.token;
    lines.push('auth:', '  token:', `    realm: ${t.realm}`, `    service: ${t.service}`, `    issuer: ${t.issuer}`, `    rootcertbundle: ${t.rootCertBundle}`);
  }
  const configFile = path.join(dir, 'config.yml');
  fs.writeFileSync(configFile, `${lines.join('\n')}\n`);
  const log = fs.openSync(path.join(dir, 'registry.log'), 'w');
  const child: ChildProcess = spawn('docker-registry', ['serve', configFile], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  // Up when the port accepts connections.
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) break;
    if (i > 100 || child.exitCode !== null) {
      const text = fs.readFileSync(path.join(dir, 'registry.log'), 'utf8');
      await stop();
      throw new Error(`docker-registry did not start: ${text}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { host, dir, dataDir, certDir: tls?.certDir, stop };
}

/** The file the registry keeps a blob's bytes in. */
export function registryBlobFile(registry: Registry, digest: string): string {
  const hex = digest.replace(/^sha256:/, '');
  return path.join(registry.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
}
