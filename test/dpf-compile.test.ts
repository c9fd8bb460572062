// pcap-filter expressions → DPF descriptions (bindings/dpf/compile.ts, from-bpf.ts),
// checked against the classic BPF program they come from: on every packet of every
// reference capture, and on copies of them cut short (runts, and cuts inside each
// header), some description matches (bindings/dpf/evaluate.ts) exactly when netpd's BPF
// interpreter accepts. Over both corpora every expression either has such descriptions
// or is refused with EFILTER naming the construct that DPF cannot say.
import { describe, it, expect } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { compileFilter } from '../bindings/filter/compile.js';
import { runFilter, type BpfInstruction } from '../bindings/bpf.js';
import { NetpdError } from '../bindings/errors.js';
import { PcapReader } from '../bindings/pcap/index.js';
import { formatDescription, type CanonicalAtom } from '../bindings/dpf/description.js';
import { matchDescription } from '../bindings/dpf/evaluate.js';
import { bpfToDpf, BPF_MAX_PATHS, DPF_MAX_DESCRIPTIONS } from '../bindings/dpf/from-bpf.js';
import { compileDpf } from '../bindings/dpf/compile.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const expressions = [...new Set(['test/fixtures/bpf/libpcap.json', 'test/fixtures/filter/libpcap.json']
  .flatMap((f) => (JSON.parse(readFileSync(join(root, f), 'utf8')) as { cases: { expr: string }[] }).cases.map((c) => c.expr)))];

// Every packet of every capture, and copies cut at header boundaries and just short of
// their end: where a BPF load and a DPF compare past the captured bytes must agree.
const CUTS = [0, 1, 6, 12, 13, 14, 15, 17, 18, 20, 21, 22, 23, 24, 26, 28, 30, 33, 34, 36, 38, 41, 42, 46, 50, 54, 55, 56, 58, 62];
const capturesDir = join(root, 'test/fixtures/captures');
const packets = readdirSync(capturesDir).filter((f) => f.endsWith('.pcap')).sort()
  .flatMap((f) => PcapReader.readAllFromFile(join(capturesDir, f)).map((p) => p.data));
const inputs = packets.flatMap((p) => [p, ...[...new Set([...CUTS, p.length - 1, p.length >> 1])].filter((n) => n >= 0 && n < p.length).map((n) => p.subarray(0, n))]);

/** How many inputs the descriptions and the program disagree on, and the first of them. */
function disagreements(descriptions: CanonicalAtom[][], program: BpfInstruction[], on: readonly Uint8Array[] = inputs): { count: number; first?: string } {
  const verdicts = runFilter(program, on);
  let count = 0;
  let first: string | undefined;
  on.forEach((p, i) => {
    const dpf = descriptions.some((d) => matchDescription(d, p));
    if (dpf === (verdicts[i] !== 0)) return;
    count++;
    first ??= `${p.length}-byte input ${Buffer.from(p.subarray(0, 64)).toString('hex')}: DPF ${dpf}, BPF ${verdicts[i]}`;
  });
  return { count, first };
}

/** compileDpf's error, or undefined when it succeeds. */
function refusalOf(expr: string): NetpdError | undefined {
  try {
    compileDpf(expr);
  } catch (e) {
    if (e instanceof NetpdError) return e;
    throw e;
  }
  return undefined;
}

