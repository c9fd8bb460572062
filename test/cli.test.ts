// The netpd command as a user runs it (the built dist/cli.js), checked against libpcap's
// verdicts on the bundled sample (test/fixtures/sample/make-expected.mjs) and on the
// reference captures (test/fixtures/bpf/make-bpf-fixtures.mjs).
import { describe, it, expect } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PcapReader } from '../bindings/pcap/index.js';
import { loadAddon } from '../bindings/live/addon.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const cli = process.env.NETPD_CLI ?? join(root, 'dist/cli.js'); // NETPD_CLI: another build of the command (one with a bug put in on purpose)
const netpd = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd: root });
const tmp = mkdtempSync(join(tmpdir(), 'netpd-cli-'));

interface Report { packets: number; bytes: number; owners: Record<string, { packets: number; bytes: number }>; default: { packets: number; bytes: number }; drops: Record<string, number> }
const lastJson = (out: string) => JSON.parse(out.trim().split('\n').pop()!) as Report;

describe('netpd run', () => {
  const expected = JSON.parse(readFileSync(join(root, 'test/fixtures/sample/libpcap.json'), 'utf8')) as { rules: string[]; accepted: Record<string, number[]> };
  const packets = PcapReader.readAllFromFile(join(root, 'samples/sample.pcap'));

  it('dispatches the bundled sample to its rules, first match wins, as libpcap classifies it', () => {
    const r = netpd('run', '--json');
    expect(r.status).toBe(0);
    const report = lastJson(r.stdout);
    const want: Record<string, { packets: number; bytes: number }> = Object.fromEntries(expected.rules.map((n) => [n, { packets: 0, bytes: 0 }]));
    const sets = expected.rules.map((n) => new Set(expected.accepted[n]));
    const rest = { packets: 0, bytes: 0 };
    packets.forEach((p, i) => {
      const k = sets.findIndex((s) => s.has(i + 1));
      const bucket = k < 0 ? rest : want[expected.rules[k]];
      bucket.packets++;
      bucket.bytes += p.wireLen;
    });
    expect(report.owners).toEqual(want);
    expect(report.default).toEqual(rest);
    expect(report.packets).toBe(packets.length);
    expect(report.bytes).toBe(packets.reduce((b, p) => b + p.wireLen, 0));
    expect(report.drops).toEqual({ nomatch: 0, 'owner-error': 0, unregistered: 0, noslot: 0, kernel: 0 });
  });

  it('prints a per-owner table with packets, bytes, share and rate', () => {
    const r = netpd('run');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/owner\s+packets\s+bytes\s+share\s+pkt\/s/);
    for (const name of [...expected.rules, '(default)']) expect(r.stdout).toMatch(new RegExp(`^${name.replace(/[()]/g, '\\$&')}\\s+\\d+\\s+\\d+\\s+[\\d.]+%`, 'm'));
  });

  it('stops after -c packets', () => {
    const report = lastJson(netpd('run', '-c', '100', '--json').stdout);
    expect(report.packets).toBe(100);
    expect(Object.values(report.owners).reduce((a, o) => a + o.packets, report.default.packets)).toBe(100);
  });

  it('takes rules as tcpdump -ddd files', () => {
    const file = join(tmp, 'arp.ddd');
    writeFileSync(file, JSON.parse(readFileSync(join(root, 'samples/rules.json'), 'utf8'))[0].ddd);
    const report = lastJson(netpd('run', '--rule', `req=@${file}`, '--json').stdout);
    expect(report.owners.req.packets).toBe(expected.accepted['arp-request'].length);
  });

  it('stops on SIGINT while reading an endless stream and still prints its counters', async () => {
    const child = spawn(process.execPath, [cli, 'run', '-r', '-', '--json'], { cwd: root });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    const header = readFileSync(join(root, 'samples/sample.pcap')).subarray(0, 24);
    const body = readFileSync(join(root, 'samples/sample.pcap')).subarray(24);
    child.stdin.on('error', () => {});
    child.stdin.write(header);
    let writing = true;
    const pump = () => { while (writing && child.stdin.write(body)); if (writing) child.stdin.once('drain', pump); };
    pump();
    await new Promise((r) => setTimeout(r, 700));
    child.kill('SIGINT');
    const code = await new Promise((r) => child.on('close', r));
    writing = false;
    expect(code).toBe(0);
    const report = lastJson(out);
    expect(report.packets).toBeGreaterThan(packets.length);
    expect(Object.values(report.owners).reduce((a, o) => a + o.packets, report.default.packets)).toBe(report.packets);
  });

  it('reports bad input with a code and a non-zero exit, never a stack trace', () => {
    // What opening a missing interface gives depends on where the test runs.
    // The library's own resolver (node-gyp-build: build/Release, then the prebuild) decides.
    let addon = process.platform === 'linux';
    try {
      loadAddon();
    } catch {
      addon = false;
    }
    const liveOpenError = !addon ? /ENOTSUP/ : process.getuid?.() === 0 ? /ENODEV: no network interface named "netpd-nosuch0"/ : /EPERM: .*CAP_NET_RAW/;
    const bad = join(tmp, 'bad.pcap');
    writeFileSync(bad, Buffer.concat([readFileSync(join(root, 'samples/sample.pcap')).subarray(0, 24 + 16 + 10)]));
    const sample = join(root, 'samples/sample.pcap');
    const notArp = join(tmp, 'not-arp.rules');
    writeFileSync(notArp, 'arp\nnot arp\n');
    const noRules = join(tmp, 'empty.rules');
    writeFileSync(noRules, '# nothing\n\n');
    const cases: [string[], RegExp][] = [
      [['run', '-r', bad], /EPCAP: truncated record data .* at byte 40 of/],
      [['run', '-r', join(tmp, 'missing.pcap')], /^netpd: E\w+: .*missing\.pcap/],
      [['run', '--rule', 'web=tcp port 80 and'], /EFILTER: rule "web": syntax error at the end/],
      [['compile', 'port 70000'], /EFILTER: illegal port number 70000 > 65535/],
      [['run', '-c', 'x'], /EINVAL: -c takes a positive packet count/],
      [['run', '-i', 'netpd-nosuch0'], liveOpenError],
      [['run', '-w', join(tmp, 'out.pcap')], /EINVAL: -w writes a live capture; it needs -i IFACE/],
      [['run', '-r', bad, 'tcp'], /EINVAL: unexpected "tcp": a trailing filter expression is for live capture/],
      [['send', '-i', 'lo'], /EINVAL: send needs -i IFACE and -r FILE/],
      [['send', '-i', 'lo', '-r', bad, '--pps', '0'], /EINVAL: --pps takes a positive rate in packets per second, got "0"/],
      [['filter', '-r', bad], /an expression or --program/],
      [['run', '--filter-type', 'trie'], /EINVAL: --filter-type takes bpf or dpf, got "trie"/],
      [['run', '--jit', '--no-jit'], /EINVAL: give --jit or --no-jit, not both/],
      [['run', '--filter-type', 'dpf', '--rule', 'notarp=not arp'], /EFILTER: rule "notarp": "not arp" has no DPF form: /],
      [['bench', 'dispatch', '-r', bad], /EINVAL: bench dispatch needs -r FILE and --rules-file RULES/],
      [['bench', 'dispatch', '-r', sample, '--rules-file', notArp, '--filter-type', 'dpf'], /EFILTER: rule "not arp": "not arp" has no DPF form: /],
      [['bench', 'dispatch', '-r', sample, '--rules-file', noRules], /EINVAL: the rules file has no rules/],
    ];
    for (const [args, message] of cases) {
      const r = netpd(...args);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/    at /);
    }
    const unknown = netpd('run', '--bogus');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/usage/);
  });
});

