// netpd's verbs on captures of every link type the compiler knows, against libpcap's
// verdicts and programs (test/fixtures/linktypes/make-fixtures.mjs): `filter` finds what
// tcpdump finds (never a silent empty answer), `run` compiles its rules for the file's
// link type, `compile -y` prints what `tcpdump -r FILE -d` prints for that link type, a
// pcapng with several link types is filtered per interface (and refused by run), an
// unsupported link type is ENOTSUP naming it; `filter -v` prints tcpdump -n's lines
// (test/fixtures/print/tcpdump-lines.mjs).
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PcapReader, PcapWriter } from '../bindings/pcap/index.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const cli = process.env.NETPD_CLI ?? join(root, 'dist/cli.js'); // NETPD_CLI: another build of the command (one with a bug put in on purpose)
const inZone = (tz: string, ...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd: root, env: { ...process.env, TZ: tz } });
const netpd = (...args: string[]) => inZone('UTC', ...args);
const tmp = mkdtempSync(join(tmpdir(), 'netpd-cli-lt-'));
const dir = join(root, 'test/fixtures/linktypes');

type Result = [{ ddd: string; accepted: number[] }, { accepted: number[]; error?: string }];
const fixture = JSON.parse(readFileSync(join(dir, 'libpcap.json'), 'utf8')) as { captures: { file: string; linkType: string }[]; corpus: { expr: string }[]; results: Record<string, Result[]> };
const PICKS = ['ip6', 'tcp', 'udp port 53', 'tcp or udp or icmp or icmp6 or sctp or igmp', 'len <= 60'];
const picks = PICKS.map((expr) => ({ expr, i: fixture.corpus.findIndex((c) => c.expr === expr) })).filter(({ i }) => i >= 0);
const single = fixture.captures.filter((c) => !c.file.startsWith('mixed'));
const positions = (out: string) => out.split('\n').filter(Boolean).map(Number);

describe('netpd filter, run and compile on every link type', () => {
  it('filter prints the packets libpcap accepts, for each link type', () => {
    expect(picks.length).toBe(PICKS.length);
    let nonEmpty = 0;
    for (const c of single) {
      for (const { expr, i } of picks) {
        const r = netpd('filter', '-r', join(dir, c.file), expr);
        const want = fixture.results[c.file][i][1].accepted;
        if (r.status === 1 && /EFILTER: expression rejects all packets/.test(r.stderr)) {
          // tcpdump refuses the same (`ip6` on an IPv4-only link type), exit 1.
          expect(fixture.results[c.file][i][1], `${expr} on ${c.file}`).toEqual({ error: 'expression rejects all packets' });
          continue;
        }
        expect(r.status, `${expr} on ${c.file}: ${r.stderr}`).toBe(0);
        expect(positions(r.stdout), `${expr} on ${c.file}`).toEqual(want);
        if (want.length > 0) nonEmpty++;
      }
    }
    expect(nonEmpty).toBeGreaterThan(single.length * 2);
  });

  it('run compiles its rules for the file\'s link type: each owner gets what libpcap accepts', () => {
    for (const c of single) {
      const rules = picks.slice(0, 3).flatMap(({ expr }, k) => ['--rule', `r${k}=${expr}`]);
      // A rule that can match nothing on this link type is refused, as tcpdump refuses it.
      if (picks.slice(0, 3).some(({ i }) => !fixture.results[c.file][i][1].accepted)) continue;
      const r = netpd('run', '-r', join(dir, c.file), ...rules, '--json', '--filter-type', 'bpf');
      expect(r.status, `${c.file}: ${r.stderr}`).toBe(0);
      const owners = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { owners: Record<string, { packets: number }> }).owners;
      // First match wins: owner k gets what rule k accepts and no earlier rule does.
      const taken = new Set<number>();
      picks.slice(0, 3).forEach(({ expr, i }, k) => {
        const mine = fixture.results[c.file][i][1].accepted.filter((n) => !taken.has(n));
        mine.forEach((n) => taken.add(n));
        expect(owners[`r${k}`].packets, `${expr} on ${c.file}`).toBe(mine.length);
      });
    }
  });

  it('compile -r FILE -O prints what tcpdump -r FILE -O prints; -y LINKTYPE the same where a file\'s code is a live one\'s', () => {
    for (const c of single) {
      for (const { expr, i } of picks.slice(0, 2)) {
        const want = fixture.results[c.file][i][0].ddd;
        expect(netpd('compile', '-r', join(dir, c.file), '-O', '-ddd', expr).stdout, `${expr} for ${c.file}`).toBe(want);
        // NULL and LOOP files take every BSD's AF_INET6, and NULL the file's byte order; a live capture only Linux's.
        if (c.linkType !== 'NULL' && c.linkType !== 'LOOP') expect(netpd('compile', '-y', c.linkType, '-O', '-ddd', expr).stdout, `${expr} for ${c.linkType}`).toBe(want);
      }
    }
  });

  it('filter on a pcapng with several link types judges each packet by its interface\'s; run refuses it with ENOTSUP', () => {
    const mixed = join(dir, 'mixed.pcapng');
    const packets = PcapReader.readAllFromFile(mixed);
    const reader = PcapReader.open(mixed);
    const ifaces = reader.interfaces.map((f) => f.linkType);
    reader.close();
    expect(new Set(ifaces).size).toBeGreaterThan(1);
    for (const { expr, i } of picks) {
      // Interface k's packets are, in order, those of mixed-ifK.pcap.
      const rank = new Map<number, number>();
      const want: number[] = [];
      packets.forEach((p, n) => {
        const r = (rank.get(p.ifIndex) ?? 0) + 1;
        rank.set(p.ifIndex, r);
        if (fixture.results[`mixed-if${p.ifIndex}.pcap`][i][1].accepted.includes(r)) want.push(n + 1);
      });
      const r = netpd('filter', '-r', mixed, expr);
      expect(r.status, r.stderr).toBe(0);
      expect(positions(r.stdout), expr).toEqual(want);
    }
    const run = netpd('run', '-r', mixed, '--rule', 'ip=ip');
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/^netpd: ENOTSUP: .*mixed\.pcapng has interfaces of several link types \(EN10MB, LINUX_SLL, RAW\)/);
    expect(run.stdout).toBe('');
  });

  it('a link type netpd cannot compile for is ENOTSUP naming it, never an empty answer', () => {
    const wifi = join(tmp, 'wifi.pcap');
    const w = PcapWriter.create(wifi, { linkType: 105 });
    w.writePacket(new Uint8Array(40), { sec: 1, nsec: 0 });
    w.close();
    for (const args of [['filter', '-r', wifi, 'ip'], ['run', '-r', wifi, '--rule', 'ip=ip'], ['compile', '-y', 'IEEE802_11', 'ip']]) {
      const r = netpd(...args);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(/^netpd: ENOTSUP: .*IEEE802_11/);
      expect(r.stdout, args.join(' ')).toBe('');
    }
    const unknown = netpd('compile', '-y', 'FROB', 'ip');
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/^netpd: EINVAL: unknown link type "FROB"/);
  });
});

