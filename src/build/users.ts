// Resolves `--chown` user and group names through the image's /etc/passwd and /etc/group, read
// from the layered view (never the host's).
import fs from 'node:fs';
import type { LayeredTree } from '../overlay/tree.js';

export class UserLookupError extends Error {}

function readTable(tree: LayeredTree, file: string): string[][] {
  const node = tree.lookup(tree.resolve(file));
  if (!node || node.type !== 'file') return [];
  return fs.readFileSync(node.abs, 'utf8').split('\n').filter(Boolean).map((line) => line.split(':'));
}

const numeric = (s: string): number | undefined => (/^\d+$/.test(s) ? Number(s) : undefined);

/** `user[:group]` to numeric ids, as COPY --chown does: a missing group defaults to the user's id. */
export function resolveChown(spec: string, tree: LayeredTree): { uid: number; gid: number } {
  const [user, group] = spec.split(':', 2);
  let uid = numeric(user);
  let primaryGid: number | undefined;
  if (uid === undefined) {
    const entry = readTable(tree, '/etc/passwd').find((f) => f[0] === user);
    if (!entry) throw new UserLookupError(`unable to find user ${user}: no matching entries in passwd file`);
    uid = Number(entry[2]);
    primaryGid = Number(entry[3]);
  }
  if (group === undefined || group === '') return { uid, gid: group === undefined ? (primaryGid ?? uid) : uid };
  let gid = numeric(group);
  if (gid === undefined) {
    const entry = readTable(tree, '/etc/group').find((f) => f[0] === group);
    if (!entry) throw new UserLookupError(`unable to find group ${group}: no matching entries in group file`);
    gid = Number(entry[2]);
  }
  return { uid, gid };
}