describe('netpd run --filter-type, --jit and netpd bench dispatch', () => {
  it('routes the bundled sample the same with DPF and BPF, compiled or interpreted (its rules do not overlap)', () => {
    const reference = netpd('run', '--json');
    expect(reference.status).toBe(0);
    for (const flags of [['--filter-type', 'dpf'], ['--filter-type', 'dpf', '--no-jit'], ['--no-jit'], ['--jit']]) {
      const r = netpd('run', '--json', ...flags);
      expect(r.status, flags.join(' ')).toBe(0);
      expect(lastJson(r.stdout), flags.join(' ')).toEqual(lastJson(reference.stdout));
    }
  });

  it('bench dispatch reports the median time per packet and what matched, as one JSON line', () => {
    const rules = join(tmp, 'sample.rules');
    const sample = JSON.parse(readFileSync(join(root, 'samples/rules.json'), 'utf8')) as { expr: string }[];
    writeFileSync(rules, `# the bundled sample's rules\n${sample.map((r) => r.expr).join('\n')}\n\n`);
    const run = lastJson(netpd('run', '--json').stdout);
    for (const flags of [[], ['--filter-type', 'dpf'], ['--no-jit']]) {
      const r = netpd('bench', 'dispatch', '-r', join(root, 'samples/sample.pcap'), '--rules-file', rules, '--time', '50', '--json', ...flags);
      expect(r.status, flags.join(' ')).toBe(0);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { rules: number; nsPerPacket: number; mpps: number; matched: number };
      expect(Object.keys(out)).toEqual(['rules', 'nsPerPacket', 'mpps', 'matched']);
      expect(out.rules).toBe(sample.length);
      expect(out.matched).toBe(run.packets - run.default.packets);
      expect(out.nsPerPacket).toBeGreaterThan(0);
      expect(out.mpps).toBeCloseTo(1000 / out.nsPerPacket, 1);
    }
  });
});

