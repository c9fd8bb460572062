// netpd as a dependency: what `npm pack` makes, installed the way a user installs it.
//
// A copy of the repository (tracked and untracked-but-not-ignored files, so packing builds
// from scratch and cannot disturb this working tree while other test files use it) is packed
// once with `npm pack`, which runs `prepack`: the WebAssembly core, dist/, and the N-API
// prebuild of the AF_PACKET addon. The tarball is installed into a fresh project by npm with
// its default settings (an empty HOME, so no user .npmrc) and a PATH holding only node, npm,
// npx, sh and a few core utilities: no compiler, make or python. From there `npx netpd run`
// must print what the repository's own CLI prints, and AfPacketSource must receive on a veth
// with the prebuilt addon (skipped, saying why, without root or network namespaces). Then the
// prebuild is hidden, and opening a live source must raise ENOTSUP naming a from-source
// command that, run as written with a compiler on the PATH, builds an addon that loads.
// Needs the npm registry for netpd's dependencies; skips, saying so, when it is unreachable.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab, labSkipReason, toolPath } from './support/netns.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const npmPath = toolPath('npm');
const gitPath = toolPath('git');
const COMPILERS = ['cc', 'gcc', 'g++', 'c++', 'clang', 'clang++', 'make', 'python3', 'python'];

function registryReason(): string | null {
  if (!npmPath) return 'npm not found on PATH';
  if (!gitPath) return 'git not found on PATH (the test packs a copy of the checkout)';
  const r = spawnSync(npmPath, ['ping'], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? null : `the npm registry is unreachable (npm ping: ${(r.stderr || r.error?.message || '').trim().split('\n')[0]})`;
}
const reason = registryReason();
if (reason) console.log(`package: skipped: ${reason}`);

const run = (cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeout?: number }): SpawnSyncReturns<string> =>
  spawnSync(cmd, args, { encoding: 'utf8', timeout: opts.timeout ?? 120_000, cwd: opts.cwd, env: opts.env, maxBuffer: 64 << 20 });
const said = (r: SpawnSyncReturns<string>) => `exit ${r.status}${r.error ? ` (${r.error.message})` : ''}\n${r.stdout}\n${r.stderr}`;

/** A PATH directory with what npm and node need, and nothing that could compile. */
function bareBin(dir: string): string {
  mkdirSync(dir);
  symlinkSync(process.execPath, join(dir, 'node'));
  for (const tool of ['npm', 'npx', 'sh', 'env', 'cat', 'ls', 'mkdir', 'rm', 'uname']) {
    const p = toolPath(tool);
    if (p) symlinkSync(p, join(dir, tool));
  }
  return dir;
}