describe('netpd filter -v', () => {
  const stored = JSON.parse(readFileSync(join(root, 'test/fixtures/print/tcpdump-lines.json'), 'utf8')) as { captures: { file: string; nano: boolean; tz: string; lines: string[] }[] };

  it('prints each accepted packet as tcpdump -n does, in the local time zone', () => {
    // Captures whose every packet the printer decodes as tcpdump does (test/print*.test.ts
    // lists the kinds it does not yet); tcpdump's lines stored in UTC, and run now in a
    // zone half an hour off when tcpdump is installed.
    const names = ['samples/sample.pcap', 'test/fixtures/captures/veth-sockets.pcap', 'test/fixtures/captures/veth-ping.pcap'];
    const hasTcpdump = spawnSync('sh', ['-c', 'command -v tcpdump']).status === 0;
    const captures = stored.captures.filter((c) => !c.nano && c.tz === 'UTC' && names.includes(c.file));
    if (hasTcpdump) {
      for (const c of captures.slice(1)) {
        const lines = spawnSync('tcpdump', ['-n', '-r', join(root, c.file)], { encoding: 'utf8', env: { ...process.env, TZ: 'Asia/Kolkata' } }).stdout.split('\n').slice(0, -1);
        captures.push({ ...c, tz: 'Asia/Kolkata', lines });
      }
    } else console.log('cli-linktypes: tcpdump is not installed; filter -v is checked in UTC against stored lines only');
    expect(captures.length).toBeGreaterThanOrEqual(names.length);
    for (const c of captures) {
      const netpd = (...args: string[]) => inZone(c.tz, ...args);
      const all = netpd('filter', '-v', '-n', '-r', join(root, c.file), 'ip or not ip');
      expect(all.status, all.stderr).toBe(0);
      expect(all.stdout.split('\n').slice(0, -1), c.file).toEqual(c.lines);
      // With an expression: the lines of the packets it accepts, and nothing else.
      const udp = positions(netpd('filter', '-r', join(root, c.file), 'udp').stdout);
      const some = netpd('filter', '-v', '-r', join(root, c.file), 'udp');
      expect(some.stdout.split('\n').slice(0, -1).length, c.file).toBe(udp.length);
      expect(some.stdout.split('\n').filter(Boolean), c.file).toEqual(udp.map((n) => c.lines[n - 1]));
    }
  });
});
