// Bundles the compiled CLI (dist/src/cli/main.js) into one ES module, dist/strata.mjs, which
// bin/strata.js runs. Node 20 pays per module loaded (about 130 of them: strata's and yargs'); one
// module starts a command about 0.1 s sooner, which is most of what a fully cached rebuild costs.
// Worker threads (the gzip pool) still load dist/src/layer/pgzip-worker.js, and the native addon
// is found from the package root, so neither depends on where the bundle sits.
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/src/cli/main.js'],
  outfile: 'dist/strata.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
  // CommonJS dependencies (tar-stream, @balena/dockerignore) call require() for node's built-ins.
  banner: { js: "import { createRequire as strataCreateRequire } from 'node:module'; const require = strataCreateRequire(import.meta.url);" },
});