describe.skipIf(reason !== null)('the packed package, installed with npm and no compiler', () => {
  let tmp: string;
  let consumer: string;
  let installed: string;
  let tarballFiles: string[];
  let install: SpawnSyncReturns<string>;
  /** The environment of a user without a compiler: npm's defaults, a bare PATH. */
  let bare: NodeJS.ProcessEnv;

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'netpd-package-'));
    // Pack a copy, as a fresh clone would be packed.
    const src = join(tmp, 'src');
    const listed = run(gitPath!, ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root });
    expect(listed.status, said(listed)).toBe(0);
    for (const f of listed.stdout.split('\0')) {
      if (f && f.split('/')[0] !== 'node_modules' && existsSync(join(root, f))) cpSync(join(root, f), join(src, f), { recursive: true });
    }
    symlinkSync(join(root, 'node_modules'), join(src, 'node_modules'));
    const packDir = join(tmp, 'pack');
    mkdirSync(packDir);
    const pack = run(npmPath!, ['pack', '--json', '--pack-destination', packDir], { cwd: src, timeout: 280_000 });
    expect(pack.status, said(pack)).toBe(0);
    const [info] = JSON.parse(pack.stdout) as { filename: string; size: number; files: { path: string }[] }[];
    tarballFiles = info.files.map((f) => f.path);
    console.log(`package: ${info.filename}, ${info.size} bytes packed, ${tarballFiles.length} files`);

    const home = join(tmp, 'home');
    mkdirSync(home);
    bare = {
      HOME: home,
      PATH: bareBin(join(tmp, 'bin')),
      // npm's default cache location, so the dependencies need not be fetched again each run.
      npm_config_cache: join(homedir(), '.npm'),
    };
    // What reaching the registry takes on this machine (proxy, certificate authorities; npm's
    // global npmrc when CI runs npm under another Node) is the machine's, not a user setting.
    for (const k of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy', 'TMPDIR',
      'NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'npm_config_globalconfig']) {
      if (process.env[k]) bare[k] = process.env[k];
    }
    consumer = join(tmp, 'consumer');
    mkdirSync(consumer);
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    install = run('npm', ['install', join(packDir, info.filename)], { cwd: consumer, env: bare });
    installed = join(consumer, 'node_modules', 'netpd');
  }, 300_000);

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('ships the built package and nothing from the tests or benchmarks', () => {
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli.js', 'wasm/netpd.wasm', 'prebuilds/linux-x64/netpd.glibc.node',
      'samples/sample.pcap', 'samples/rules.json', 'binding.gyp', 'addon/binding.cc', 'scripts/build-addon.mjs', 'package.json']) {
      expect(tarballFiles, f).toContain(f);
    }
    expect(tarballFiles.filter((f) => /^(test|bench|node_modules|build)\//.test(f))).toEqual([]);
  });

  it('installs with no install script to approve and compiles nothing', () => {
    for (const tool of COMPILERS) expect(existsSync(join(bare.PATH!, tool)), tool).toBe(false);
    expect(install.status, said(install)).toBe(0);
    const out = `${install.stdout}\n${install.stderr}`;
    expect(out).not.toMatch(/install-scripts|allowScripts|node-gyp|gyp (info|ERR)/i);
    expect(out).not.toMatch(/npm (warn|error)/i);
    expect(existsSync(join(installed, 'prebuilds/linux-x64/netpd.glibc.node'))).toBe(true);
    expect(existsSync(join(installed, 'build')), 'a build/ folder means something was compiled').toBe(false);
  });

  it('`npx netpd run` prints the bundled sample\'s counters, as the repository\'s CLI does', () => {
    const theirs = run('npx', ['netpd', 'run'], { cwd: consumer, env: bare });
    expect(theirs.status, said(theirs)).toBe(0);
    const ours = run(process.execPath, [join(root, 'dist/cli.js'), 'run'], { cwd: root });
    expect(ours.status, said(ours)).toBe(0);
    const table = (s: string) => s.replace(/dispatched in [\d.]+ ms/, 'dispatched in T ms');
    expect(theirs.stdout).toMatch(/samples\/sample\.pcap \(bundled sample\): 2924 packets/);
    expect(table(theirs.stdout)).toBe(table(ours.stdout));
  });

  const live = labSkipReason();
  if (live) console.log(`package: live capture from the installed package skipped: ${live}`);

  it.skipIf(live !== null)('AfPacketSource from the installed package receives on a veth, with the prebuilt addon', async () => {
    const lab = await createLab('pkg');
    try {
      const want = 20;
      // Counts the UDP datagrams to port 9 arriving at end A; says which addon file it loaded.
      const script = `
        import { AfPacketSource, Arena } from 'netpd';
        import { readFileSync } from 'node:fs';
        const [iface, want] = [process.argv[1], Number(process.argv[2])];
        const arena = Arena.create({ slotSize: 2048, slotCount: 256 });
        let got = 0;
        const source = AfPacketSource.open(iface, { arena, onBurst(vec, n) {
          for (let i = 0; i < n; i++) {
            const b = arena.bytes, o = arena.dataOffset(vec[i]);
            if (arena.capLen(vec[i]) >= 38 && b[o + 12] === 8 && b[o + 13] === 0 && b[o + 23] === 17 && b[o + 36] === 0 && b[o + 37] === 9) got++;
          }
          if (got >= want) finish(0);
        } });
        const addon = readFileSync('/proc/self/maps', 'utf8').split('\\n').find((l) => l.endsWith('.node'))?.split(' ').pop();
        const timer = setTimeout(() => finish(1), 15000);
        function finish(code) {
          clearTimeout(timer);
          source.close();
          console.log(JSON.stringify({ got, addon }));
          process.exit(code);
        }
        console.log('ready');`;
      const child = spawn('node', ['--input-type=module', '-e', script, lab.a, String(want)], { cwd: consumer, env: bare });
      let stdout = '';
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => { stderr += d; });
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => { stdout += d; if (stdout.includes('ready\n')) resolve(); });
        child.on('close', () => reject(new Error(`the receiver ended before it was ready:\n${stdout}\n${stderr}`)));
      });
      // From the namespace, with nothing but bash: the kernel resolves A's MAC and sends.
      const sent = await lab.exec('bash', ['-c', `for ((i = 0; i < ${want}; i++)); do echo netpd > /dev/udp/${lab.addrA}/9; done`], { ns: true });
      expect(sent.code, sent.stderr).toBe(0);
      const code = await exited;
      const report = JSON.parse(stdout.trim().split('\n').pop()!) as { got: number; addon: string };
      expect(code, stdout + stderr).toBe(0);
      expect(report.got).toBe(want);
      expect(report.addon).toBe(join(installed, 'prebuilds/linux-x64/netpd.glibc.node'));
    } finally {
      await lab.destroy();
    }
  });

  const compilerMissing = ['c++', 'make', 'python3'].find((t) => !toolPath(t));
  if (compilerMissing) console.log(`package: the from-source build skipped: ${compilerMissing} not found on PATH`);

  it.skipIf(compilerMissing !== undefined)('where no prebuild fits, ENOTSUP names a from-source command that works', () => {
    const open = `
      import { AfPacketSource, Arena } from 'netpd';
      try {
        AfPacketSource.open('lo', { arena: Arena.create({ slotSize: 2048, slotCount: 64 }) }).close();
        console.log(JSON.stringify({ code: 'opened' }));
      } catch (e) {
        console.log(JSON.stringify({ code: e.code, message: e.message }));
      }`;
    const tryOpen = () => {
      const r = run('node', ['--input-type=module', '-e', open], { cwd: consumer, env: bare });
      expect(r.status, said(r)).toBe(0);
      return JSON.parse(r.stdout) as { code: string; message?: string };
    };
    const prebuilds = join(installed, 'prebuilds');
    renameSync(prebuilds, `${prebuilds}.hidden`);
    try {
      const refused = tryOpen();
      expect(refused.code).toBe('ENOTSUP');
      expect(refused.message).toMatch(/no prebuild for this system \(platform=linux arch=x64 .*libc=glibc/);
      const command = /build it from source \([^)]*\): (.*)$/.exec(refused.message!)?.[1];
      expect(command, refused.message).toBe(`cd '${installed}' && npm run build:addon`);
      // The user's shell: their PATH (with the compiler), their npm settings.
      const built = run('sh', ['-c', command!], { cwd: tmp, timeout: 280_000 });
      expect(built.status, said(built)).toBe(0);
      expect(readdirSync(join(installed, 'build', 'Release'))).toContain('netpd_afpacket.node');
      const after = tryOpen();
      // Root opens the socket; anyone else gets past loading the addon to the kernel's refusal.
      expect(after.code).toBe(process.getuid?.() === 0 ? 'opened' : 'EPERM');
    } finally {
      renameSync(`${prebuilds}.hidden`, prebuilds);
      rmSync(join(installed, 'build'), { recursive: true, force: true });
    }
  }, 300_000);
});
