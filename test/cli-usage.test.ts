// The netpd command line as a tcpdump user meets it: --version, help, exit codes (2 for a
// command line that does not parse, 1 for a NetpdError), and tcpdump's flags on compile
// (-O and -O0, -dd counted as -d twice, -F FILE, -s) checked against the filter corpus
// tcpdump printed (test/fixtures/filter/make-fixtures.mjs) and, when it is installed,
// against tcpdump run now.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const cli = process.env.NETPD_CLI ?? join(root, 'dist/cli.js'); // NETPD_CLI: another build of the command (one with a bug put in on purpose)
const netpd = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd: root });
const tmp = mkdtempSync(join(tmpdir(), 'netpd-cli-usage-'));
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const hasTcpdump = has('tcpdump');
if (!hasTcpdump) console.log('cli-usage: tcpdump is not installed; compile is checked against the stored corpus only');

const VERBS = [['run'], ['filter'], ['compile'], ['send'], ['bench', 'dispatch']];

describe('netpd --version and help', () => {
  it('prints package.json\'s version for --version and -V', () => {
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = netpd(flag);
      expect(r.status, flag).toBe(0);
      expect(r.stdout.trim(), flag).toBe(version);
    }
  });

  it('prints a verb\'s usage for `help VERB` and `VERB --help`, exit 0', () => {
    for (const verb of VERBS) {
      for (const args of [['help', ...verb], [...verb, '--help'], [...verb, '-h']]) {
        const r = netpd(...args);
        expect(r.status, args.join(' ')).toBe(0);
        expect(r.stdout, args.join(' ')).toMatch(new RegExp(`^Usage: netpd ${verb.join(' ')} \\[options\\]`));
      }
    }
    // Every tcpdump flag the issue names is documented where it applies.
    expect(netpd('help', 'run').stdout).toMatch(/-n, --numeric[\s\S]*-s, --snaplen[\s\S]*-p, --no-promiscuous-mode[\s\S]*-B, --buffer-size[\s\S]*-Q, --direction[\s\S]*-y, --linktype[\s\S]*-F, --file[\s\S]*-D, --list-interfaces/);
    expect(netpd('help', 'filter').stdout).toMatch(/-w, --write[\s\S]*-v, --verbose[\s\S]*-c, --count[\s\S]*-F, --file/);
    expect(netpd('help', 'compile').stdout).toMatch(/-O, --no-optimize[\s\S]*-y, --linktype/);
  });

  it('refuses an unknown verb or flag, a missing value or a bad choice with one line, a usage hint and exit 2', () => {
    const cases: [string[], RegExp, RegExp][] = [
      [['frob'], /^netpd: unknown command 'frob'$/, /^usage: netpd /],
      [['run', '--bogus'], /^netpd: unknown option '--bogus'$/, /^usage: netpd run /],
      [['filter', '-X'], /^netpd: unknown option '-X'$/, /^usage: netpd filter /],
      [['compile', '-x', 'tcp'], /^netpd: unknown option '-x'$/, /^usage: netpd compile /],
      [['bench', 'compile'], /^netpd: unknown command 'compile'$/, /^usage: netpd bench /],
      [['run', '-c'], /^netpd: option '-c, --count <n>' argument missing$/, /^usage: netpd run /],
      [['run', '-i', 'lo', '-Q', 'sideways'], /^netpd: option .*-Q.* argument 'sideways' is invalid\. Allowed choices are in, out, inout\.$/, /^usage: netpd run /],
      [['send', '-i', 'lo', '-r', 'x', '--tx-mode', 'fast'], /^netpd: option .*--tx-mode.* argument 'fast' is invalid/, /^usage: netpd send /],
      [['bench', 'dispatch', '--bogus'], /^netpd: unknown option '--bogus'$/, /^usage: netpd bench dispatch /],
    ];
    for (const [args, first, hint] of cases) {
      const r = netpd(...args);
      const lines = r.stderr.trim().split('\n');
      expect(r.status, args.join(' ')).toBe(2);
      expect(lines[0], args.join(' ')).toMatch(first);
      expect(lines[1], args.join(' ')).toMatch(hint);
      expect(lines.length, args.join(' ')).toBeLessThanOrEqual(3);
      expect(r.stdout, args.join(' ')).toBe('');
    }
    const bare = netpd();
    expect(bare.status).toBe(2);
    expect(bare.stderr).toMatch(/Usage: netpd/);
  });

  it('keeps exit 1 and `netpd: CODE: message` for a NetpdError', () => {
    const r = netpd('compile', 'port 70000');
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('netpd: EFILTER: illegal port number 70000 > 65535\n');
  });
});