describe('netpd filter EXPR and netpd compile', () => {
  const corpus = JSON.parse(readFileSync(join(root, 'test/fixtures/filter/libpcap.json'), 'utf8')) as { cases: { expr: string; optimized: boolean; ddd: string; d: string; dd: string; accepted: Record<string, number[]> }[] };
  const picks = ['tcp port 80', 'vlan and ip', 'ip6 and port 53', 'arp', 'ip[6:2] & 0x1fff != 0', 'less 64', 'mpls', 'net 10.0.0.0/8 and not port 22'];

  it('filter prints the positions of the packets libpcap accepts for an expression', () => {
    for (const expr of picks) {
      const c = corpus.cases.find((x) => x.expr === expr && x.optimized);
      if (!c) continue;
      for (const capture of ['scapy-l2.pcap', 'scapy-filter.pcap', 'scapy-runts.pcap']) {
        const r = netpd('filter', '-r', join(root, 'test/fixtures/captures', capture), ...expr.split(' '));
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout.split('\n').filter(Boolean).map(Number), `${expr} on ${capture}`).toEqual(c.accepted[capture]);
      }
    }
  });

  it('compile -O0 prints what tcpdump -O prints, in -d, -dd and -ddd forms', () => {
    for (const expr of picks) {
      const c = corpus.cases.find((x) => x.expr === expr && !x.optimized);
      if (!c) continue;
      expect(netpd('compile', '-O0', '-ddd', expr).stdout, expr).toBe(c.ddd);
      expect(netpd('compile', '-O0', '-dd', expr).stdout, expr).toBe(c.dd);
      expect(netpd('compile', '-O0', '-d', expr).stdout, expr).toBe(c.d);
    }
  });

  it('run takes rules as expressions', () => {
    const report = lastJson(netpd('run', '-r', join(root, 'samples/sample.pcap'), '--rule', 'req=arp[6:2] = 1', '--rule', 'dns=udp port 53', '--json').stdout);
    const expected = JSON.parse(readFileSync(join(root, 'test/fixtures/sample/libpcap.json'), 'utf8')) as { accepted: Record<string, number[]> };
    expect(report.owners.req.packets).toBe(expected.accepted['arp-request'].length);
    expect(report.owners.dns.packets).toBe(expected.accepted['udp-dns'].length);
  });
});

describe('netpd filter --program', () => {
  const fixture = JSON.parse(readFileSync(join(root, 'test/fixtures/bpf/libpcap.json'), 'utf8')) as { cases: { expr: string; optimized: boolean; ddd: string; accepted: Record<string, number[]> }[] };
  it('prints the positions of the packets libpcap accepts', () => {
    const picks = ['tcp port 80', 'vlan and ip', 'ip6 and port 53', 'arp', 'ip[6:2] & 0x1fff != 0', 'less 64', 'mpls'];
    for (const expr of picks) {
      const c = fixture.cases.find((x) => x.expr === expr && x.optimized)!;
      expect(c, expr).toBeDefined();
      const prog = join(tmp, 'p.ddd');
      writeFileSync(prog, c.ddd);
      for (const capture of ['scapy-l2.pcap', 'veth-replay.pcap', 'scapy-runts.pcap']) {
        const r = netpd('filter', '-r', join(root, 'test/fixtures/captures', capture), '--program', prog);
        expect(r.status).toBe(0);
        expect(r.stdout.split('\n').filter(Boolean).map(Number), `${expr} on ${capture}`).toEqual(c.accepted[capture]);
      }
    }
  });
});
