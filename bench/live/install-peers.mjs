// Installs the capture libraries netpd's live benchmark runs beside it (today node_pcap,
// `pcap` 3.1.0) into bench/live/peers/, apart from netpd's own dependencies: they are
// native addons that need a C++ toolchain and libpcap's headers, which netpd never does,
// and only the benchmark wants them. package-lock.json there pins what gets built.
//
//   node bench/live/install-peers.mjs [--force]
//
// Does nothing when the addon is already built and loads; exits 1 with the reason when
// it cannot be built. Also importable: ensurePeers() returns { ok, reason }.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const peers = fileURLToPath(new URL('./peers/', import.meta.url));
const pcapDir = join(peers, 'node_modules', 'pcap');
const binding = join(pcapDir, 'build', 'Release', 'pcap_binding.node');

const onPath = (name) => (process.env.PATH ?? '').split(delimiter).some((d) => {
  try {
    accessSync(join(d, name), constants.X_OK);
    return true;
  } catch {
    return false;
  }
});

/** Null when node_pcap is built for this Node and loads, else why not. */
function loadProblem() {
  if (!existsSync(binding)) return `${binding} is missing`;
  // In a child: a binding built for another Node ABI throws, and must not take us down.
  const r = spawnSync(process.execPath, ['-e', `const p = require(${JSON.stringify(pcapDir)}); console.log(p.lib_version)`], { encoding: 'utf8' });
  return r.status === 0 ? null : (r.stderr.trim().split('\n').find((l) => /Error/.test(l)) ?? r.stderr.trim());
}

const tail = (s, n = 25) => s.trim().split('\n').slice(-n).join('\n');

/**
 * Makes sure node_pcap is installed and built in bench/live/peers.
 * @param {{ force?: boolean, quiet?: boolean }} [opts]
 * @returns {{ ok: boolean, reason: string | null }}
 */
export function ensurePeers({ force = false, quiet = false } = {}) {
  const say = (msg) => { if (!quiet) console.log(`install-peers: ${msg}`); };
  if (!force && loadProblem() === null) {
    say('node_pcap already built');
    return { ok: true, reason: null };
  }
  // node-gyp's own errors for these are long and easy to misread; name them first.
  const missing = [];
  if (!existsSync('/usr/include/pcap/pcap.h') && !existsSync('/usr/include/pcap.h')) missing.push('libpcap-dev');
  for (const [tool, pkg] of [['g++', 'g++'], ['make', 'make'], ['python3', 'python3']]) if (!onPath(tool)) missing.push(pkg);
  if (!onPath('npm')) missing.push('npm');
  if (missing.length) {
    return { ok: false, reason: `node_pcap cannot be built: missing ${missing.join(', ')} (apt-get install -y ${missing.join(' ')})` };
  }
  say('npm install --prefix bench/live/peers (builds node_pcap with node-gyp)');
  const npm = (...args) => spawnSync('npm', [...args, '--prefix', peers, '--no-audit', '--no-fund'], { encoding: 'utf8' });
  let r = npm('install');
  if (r.status !== 0) return { ok: false, reason: `npm install failed (exit ${r.status}):\n${tail(r.stdout + r.stderr)}` };
  // Some npm configurations (ignore-scripts, an allowScripts policy) install the
  // package but skip its `node-gyp rebuild`; a rebuild of the one package says so loudly.
  if (loadProblem() !== null) {
    say('binding missing or stale after install; npm rebuild pcap');
    r = npm('rebuild', 'pcap');
    const problem = loadProblem();
    if (problem !== null) {
      return { ok: false, reason: `node_pcap did not build (${problem}); npm rebuild said:\n${tail(r.stdout + r.stderr)}\n(is npm's ignore-scripts set, or are pcap's install scripts not allowed?)` };
    }
  }
  say('node_pcap built');
  return { ok: true, reason: null };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { ok, reason } = ensurePeers({ force: process.argv.includes('--force') });
  if (!ok) {
    console.error(`install-peers: ${reason}`);
    process.exit(1);
  }
}
