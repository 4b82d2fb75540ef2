// Registry credentials and the challenges that ask for them (Docker token auth spec, RFC 7235).
//
// Credentials come from --creds USER:PASS, else the first auth file that has an entry for the
// registry: $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json, ~/.docker/config.json (the `auths`
// map of `docker login` / `podman login`; credential helpers are not run).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DockerHub } from '../../image/reference.js';

export interface Credentials {
  username: string;
  password: string;
  /** where they came from, for error messages */
  origin: string;
}

export interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Map<string, string>;
}

export function parseCreds(creds: string): Credentials {
  const colon = creds.indexOf(':');
  if (colon <= 0) throw new Error('--creds must be USERNAME:PASSWORD');
  return { username: creds.slice(0, colon), password: creds.slice(colon + 1), origin: '--creds' };
}

export function authFiles(): string[] {
  const files: string[] = [];
  if (process.env.REGISTRY_AUTH_FILE) files.push(process.env.REGISTRY_AUTH_FILE);
  if (process.env.DOCKER_CONFIG) files.push(path.join(process.env.DOCKER_CONFIG, 'config.json'));
  files.push(path.join(process.env.HOME ?? os.homedir(), '.docker', 'config.json'));
  return files;
}

/** `docker login` keys entries by "host", "https://host" or, for Docker Hub, "https://index.docker.io/v1/". */
function registryOfKey(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, '');
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? DockerHub : host;
}

export function findCredentials(registry: string, creds?: string): Credentials | undefined {
  if (creds !== undefined) return parseCreds(creds);
  for (const file of authFiles()) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    let auths: Record<string, { auth?: string; username?: string; password?: string }>;
    try {
      auths = (JSON.parse(text) as { auths?: typeof auths }).auths ?? {};
    } catch (err) {
      throw new Error(`auth file ${file} is not valid JSON: ${(err as Error).message}`);
    }
    for (const [key, entry] of Object.entries(auths)) {
      if (registryOfKey(key) !== registry) continue;
      if (entry.auth) {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon <= 0) throw new Error(`auth file ${file}: the entry for ${key} is not base64 of USER:PASSWORD`);
        return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), origin: file };
      }
      if (entry.username && entry.password) return { username: entry.username, password: entry.password, origin: file };
    }
  }
  return undefined;
}

export const basicAuthorization = (c: Credentials): string => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;

/** The first Basic or Bearer challenge of a WWW-Authenticate header (auth-params may be quoted strings). */
export function parseChallenge(headerValue: string | undefined): Challenge | undefined {
  if (!headerValue) return undefined;
  const m = /^\s*(basic|bearer)\b\s*(.*)$/i.exec(headerValue);
  if (!m) return undefined;
  const params = new Map<string, string>();
  const paramPattern = /([a-zA-Z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/gy;
  for (let p = paramPattern.exec(m[2]!); p; p = paramPattern.exec(m[2]!)) {
    params.set(p[1]!.toLowerCase(), p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!);
  }
  return { scheme: m[1]!.toLowerCase() as Challenge['scheme'], params };
}
