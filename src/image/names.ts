// Image names as archives record them ("localhost/seed:1"): a repository and a tag, "latest" when none.

export interface ImageName {
  repository: string;
  tag: string;
  /** `repository:tag` */
  full: string;
}

// The Docker reference grammar (distribution/reference), without digests.
const DomainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const Domain = `${DomainComponent}(?:\\.${DomainComponent})*(?::[0-9]+)?`;
const PathComponent = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const Repository = new RegExp(`^(?:${Domain}/)?${PathComponent}(?:/${PathComponent})*$`);
const Tag = /^\w[\w.-]{0,127}$/;

export function parseImageName(name: string): ImageName {
  if (name.includes('@')) throw new Error(`image name ${JSON.stringify(name)}: digest references cannot name an image`);
  // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
  const colon = name.lastIndexOf(':');
  const hasTag = colon > name.lastIndexOf('/');
  const repository = hasTag ? name.slice(0, colon) : name;
  const tag = hasTag ? name.slice(colon + 1) : 'latest';
  if (!Repository.test(repository) || repository.length > 255) {
    throw new Error(`invalid image name ${JSON.stringify(name)}`);
  }
  if (!Tag.test(tag)) throw new Error(`invalid tag in image name ${JSON.stringify(name)}`);
  return { repository, tag, full: `${repository}:${tag}` };
}
