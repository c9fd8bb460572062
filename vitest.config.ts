import { defineConfig } from 'vitest/config';

// Tests that put traffic on veth pairs share the kernel's per-CPU backlog and the two
// cores with whatever else runs: they run last, one file at a time, so a flood in one
// (or a CPU-heavy suite beside it) cannot cost another its packets.
const LIVE = ['test/afpacket-*.test.ts', 'test/netns.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'core',
          include: ['test/**/*.test.ts'],
          exclude: LIVE,
          // Two cores: two workers keep CPU-heavy suites from starving each other.
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'live',
          include: LIVE,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
