// Builds the AF_PACKET addon (addon/, binding.gyp) at install time, on Linux only.
//
// Why a script and not npm's default `node-gyp rebuild`: rebuild deletes build/ first,
// and the WebAssembly core lives in build/ too, so this runs configure + build (which
// keep what is there). And a failed native build must not fail the install: netpd
// still works on capture files, and opening a live source then says why it cannot
// (ENOTSUP) and how to rebuild. The failure is printed loudly here.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

if (process.platform !== 'linux') {
  console.warn(`netpd: live capture needs Linux (AF_PACKET); skipping the native addon on ${process.platform}`);
  process.exit(0);
}

// npm hands its bundled node-gyp to install scripts; otherwise look beside npm, then on PATH.
const candidates = [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter((p) => p && existsSync(p));
const gyp = candidates.length > 0 ? [process.execPath, candidates[0]] : ['node-gyp'];

for (const step of ['configure', 'build']) {
  const r = spawnSync(gyp[0], [...gyp.slice(1), step], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.warn(`\nnetpd: WARNING: building the AF_PACKET addon failed at "node-gyp ${step}" (${r.error?.message ?? `exit ${r.status}`}).`);
    console.warn('netpd: capture files work; live capture (-i, AfPacketSource) will raise ENOTSUP.');
    console.warn('netpd: it needs python3, make and a C++17 compiler; fix that and run "npm rebuild netpd".');
    process.exit(0);
  }
}
