// netpd's command line over files: rules files (NAME=EXPR lines, a name given twice
// refused), --slot-size for frames longer than 2,048 bytes, what comes before the damage
// in a cut capture (against tcpdump's count, test/fixtures/cli/make-fixtures.mjs),
// `filter -w` against `tcpdump -w` read back by tshark, and rule sets too large for the
// default arena (the arena is sized from the rules).
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PcapReader, PcapWriter } from '../bindings/pcap/index.js';
import { benchDispatch } from '../bindings/bench-dispatch.js';
import { makeFlows, flowExpression, fiveTuple } from './support/flows.mjs';
import { cutSample, tcpdumpOnCut } from './fixtures/cli/make-fixtures.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const cli = process.env.NETPD_CLI ?? join(root, 'dist/cli.js'); // NETPD_CLI: another build of the command (one with a bug put in on purpose)
const netpd = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd: root, maxBuffer: 64 << 20 });
const tmp = mkdtempSync(join(tmpdir(), 'netpd-cli-files-'));
const sample = join(root, 'samples/sample.pcap');
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const hasTcpdump = has('tcpdump');
const hasTshark = has('tshark');
if (!hasTcpdump) console.log('cli-files: tcpdump is not installed; cut captures are checked against the stored counts, filter -w against libpcap\'s stored verdicts');
if (!hasTshark) console.log('cli-files: tshark is not installed; filter -w output is compared record by record with netpd\'s own reader only');

interface Report { packets: number; bytes: number; owners: Record<string, { packets: number; bytes: number }>; default: { packets: number; bytes: number } }
const lastJson = (out: string) => JSON.parse(out.trim().split('\n').pop()!) as Report;
const expected = JSON.parse(readFileSync(join(root, 'test/fixtures/sample/libpcap.json'), 'utf8')) as { rules: string[]; accepted: Record<string, number[]> };

describe('netpd run --rules-file', () => {
  it('takes NAME=EXPR and bare EXPR lines, # comments and blank lines, like --rule', () => {
    const rules = join(tmp, 'sample.rules');
    writeFileSync(rules, '# the sample\'s ARP requests and DNS\nreq=arp[6:2] = 1\n\n  udp port 53  \nlen = 60\n');
    const r = netpd('run', '-r', sample, '--rules-file', rules, '--json');
    expect(r.status, r.stderr).toBe(0);
    const report = lastJson(r.stdout);
    expect(Object.keys(report.owners)).toEqual(['req', 'udp port 53', 'len = 60']);
    expect(report.owners.req.packets).toBe(expected.accepted['arp-request'].length);
    expect(report.owners['udp port 53'].packets).toBe(expected.accepted['udp-dns'].length);
    const same = lastJson(netpd('run', '-r', sample, '--rule', 'req=arp[6:2] = 1', '--rule', 'dns=udp port 53', '--rule', 'sixty=len = 60', '--json').stdout);
    expect(Object.values(report.owners)).toEqual(Object.values(same.owners));
    expect(report.default).toEqual(same.default);
  });

  it('refuses a rule name given twice, naming it, in run and bench dispatch (no owner\'s counts are lost)', () => {
    const twice = netpd('run', '--rule', 'a=tcp', '--rule', 'a=udp', '--json');
    expect(twice.status).toBe(1);
    expect(twice.stderr).toBe('netpd: EINVAL: rule name "a" is given twice\n');
    const rules = join(tmp, 'twice.rules');
    writeFileSync(rules, 'web=tcp port 80\ndns=udp port 53\nweb=tcp port 443\n');
    for (const args of [['run', '--rules-file', rules], ['bench', 'dispatch', '-r', sample, '--rules-file', rules, '--time', '1']]) {
      const r = netpd(...args);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(/^netpd: EINVAL: rule name "web" is given twice$/m);
    }
    const mixed = netpd('run', '--rule', 'dns=arp', '--rules-file', rules.replace('twice', 'nope'));
    expect(mixed.status).toBe(1);
  });
});

