import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // overlay mounts and real builds: generous timeouts, files in parallel on the 2-core machines
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: 'forks',
  },
});