// The constructs a refusal may name, by a short label: one must match every message.
const CONSTRUCTS: [string, RegExp][] = [
  ['not of an equality', /`not` of an equality \(jeq false edge on \[.+?:[124]\]( & 0x[0-9a-f]+)? = 0x[0-9a-f]+\)/],
  ['len', /length tests \(len\)/],
  ['range test', /a range test \(jg[te]\) on \[/],
  ['arithmetic', /arithmetic on (a loaded value|a header length) \((add|sub|mul|div|or|and|lsh|rsh|neg|mod|xor) on /],
  ['several bits set', /a test that one of several bits is set \(jset true edge on /],
  ['two computed values', /a comparison of two values computed from the packet/],
  ['computed offset', /a load at an offset computed from the packet/],
  ['offset past 65535', /a load at offset \d+, past the largest offset a DPF atom can name/],
  ['division by a loaded value', /a division by a value computed from the packet/],
  ['test on a header length', /a test on a header length/],
  ['two header lengths', /headers at two variable offsets/],
  ['accepts nothing', /expression accepts nothing/],
  ['accepts everything', /the program accepts packets without testing any field/],
  ['too many', /more than \d+ (paths|DPF descriptions)/],
];
const constructOf = (message: string): string | undefined => CONSTRUCTS.find(([, re]) => re.test(message))?.[0];

describe('compileDpf on the 5-tuple', () => {
  const fiveTuple = [
    { kind: 'compare', offset: 12, size: 2, mask: 0xffff, value: 0x0800 }, // ethertype IPv4
    { kind: 'compare', offset: 20, size: 2, mask: 0x1fff, value: 0 }, // not a later fragment
    { kind: 'compare', offset: 23, size: 1, mask: 0xff, value: 6 }, // ip proto TCP
    { kind: 'compare', offset: 26, size: 4, mask: 0xffffffff, value: 0x0a000001 }, // src 10.0.0.1
    { kind: 'compare', offset: 30, size: 4, mask: 0xffffffff, value: 0x0a000002 }, // dst 10.0.0.2
    { kind: 'shift', offset: 14, size: 1, mask: 0x0f, scale: 4, add: 0 }, // skip the IPv4 header (IHL words)
    { kind: 'compare', offset: 14, size: 2, mask: 0xffff, value: 1234 }, // src port, 14 + header length
    { kind: 'compare', offset: 16, size: 2, mask: 0xffff, value: 80 }, // dst port
  ];

  it('is one description: ethertype, fragment offset, protocol, addresses, the IHL shift, ports', () => {
    const d = compileDpf('tcp and src host 10.0.0.1 and dst host 10.0.0.2 and src port 1234 and dst port 80');
    expect(d).toEqual([fiveTuple]);
    expect(formatDescription(d[0])).toBe('[12:2] = 0x800 and [20:2] & 0x1fff = 0x0 and [23:1] = 0x6 and [26:4] = 0xa000001' +
      ' and [30:4] = 0xa000002 and shift ([14:1] & 0xf) * 4 and [14:2] = 0x4d2 and [16:2] = 0x50');
  });

  it('does not depend on the order the expression names the fields in', () => {
    expect(compileDpf('dst port 80 and src port 1234 and dst host 10.0.0.2 and src host 10.0.0.1 and tcp')).toEqual([fiveTuple]);
    expect(compileDpf('src port 1234 and tcp and dst host 10.0.0.2 and dst port 80 and src host 10.0.0.1')).toEqual([fiveTuple]);
  });
});

describe('compileDpf expresses conjunctions of equalities, and disjunctions of them', () => {
  // [expression, how many descriptions]
  const expressible: [string, number][] = [
    ['tcp and src host 10.0.0.1 and dst host 10.0.0.2 and src port 1234 and dst port 80', 1],
    ['udp and dst host 10.99.0.1 and src host 10.20.0.1 and dst port 53 and src port 5353', 1],
    ['src port 40000 and udp and dst port 53 and src host 192.168.1.10 and dst host 10.1.1.1', 1],
    ['arp and arp[6:2] = 1', 1],
    ['ip6 and udp dst port 53', 1],
    ['ether dst 01:02:03:04:05:06', 1],
    ['vlan 100 and ip', 3], // 802.1Q, 802.1ad and 0x9100 outer tags
    ['ip proto 47', 1],
    ['icmp', 1],
    ['tcp dst port 22', 2], // IPv6, IPv4
    ['udp port 53', 4], // IPv6 and IPv4, source or destination
    ['host 10.0.0.1', 6], // IPv4, ARP and RARP, source or destination
    ['net 10.0.0.0/8', 6],
    ['tcp[13] & 2 != 0', 1], // a single bit: equal to the bit
    ['ether multicast', 1],
    ['ip broadcast', 2],
    ['udp dst port 53 or udp src port 53', 4],
    ['host 10.1.1.2 or host 192.168.1.10', 15], // with guards, see below
  ];
  for (const [expr, count] of expressible) {
    it(`"${expr}": ${count} description(s), agreeing with its program on every input`, () => {
      const d = compileDpf(expr);
      expect(d.map(formatDescription)).toHaveLength(count);
      const { count: bad, first } = disagreements(d, compileFilter(expr, { optimize: false }));
      expect(bad, first).toBe(0);
    });
  }

  it('reads a field the description does not test only through a guard that says the packet holds it', () => {
    // After "src = 192.168.1.10" the program has already read dst [30:4] for 10.1.1.2: a
    // packet cut before byte 34 is rejected, so the description needs byte 33 either way.
    const d = compileDpf('host 10.1.1.2 or host 192.168.1.10').map(formatDescription);
    expect(d).toContain('[12:2] = 0x800 and [26:4] = 0xc0a8010a and [33:1] & 0x80 = 0x0');
    expect(d).toContain('[12:2] = 0x800 and [26:4] = 0xc0a8010a and [33:1] & 0x80 = 0x80');
    // A compare close enough is widened instead: src port [14:2] made to reach [16:2].
    expect(compileDpf('udp dst port 53 or udp src port 53').map(formatDescription))
      .toContain('[12:2] = 0x800 and [20:2] & 0x1fff = 0x0 and [23:1] = 0x11 and shift ([14:1] & 0xf) * 4 and [14:4] & 0xffff0000 = 0x350000');
  });
});

describe('compileDpf refuses what DPF cannot say, naming the construct', () => {
  const refused: [string, RegExp][] = [
    ['not arp', /^EFILTER: "not arp" has no DPF form: `not` of an equality \(jeq false edge on \[12:2\] = 0x806\) cannot be expressed in DPF \(instruction 1\)$/],
    ['greater 100', /length tests \(len\) cannot be expressed/],
    ['less 64', /length tests \(len\) cannot be expressed/],
    ['tcp portrange 1-100', /a range test \(jg[et]\) on \[(56|4\*\(\[14\]&0xf\) \+ 14):2\] cannot be expressed/],
    ['ip[2:2] > 100', /a range test \(jgt\) on \[16:2\] cannot be expressed/],
    ['ip[2:2] - 20 = 40', /arithmetic on a loaded value \(sub on \[16:2\]\) cannot be expressed/],
    ['ip multicast', /a range test \(jge\) on \[30:1\]/],
    ['tcp[13] & 3 != 0', /`not` of an equality \(jeq false edge on \[4\*\(\[14\]&0xf\) \+ 27:1\] & 0x3 = 0x0\)/],
    ['ip[6:2] & 0x1fff != 0', /`not` of an equality/],
    ['ip[0] & ip[1] = 1', /arithmetic on a loaded value \(and on \[14:1\]\)/],
    ['tcp[tcp[0] & 0xf] = 1', /a load at an offset computed from the packet/],
    ['ip[2] / ip[3] = 1', /a division by a value computed from the packet/],
    ['ip[0] = 4294967295', /expression accepts nothing/],
    ['ether proto 0', /a range test \(jgt\) on \[12:2\]/],
    ['1 = 1', /accepts packets without testing any field/],
    ['vlan and ip proto 17 or ip', /\(dropping it would accept packets cut before byte 28, which the other branch rejects\)/],
  ];
  for (const [expr, message] of refused) {
    it(`"${expr}"`, () => {
      const e = refusalOf(expr);
      expect(e?.code).toBe('EFILTER');
      expect(e?.message).toMatch(message);
      expect(e?.message).toContain(`"${expr}" has no DPF form: `);
    });
  }

  it(`past ${DPF_MAX_DESCRIPTIONS} descriptions`, () => {
    const ports = Array.from({ length: 17 }, (_, i) => `port ${i + 1}`).join(' or ');
    expect(refusalOf(ports)?.message).toMatch(/needs more than 64 DPF descriptions/);
  });

  it('passes compileFilter\'s own errors through', () => {
    expect(refusalOf('tcp port 80 and')?.message).toMatch(/syntax error/);
  });
});

describe('bpfToDpf on hand-written programs', () => {
  const ld = (k: number) => ({ code: 0x30, jt: 0, jf: 0, k }); // ldb [k]
  const ret = (k: number) => ({ code: 0x06, jt: 0, jf: 0, k });

  it('reads any nonzero return as acceptance, and refuses `ret a`', () => {
    const arpOp = [{ code: 0x28, jt: 0, jf: 0, k: 12 }, { code: 0x15, jt: 0, jf: 1, k: 0x806 }, ret(1), ret(0)];
    expect(bpfToDpf(arpOp).map(formatDescription)).toEqual(['[12:2] = 0x806']);
    expect(() => bpfToDpf([ld(0), { code: 0x16, jt: 0, jf: 0, k: 0 }])).toThrow(/a return value computed from the packet \(ret a\)/);
  });

  it('refuses programs that accept nothing or everything', () => {
    expect(() => bpfToDpf([ret(0)])).toThrow(/accepts nothing/);
    expect(() => bpfToDpf([ret(65535)])).toThrow(/accepts packets without testing any field/);
  });

  it('reads jset: a clear mask on the false edge, a single bit on the true edge', () => {
    const multicast = [ld(0), { code: 0x45, jt: 0, jf: 1, k: 1 }, ret(1), ret(0)];
    expect(bpfToDpf(multicast).map(formatDescription)).toEqual(['[0:1] & 0x1 = 0x1']);
    const unicast = [ld(0), { code: 0x45, jt: 1, jf: 0, k: 1 }, ret(1), ret(0)];
    expect(bpfToDpf(unicast).map(formatDescription)).toEqual(['[0:1] & 0x1 = 0x0']);
    const anyOfTwo = [ld(0), { code: 0x45, jt: 0, jf: 1, k: 3 }, ret(1), ret(0)];
    expect(() => bpfToDpf(anyOfTwo)).toThrow(/a test that one of several bits is set \(jset true edge on \[0:1\] & 0x3\)/);
  });

  it('refuses programs the kernel refuses, with EBADPROG', () => {
    expect(() => bpfToDpf([{ code: 0x15, jt: 5, jf: 0, k: 0 }, ret(0)])).toThrow(/EBADPROG/);
  });

  it(`stops after ${BPF_MAX_PATHS} paths`, () => {
    // 13 independent one-bit tests: 8192 paths, every one rejecting.
    const chain = Array.from({ length: 13 }, (_, i) => [ld(i), { code: 0x45, jt: 0, jf: 0, k: 1 }]).flat();
    expect(() => bpfToDpf([...chain, ret(0)])).toThrow(/more than 4096 paths/);
  });
});

describe('over the corpora of test/fixtures/bpf and test/fixtures/filter', () => {
  // With the optimizer too (tcpdump's default): then the descriptions follow the
  // optimized program, which can differ from the unoptimized one on packets cut short.
  for (const optimize of [false, true]) {
    it(`every expression has descriptions that agree with its ${optimize ? 'optimized' : 'unoptimized'} program, or a refusal naming the construct`, () => {
      let compiled = 0;
      let descriptions = 0;
      const expressed: string[] = [];
      const mismatches: string[] = [];
      const unnamed: string[] = [];
      const reasons = new Map<string, number>();
      for (const expr of expressions) {
        let program: BpfInstruction[];
        try {
          program = compileFilter(expr, { optimize });
        } catch {
          continue; // not netpd's to compile (test/filter-compile.test.ts says which and why)
        }
        compiled++;
        let d: CanonicalAtom[][];
        try {
          d = compileDpf(expr, { optimize });
        } catch (e) {
          if (!(e instanceof NetpdError) || e.code !== 'EFILTER') throw e;
          const construct = constructOf(e.message);
          if (!construct) unnamed.push(e.message);
          else reasons.set(construct, (reasons.get(construct) ?? 0) + 1);
          continue;
        }
        expressed.push(expr);
        descriptions += d.length;
        const { count, first } = disagreements(d, program);
        if (count > 0) mismatches.push(`"${expr}": ${count} inputs, first ${first}`);
      }
      if (!optimize) {
        console.log(`dpf-compile: ${expressed.length} of ${compiled} corpus expressions netpd compiles have a DPF form ` +
          `(${descriptions} descriptions), checked on ${inputs.length} inputs; refused: ` +
          [...reasons].sort((a, b) => b[1] - a[1]).map(([construct, n]) => `${n} ${construct}`).join(', '));
      }
      expect(mismatches).toEqual([]);
      expect(unnamed).toEqual([]);
      expect(expressed.length).toBeGreaterThanOrEqual(700);
    });
  }
});

// ---- random expressions ------------------------------------------------------------------

// Primitives that match packets of the captures, combined with and/or/not: the walk's
// rules for dropping inequalities (implied, rejoined, covered) are exercised on shapes
// the corpora do not hold. Checked on every 8th input to keep the run short.
const PRIMITIVES = [
  'tcp', 'udp', 'ip', 'ip6', 'arp', 'icmp', 'icmp6', 'vlan', 'vlan 100', 'mpls', 'pppoes', 'sctp',
  'host 10.1.1.1', 'src host 10.20.0.1', 'dst net 10.99.0.0/16', 'host fd99::2', 'host 192.168.1.10',
  'port 53', 'src port 80', 'tcp dst port 8080', 'udp port 1500', 'ip proto 47', 'ether broadcast',
  'ether multicast', 'ether host 02:42:ac:11:00:02', 'tcp[13] & 2 != 0', 'ip[6:2] & 0x1fff = 0', 'ip6[6] = 58',
];
const expression: fc.Arbitrary<string> = fc.letrec<{ e: string }>((tie) => ({
  e: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(...PRIMITIVES),
    fc.tuple(tie('e'), fc.constantFrom('and', 'or'), tie('e')).map(([a, op, b]) => `(${a}) ${op} (${b})`),
    tie('e').map((a) => `not (${a})`),
  ),
})).e;

describe('random expressions', () => {
  it('have descriptions that agree with their program, or a refusal naming the construct', () => {
    const sample = inputs.filter((_, i) => i % 8 === 0);
    let expressed = 0;
    fc.assert(fc.property(expression, (expr) => {
      let program: BpfInstruction[];
      try {
        program = compileFilter(expr, { optimize: false });
      } catch {
        return; // libpcap refuses it too (`mpls and vlan 100`, ...)
      }
      let d: CanonicalAtom[][];
      try {
        d = compileDpf(expr);
      } catch (e) {
        if (!(e instanceof NetpdError) || e.code !== 'EFILTER') throw e;
        expect(constructOf(e.message), e.message).toBeDefined();
        return;
      }
      expressed++;
      const { count, first } = disagreements(d, program, sample);
      expect(count, `${expr}: ${first}`).toBe(0);
    }), { numRuns: 1500, seed: 2024 });
    expect(expressed).toBeGreaterThan(400);
  });
});

// Small random classic BPF programs, of every shape the walk reads (loads, masks and
// constants, ldxb and x-relative loads, scratch memory, tax/txa, all four jumps, returns),
// run on short packets whose bytes take few values, so that tests both pass and fail.
const OPERATIONS: [number[], number[]][] = [
  [[0x30, 0x28, 0x20], [0, 1, 2, 4, 6, 8, 10]], // ldb/ldh/ld [k]
  [[0x50, 0x48], [0, 1, 2, 4, 6]], // ldb/ldh [x + k]
  [[0xb1], [0, 2, 5]], // ldxb 4*([k]&0xf)
  [[0x54, 0x14, 0x04, 0x44, 0x5c, 0x1c], [0, 1, 2, 3, 0x80, 0xf0]], // and/sub/add/or #k, and/sub x
  [[0x00, 0x01, 0x07, 0x87, 0x02, 0x03, 0x60, 0x61], [0, 1]], // ld/ldx #k, tax, txa, st/stx/ld/ldx M[k]
  [[0x15, 0x15, 0x45, 0x25, 0x35, 0x1d], [0, 1, 2, 3, 0x10, 0x80, 0x101]], // jeq/jset/jgt/jge #k, jeq x
  [[0x06], [0, 1]], // ret #k
];
const instruction = fc.tuple(fc.nat(OPERATIONS.length - 1), fc.nat(), fc.nat(), fc.nat(), fc.nat())
  .map(([op, c, k, jt, jf]) => ({ code: OPERATIONS[op][0][c % OPERATIONS[op][0].length], k: OPERATIONS[op][1][k % OPERATIONS[op][1].length], jt, jf }));
const program = fc.array(instruction, { minLength: 1, maxLength: 11 }).map((body): BpfInstruction[] => [
  ...body.map((ins, pc) => (ins.code & 7) === 5 ? { ...ins, jt: ins.jt % (body.length - pc), jf: ins.jf % (body.length - pc) } : { ...ins, jt: 0, jf: 0 }),
  { code: 0x06, jt: 0, jf: 0, k: 1 },
]);
const shortPackets = fc.array(fc.uint8Array({ maxLength: 14 }).map((p) => p.map((b) => b & 0x83)), { minLength: 30, maxLength: 60 });

describe('random classic BPF programs', () => {
  it('have descriptions that agree with them, or a refusal naming the construct', () => {
    let expressed = 0;
    fc.assert(fc.property(program, shortPackets, (prog, packets) => {
      let d: CanonicalAtom[][];
      try {
        d = bpfToDpf(prog);
      } catch (e) {
        if (!(e instanceof NetpdError) || (e.code !== 'EFILTER' && e.code !== 'EBADPROG')) throw e;
        if (e.code === 'EFILTER') expect(constructOf(e.message), e.message).toBeDefined();
        return;
      }
      expressed++;
      const { count, first } = disagreements(d, prog, packets);
      expect(count, `${JSON.stringify(prog)}: ${first}`).toBe(0);
    }), { numRuns: 15000, seed: 99 });
    expect(expressed).toBeGreaterThan(3000);
  });
});
