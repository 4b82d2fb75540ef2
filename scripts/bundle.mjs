// Bundles the compiled CLI (dist/src/cli/main.js) into one ES module, dist/strata.mjs, which
// bin/strata.js runs. Node 20 pays per module loaded (about 130 of them: strata's and yargs'); one
// minified module starts a command about 0.15 s sooner, most of what a fully cached rebuild costs
// (dist/strata.mjs.map maps stack traces back: node --enable-source-maps).
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
  minify: true,
  keepNames: true, // error classes keep their names (messages and checks use them)
  logLevel: 'warning',
  // CommonJS dependencies (tar-stream, @balena/dockerignore) call require() for node's built-ins.
  banner: { js: "import { createRequire as strataCreateRequire } from 'node:module'; const require = strataCreateRequire(import.meta.url);" },
});