describe('netpd run --slot-size', () => {
  // An 8,042-byte frame (a jumbo UDP datagram) between two short ones.
  const jumbo = join(tmp, 'jumbo.pcap');
  const frame = (len: number) => {
    const b = new Uint8Array(len);
    b.set([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00, 0x45], 0);
    new DataView(b.buffer).setUint16(16, len - 14);
    b[23] = 17;
    return b;
  };
  const w = PcapWriter.create(jumbo);
  for (const [i, len] of [60, 8042, 60].entries()) w.writePacket(frame(len), { sec: 1_700_000_000 + i, nsec: 0 });
  w.close();

  it('keeps frames up to 64 KiB whole when asked; 2,048 bytes by default, counted as truncated', () => {
    const cut = netpd('run', '-r', jumbo, '--rule', 'udp=udp');
    expect(cut.status, cut.stderr).toBe(0);
    expect(cut.stdout).toMatch(/truncated to slot: 1$/m);
    for (const size of ['8042', '9000', '65536']) {
      const whole = netpd('run', '-r', jumbo, '--rule', 'udp=udp', '--slot-size', size);
      expect(whole.status, size).toBe(0);
      expect(whole.stdout, size).toMatch(/truncated to slot: 0$/m);
      expect(whole.stdout, size).toMatch(/^udp\s+3\s+8162\s/m);
    }
    // A filter reading past 2,048 bytes sees the frame only in a large enough slot.
    const deep = ['--rule', 'deep=udp and ip[8000] = 0'];
    expect(lastJson(netpd('run', '-r', jumbo, ...deep, '--json').stdout).owners.deep.packets).toBe(0);
    expect(lastJson(netpd('run', '-r', jumbo, ...deep, '--slot-size', '9000', '--json').stdout).owners.deep.packets).toBe(1);
  });

  it('refuses sizes outside 64..65536 with EINVAL naming the value', () => {
    for (const bad of ['65537', '70000', '63', '0', '2k', '-5']) {
      const r = netpd('run', '--slot-size', bad);
      expect(r.status, bad).toBe(1);
      expect(r.stderr, bad).toBe(`netpd: EINVAL: --slot-size takes 64 to 65536 bytes, got "${bad}"\n`);
    }
  });
});

describe('a damaged capture: what came before the damage, then EPCAP', () => {
  const fixture = JSON.parse(readFileSync(join(root, 'test/fixtures/cli/cli.json'), 'utf8')) as { damaged: { bytes: number; packets: number }[] };

  it('tcpdump\'s count on the sample cut at 100,000 bytes is the stored one', async () => {
    if (!hasTcpdump) return;
    for (const f of fixture.damaged) expect((await tcpdumpOnCut('tcpdump', f.bytes)).packets, `cut at ${f.bytes}`).toBe(f.packets);
  });

  it('filter prints the packets before the damage, then the error with its byte offset, exit 1', () => {
    for (const f of fixture.damaged) {
      const cut = cutSample(f.bytes);
      const r = netpd('filter', '-r', cut, 'ip or not ip');
      expect(r.status, `cut at ${f.bytes}`).toBe(1);
      expect(r.stdout.split('\n').filter(Boolean).map(Number)).toEqual(Array.from({ length: f.packets }, (_, i) => i + 1));
      expect(r.stderr).toMatch(/^netpd: EPCAP: truncated record .* at byte \d+ of .*sample-cut-\d+\.pcap\n$/);
      // Only the matching ones when the expression is narrower.
      const arp = netpd('filter', '-r', cut, 'arp').stdout.split('\n').filter(Boolean).map(Number);
      expect(arp).toEqual(expected.accepted['arp-request'].concat(expected.accepted['arp-reply']).sort((a, b) => a - b).filter((n) => n <= f.packets));
    }
  });

  it('run prints its counters for them (table or --json), then the error, exit 1', () => {
    for (const f of fixture.damaged) {
      const cut = cutSample(f.bytes);
      const json = netpd('run', '-r', cut, '--json');
      expect(json.status).toBe(1);
      expect(lastJson(json.stdout).packets).toBe(f.packets);
      expect(json.stderr).toMatch(/^netpd: EPCAP: .* at byte \d+ of /);
      const table = netpd('run', '-r', cut, '--rule', 'arp=arp');
      expect(table.status).toBe(1);
      expect(table.stdout).toMatch(new RegExp(`: ${f.packets} packets over `));
      expect(table.stdout).toMatch(/^\(default\)\s+\d+/m);
    }
  });
});

