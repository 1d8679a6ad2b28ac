import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Real mediasoup workers, PostgreSQL and Chromium: startup can take a while on CI.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Child processes rather than threads: mediasoup spawns worker processes and
    // PGlite holds large WASM heaps, both of which are cleaner to tear down per file.
    pool: 'forks',
    // Files still run in parallel, but at most two at once: CI machines have 2 cores
    // and each test file may start its own mediasoup workers and databases.
    maxWorkers: 2,
  },
});
