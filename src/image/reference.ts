// Image references as Docker normalises them (distribution/reference ParseNormalizedNamed):
//   alpine                      -> docker.io/library/alpine:latest
//   team/app:1                  -> docker.io/team/app:1
//   127.0.0.1:5000/base         -> 127.0.0.1:5000/base:latest
//   host/app:1@sha256:<hex>     -> pulled by the digest; the tag is kept only for display
// The first component is a registry when it has a '.' or a ':' or is "localhost", as in Docker.

import { parseDigest } from './manifest.js';
import type { Digest } from './types.js';

export const DockerHub = 'docker.io';

export interface Reference {
  /** "docker.io", "registry.example.com", "127.0.0.1:5000" */
  registry: string;
  /** path inside the registry: "library/alpine", "team/base" */
  repository: string;
  /** "latest" when neither a tag nor a digest was given */
  tag?: string;
  digest?: Digest;
}

const DomainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DomainPattern = new RegExp(`^(?:${DomainComponent}(?:\\.${DomainComponent})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?$`);
const PathComponent = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TagPattern = /^\w[\w.-]{0,127}$/;

export class ReferenceError extends Error {}

export function parseReference(text: string): Reference {
  const fail = (why: string): never => {
    throw new ReferenceError(`invalid image reference ${JSON.stringify(text)}: ${why}`);
  };
  let rest = text;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      parseDigest(digest);
    } catch {
      fail(`bad digest ${JSON.stringify(digest)}`);
    }
  }
  // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TagPattern.test(tag)) fail(`bad tag ${JSON.stringify(tag)}`);
  }
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  const isRegistry = first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase());
  let registry = isRegistry ? first : DockerHub;
  let repository = isRegistry ? rest.slice(slash + 1) : rest;
  if (isRegistry && !DomainPattern.test(registry)) fail(`bad registry ${JSON.stringify(registry)}`);
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = DockerHub;
  if (repository === '' || !repository.split('/').every((c) => PathComponent.test(c))) {
    fail(repository !== repository.toLowerCase() ? 'repository names must be lowercase' : `bad repository ${JSON.stringify(repository)}`);
  }
  if (registry === DockerHub && !repository.includes('/')) repository = `library/${repository}`;
  if (`${registry}/${repository}`.length > 255) fail('name longer than 255 characters');
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository, tag, digest };
}

/** "docker.io/library/alpine:latest", "host:5000/app@sha256:..." (the canonical form). */
export function formatReference(ref: Reference): string {
  return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** The repository as Docker shows it: "alpine", "team/app", "127.0.0.1:5000/base". */
export function familiarRepository(ref: Pick<Reference, 'registry' | 'repository'>): string {
  if (ref.registry !== DockerHub) return `${ref.registry}/${ref.repository}`;
  return ref.repository.startsWith('library/') && ref.repository.split('/').length === 2
    ? ref.repository.slice('library/'.length)
    : ref.repository;
}

/**
 * The name the local store keys a tagged reference by: the familiar repository and the tag
 * ("alpine:latest"), so `FROM alpine`, `FROM docker.io/library/alpine` and `-t alpine` all meet.
 * Undefined for references by digest only.
 */
export function storeName(ref: Reference): string | undefined {
  return ref.tag === undefined ? undefined : `${familiarRepository(ref)}:${ref.tag}`;
}

/** The host to contact for a registry: Docker Hub's API lives on registry-1.docker.io. */
export function registryHost(registry: string): string {
  return registry === DockerHub ? 'registry-1.docker.io' : registry;
}

/** An image outside registries and the store, named as buildah and skopeo name them. */
export interface TransportReference {
  transport: 'oci-archive' | 'oci' | 'docker-archive';
  path: string;
  /** oci: the ref name in index.json; docker-archive: one of the RepoTags */
  tag?: string;
}

const Transports = ['oci-archive', 'oci', 'docker-archive'] as const;

/** `oci-archive:PATH[:TAG]`, `oci:DIR[:TAG]`, `docker-archive:PATH[:NAME]`; undefined for anything else.
 * As in containers/image, the path ends at the first ':' after the prefix. */
export function parseTransportReference(text: string): TransportReference | undefined {
  const colon = text.indexOf(':');
  const transport = Transports.find((t) => t === text.slice(0, colon));
  if (!transport) return undefined;
  const rest = text.slice(colon + 1);
  const sep = rest.indexOf(':');
  const pathPart = sep < 0 ? rest : rest.slice(0, sep);
  const tag = sep < 0 ? undefined : rest.slice(sep + 1);
  if (pathPart === '') throw new ReferenceError(`${text}: ${transport}: needs a path`);
  if (tag === '') throw new ReferenceError(`${text}: empty name after the path`);
  return { transport, path: pathPart, tag };
}

/** A registry reference, with or without skopeo's `docker://` prefix. */
export function parseRegistryReference(text: string): Reference {
  return parseReference(text.startsWith('docker://') ? text.slice('docker://'.length) : text);
}