describe('netpd compile with tcpdump\'s flags', () => {
  const corpus = JSON.parse(readFileSync(join(root, 'test/fixtures/filter/libpcap.json'), 'utf8')) as { cases: { expr: string; optimized: boolean; ddd: string; d: string; dd: string }[] };
  const picks = ['tcp port 80', 'vlan and ip', 'ip6 and port 53', 'arp or icmp', 'host 10.0.0.1 and not port 22'];
  const found = picks.map((expr) => [corpus.cases.find((c) => c.expr === expr && !c.optimized), corpus.cases.find((c) => c.expr === expr && c.optimized)] as const)
    .filter(([u, o]) => u && o);

  it('-O (no argument) and -O0 turn the optimizer off, as tcpdump -O does; -dd and -d -d are the same', () => {
    expect(found.length).toBeGreaterThanOrEqual(3);
    for (const [unopt, opt] of found) {
      const expr = unopt!.expr;
      expect(netpd('compile', '-O', expr).stdout, expr).toBe(unopt!.d);
      expect(netpd('compile', '-O0', '-ddd', expr).stdout, expr).toBe(unopt!.ddd);
      expect(netpd('compile', '-d', '-O', '-d', ...expr.split(' ')).stdout, expr).toBe(unopt!.dd);
      expect(netpd('compile', '-ddd', expr).stdout, expr).toBe(opt!.ddd);
    }
  });

  it('-F FILE reads the expression from a file, where # starts a comment (as tcpdump reads it)', () => {
    const [unopt] = found[0];
    const file = join(tmp, 'expr.txt');
    writeFileSync(file, `# web traffic\n${unopt!.expr.replace(' port', ' # no\n port')}\n`);
    expect(netpd('compile', '-O', '-F', file).stdout).toBe(unopt!.d);
    const both = netpd('compile', '-F', file, 'tcp');
    expect(both.status).toBe(1);
    expect(both.stderr).toMatch(/EINVAL: give the expression in -F .*expr\.txt or on the command line \("tcp"\), not both/);
    if (hasTcpdump) {
      const t = spawnSync('tcpdump', ['-O', '-d', '-r', join(root, 'samples/sample.pcap'), '-F', file], { encoding: 'utf8' });
      expect(t.stdout).toBe(unopt!.d);
    }
  });

  it('-s SNAPLEN is what an accepting program returns, as in tcpdump -i IFACE -s N -d', () => {
    const out = netpd('compile', '-s', '96', '-ddd', 'arp').stdout;
    expect(out).toMatch(/^6 0 0 96$/m);
    // (With -r, tcpdump takes the file's snapshot length instead.)
    if (hasTcpdump) {
      const t = spawnSync('tcpdump', ['-i', 'lo', '-s', '96', '-ddd', 'arp'], { encoding: 'utf8' });
      expect(out).toBe(t.stdout);
    }
  });

  it('reads missing and directory files as ENOENT and EISDIR naming them', () => {
    const cases: [string[], RegExp][] = [
      [['compile', '-F', join(tmp, 'nosuch.txt')], /^netpd: ENOENT: .*nosuch\.txt/],
      [['compile', '-F', tmp], new RegExp(`^netpd: EISDIR: .*${tmp}`)],
      [['run', '--rules-file', join(tmp, 'nosuch.rules')], /^netpd: ENOENT: .*nosuch\.rules/],
      [['run', '--rules-file', tmp], /^netpd: EISDIR: /],
      [['run', '--rule', `a=@${join(tmp, 'nosuch.ddd')}`], /^netpd: ENOENT: .*nosuch\.ddd/],
      [['filter', '-r', join(root, 'samples/sample.pcap'), '--program', tmp], /^netpd: EISDIR: /],
      [['filter', '-r', join(root, 'samples/sample.pcap'), '-w', tmp, 'arp'], /^netpd: EISDIR: .*it is a directory/],
      [['filter', '-r', join(root, 'samples/sample.pcap'), '-w', join(tmp, 'no/such/dir/out.pcap'), 'arp'], /^netpd: ENOENT: /],
      [['filter', '-r', join(tmp, 'nosuch.pcap'), 'arp'], /^netpd: ENOENT: .*nosuch\.pcap/],
      [['run', '-r', tmp], /^netpd: EISDIR: /],
      [['bench', 'dispatch', '-r', join(root, 'samples/sample.pcap'), '--rules-file', join(tmp, 'gone.rules')], /^netpd: ENOENT: .*gone\.rules/],
    ];
    for (const [args, message] of cases) {
      const r = netpd(...args);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  });
});
