import type { Argv } from 'yargs';
import { pullImage, resolveBaseImage } from '../../build/base-image.js';
import { hostPlatform, UsageError } from '../../build/session.js';
import { parseRegistryReference, parseTransportReference } from '../../image/reference.js';
import type { Platform } from '../../image/types.js';
import { makeRenderer, type ProgressMode } from '../../progress/render.js';
import { Store } from '../../store/store.js';
import type { RegistryOptions } from '../../transport/registry/client.js';
import { list, requirePositional, rootOption } from '../common.js';

/** The flags every command that talks to registries takes. */
export const registryFlagOptions = {
  creds: { type: 'string', describe: 'USERNAME:PASSWORD for the registry (default: $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json, ~/.docker/config.json)' },
  'insecure-registry': { type: 'string', describe: 'HOST[:PORT] to reach over plain HTTP or unverified TLS (repeatable; loopback hosts may use HTTP anyway)' },
  'cert-dir': { type: 'string', describe: 'directory of CA certificates (*.crt) and a client NAME.cert/NAME.key (default /etc/docker/certs.d/HOST)' },
} as const;

export const withRegistryFlags = <T>(c: Argv<T>) => c
  .option('creds', registryFlagOptions.creds)
  .option('insecure-registry', registryFlagOptions['insecure-registry'])
  .option('cert-dir', registryFlagOptions['cert-dir']);

export const registryOptionsOf = (argv: { creds?: string; 'insecure-registry'?: string | string[]; 'cert-dir'?: string }): RegistryOptions => ({
  creds: argv.creds,
  insecureRegistries: list(argv['insecure-registry']),
  certDir: argv['cert-dir'],
});

export const progressFlags = <T>(c: Argv<T>) => c
  .option('progress', { choices: ['auto', 'plain', 'tty', 'rawjson'] as const, default: 'auto' as const })
  .option('quiet', { alias: 'q', type: 'boolean', describe: 'print only the image digest' });

export const rendererOf = (argv: { progress: string; quiet?: boolean }) => (argv.quiet ? () => {} : makeRenderer(argv.progress as ProgressMode));

/** `linux/arm64/v8` */
export function parsePlatform(text: string | undefined): Platform {
  if (text === undefined) return hostPlatform();
  const [os, architecture, variant, extra] = text.split('/');
  if (!os || !architecture || extra !== undefined) throw new UsageError(`--platform ${text}: expected OS/ARCH[/VARIANT]`);
  return variant ? { os, architecture, variant } : { os, architecture };
}

export const pullCommand = (y: Argv): Argv => y.command(
  'pull [ref]',
  'copy an image from a registry (or oci-archive:, oci:, docker-archive:) into the local store',
  (c) => progressFlags(withRegistryFlags(c
    .positional('ref', { type: 'string', describe: 'NAME[:TAG][@DIGEST], e.g. alpine or 127.0.0.1:5000/team/base:1' })
    .check(requirePositional('ref'))
    .option('platform', { type: 'string', describe: 'OS/ARCH[/VARIANT] to take from a multi-platform index (default: the host\'s)' })
    .option('root', rootOption))),
  async (argv) => {
    const store = await Store.open(argv.root);
    const opts = { ...registryOptionsOf(argv), platform: parsePlatform(argv.platform), progress: rendererOf(argv) };
    const digest = parseTransportReference(argv.ref!)
      ? (await resolveBaseImage(store, argv.ref!, opts)).manifestDigest
      : await pullImage(store, parseRegistryReference(argv.ref!), opts);
    process.stdout.write(`${digest}\n`);
  },
);
