// Builds the AF_PACKET addon (addon/, binding.gyp) on Linux, from source, with node-gyp.
//
// Installing netpd from npm needs no compiler: the tarball carries an N-API prebuild in
// prebuilds/, which `npm pack` makes by running this script with --prebuild (prebuildify
// --napi: one binary for every Node version with N-API 8). Without --prebuild it builds into
// build/Release/, which node-gyp-build prefers to the prebuild: the repository's `npm install`
// runs it from `prepare` with --optional (a failed build must not fail the install, since
// capture files work without the addon), and a user whose system no prebuild fits runs
// `npm run build:addon` in the installed package, as AfPacketSource.open's ENOTSUP says
// (there a failure exits non-zero). That build is configure + build rather than `rebuild`,
// so a developer's second build is incremental.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const prebuild = process.argv.includes('--prebuild');
const optional = process.argv.includes('--optional');

if (process.platform !== 'linux') {
  console.warn(`netpd: live capture needs Linux (AF_PACKET); skipping the native addon on ${process.platform}`);
  process.exit(prebuild ? 1 : 0);
}

// npm hands its bundled node-gyp to scripts; otherwise look beside npm, then on PATH.
const candidates = [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter((p) => p && existsSync(p));
const gyp = candidates.length > 0 ? [process.execPath, candidates[0]] : ['node-gyp'];

// node-gyp downloads the running Node's headers from nodejs.org unless told where they are.
// A Node from a distribution package or from the official tarball has them under
// <prefix>/include/node, and the npm registry's `node` package under its node-<os>-<arch>
// dependency: use those when they are this Node's, so the build needs no network.
const env = { ...process.env };
if (!env.npm_config_nodedir) {
  const prefix = join(dirname(process.execPath), '..');
  for (const dir of [prefix, join(prefix, 'node_modules', `node-${process.platform}-${process.arch}`)]) {
    let h;
    try {
      h = readFileSync(join(dir, 'include', 'node', 'node_version.h'), 'utf8');
    } catch {
      continue;
    }
    const part = (name) => new RegExp(`#define NODE_${name}_VERSION (\\d+)`).exec(h)?.[1];
    if ([part('MAJOR'), part('MINOR'), part('PATCH')].join('.') === process.versions.node) {
      env.npm_config_nodedir = dir;
      break;
    }
  }
}

if (prebuild) {
  // prebuilds/linux-x64/netpd.glibc.node, stripped; prebuildify runs `node-gyp rebuild`.
  // Its chatter goes to stderr, so `npm pack --json` keeps a clean stdout.
  if (candidates.length > 0) env.PREBUILD_NODE_GYP = candidates[0];
  const bin = createRequire(import.meta.url).resolve('prebuildify/bin.js');
  const r = spawnSync(process.execPath, [bin, '--napi', '--strip', '--tag-libc'], { stdio: ['inherit', 2, 2], env });
  process.exit(r.status ?? 1);
}

for (const step of ['configure', 'build']) {
  const r = spawnSync(gyp[0], [...gyp.slice(1), step], { stdio: 'inherit', env });
  if (r.status !== 0) {
    console.warn(`\nnetpd: ${optional ? 'WARNING: ' : ''}building the AF_PACKET addon failed at "node-gyp ${step}" (${r.error?.message ?? `exit ${r.status}`}).`);
    console.warn('netpd: it needs python3, make and a C++17 compiler; fix that and run "npm run build:addon" again.');
    if (optional) console.warn('netpd: capture files work; live capture (-i, AfPacketSource) will raise ENOTSUP.');
    process.exit(optional ? 0 : 1);
  }
}