describe('netpd filter -w OUT writes what tcpdump -w writes', () => {
  const corpus = JSON.parse(readFileSync(join(root, 'test/fixtures/filter/libpcap.json'), 'utf8')) as { cases: { expr: string; optimized: boolean; accepted: Record<string, number[]> }[] };
  const cases: [string, string][] = [
    ['scapy-l2.pcap', 'vlan and ip'],
    ['scapy-filter.pcap', 'tcp port 80'],
    ['scapy-runts.pcap', 'less 64'],
    ['veth-replay.pcap', 'ip6 and port 53'],
  ];

  it('the same records: bytes, lengths and timestamps, in order, with the input\'s link type', () => {
    let checked = 0;
    for (const [capture, expr] of cases) {
      const c = corpus.cases.find((x) => x.expr === expr && x.optimized);
      if (!c) continue;
      const input = join(root, 'test/fixtures/captures', capture);
      const out = join(tmp, `${capture}.netpd.pcap`);
      const r = netpd('filter', '-r', input, '-w', out, ...expr.split(' '));
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe('');
      const all = PcapReader.readAllFromFile(input);
      const want = c.accepted[capture].map((n) => all[n - 1]);
      const got = PcapReader.readAllFromFile(out);
      // Timestamps in microseconds, tcpdump's default precision.
      const key = (p: { data: Uint8Array; capLen: number; wireLen: number; sec: number; nsec: number }) => `${p.sec}.${Math.floor(p.nsec / 1000)} ${p.capLen}/${p.wireLen} ${Buffer.from(p.data).toString('hex')}`;
      expect(got.map(key), `${expr} on ${capture}`).toEqual(want.map(key));
      if (hasTcpdump) {
        const ref = join(tmp, `${capture}.tcpdump.pcap`);
        expect(spawnSync('tcpdump', ['-r', input, '-w', ref, expr]).status).toBe(0);
        if (hasTshark && checked < 2) {
          // tshark takes seconds to start: two of the cases, every field and byte.
          type Frame = { _source: { layers: { frame_raw: [string]; frame: Record<string, string> } } };
          const read = (f: string) => (JSON.parse(spawnSync('tshark', ['-r', f, '-T', 'json', '-x'], { encoding: 'utf8', maxBuffer: 256 << 20 }).stdout) as Frame[])
            .map(({ _source: { layers: l } }) => [l.frame['frame.time_epoch'], l.frame['frame.len'], l.frame['frame.cap_len'], l.frame['frame.encap_type'], l.frame_raw[0]].join(' '));
          const seen = read(out);
          expect(seen, `${expr} on ${capture}`).toHaveLength(want.length);
          expect(seen, `${expr} on ${capture}`).toEqual(read(ref));
        }
        // And byte for byte: the header (link type, snapshot length) and every record.
        expect(readFileSync(out).equals(readFileSync(ref)), `${expr} on ${capture}`).toBe(true);
      }
      checked++;
    }
    expect(checked).toBe(cases.length);
  });

  it('-c stops after COUNT accepted packets, as tcpdump -c does', () => {
    const out = join(tmp, 'first3.pcap');
    expect(netpd('filter', '-r', sample, '-c', '3', '-w', out, 'arp').status).toBe(0);
    expect(PcapReader.readAllFromFile(out)).toHaveLength(3);
    expect(netpd('filter', '-r', sample, '-c', '5', 'udp').stdout.trim().split('\n')).toHaveLength(5);
  });
});

describe('rule sets larger than the default arena', () => {
  it('bench dispatch sizes the arena for 100,000 DPF 5-tuples itself (the default control region holds some 20,000)', async () => {
    const flows = makeFlows(100_000, 3);
    const capture = join(tmp, 'flows.pcap');
    const w = PcapWriter.create(capture);
    const { flowFrame } = await import('./support/flows.mjs');
    for (let i = 0; i < 2000; i++) w.writePacket(flowFrame(flows[(i * 7919) % flows.length]), { sec: 1_700_000_000, nsec: i });
    w.close();
    const r = await benchDispatch({
      file: capture,
      rules: flows.map((f, i) => ({ name: `flow-${i}`, description: fiveTuple(f) })),
      filterType: 'dpf',
      jit: false,
      minTimeMs: 1,
      minPasses: 1,
    });
    expect(r.rules).toBe(100_000);
    expect(r.matched).toBe(2000);
  }, 120_000);

  it('run and bench dispatch take a rules file of more BPF instructions than the default program memory holds', () => {
    // 8,000 5-tuples are 136,000 instructions (17 each); the default holds 131,072.
    const flows = makeFlows(8000, 5);
    const rules = join(tmp, 'flows-8000.rules');
    writeFileSync(rules, `${flows.map(flowExpression).join('\n')}\n`);
    spawnSync(process.execPath, [join(root, 'scripts/make-flows.mjs'), '--flows', '8000', '--packets', '500', '--seed', '5', '--out', tmp]);
    const made = readFileSync(join(tmp, 'flows.rules'), 'utf8');
    expect(made).toBe(readFileSync(rules, 'utf8'));
    const run = netpd('run', '-r', join(tmp, 'flows.pcap'), '--rules-file', rules, '--no-jit', '--json');
    expect(run.status, run.stderr).toBe(0);
    const report = lastJson(run.stdout);
    expect(Object.keys(report.owners)).toHaveLength(8000);
    expect(report.packets).toBe(500);
    expect(report.default.packets).toBeGreaterThan(0);
    expect(report.default.packets).toBeLessThan(150);
    const bench = netpd('bench', 'dispatch', '-r', join(tmp, 'flows.pcap'), '--rules-file', rules, '--no-jit', '--time', '1', '--json');
    expect(bench.status, bench.stderr).toBe(0);
    expect(JSON.parse(bench.stdout.trim().split('\n').pop()!)).toMatchObject({ rules: 8000, matched: 500 - report.default.packets });
  }, 120_000);
});
