// Commits DIR as a layer blob to OUT in a process of its own, so that its peak RSS is the commit's
// alone. Prints one JSON line: the commit's wall time and the process's RSS before and at peak.
import { commitLayer } from '../src/layer/commit.js';
import { readUpperdir } from '../src/layer/diff.js';

const [dir, out] = process.argv.slice(2);
if (!dir || !out) {
  console.error('usage: commit-child.js DIR OUT');
  process.exit(2);
}
const baselineRssBytes = process.memoryUsage().rss;
const started = process.hrtime.bigint();
const layer = await commitLayer(readUpperdir(dir), out, { level: 6 });
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(JSON.stringify({
  seconds,
  baselineRssBytes,
  peakRssBytes: process.resourceUsage().maxRSS * 1024, // maxRSS is in KiB
  tarBytes: layer.tarSize,
  blobBytes: layer.size,
}));
