// compileFilter with `vlanMetadata`: libpcap's code for a live Linux socket filter, where
// the kernel has taken the outer VLAN tag off into metadata, against tcpdump on a live
// interface (test/fixtures/filter-live, made by the script beside it, and, as root with
// tcpdump, tcpdump run now on a veth):
//  1. without the optimizer, netpd's program is `tcpdump -i IFACE -O -ddd`'s, instruction
//     for instruction, and netpd refuses what tcpdump refuses, or what the kernel would;
//  2. with it, netpd's program is `tcpdump -i IFACE -ddd`'s, but for the expressions listed
//     in OPTIMIZED_DIFFERENTLY, each with the reason;
//  3. with it, netpd's program accepts the packets tcpdump's does: every frame of the
//     reference captures as the kernel shows it to a socket filter (an outer 802.1Q or
//     802.1ad tag taken off, its TCI in metadata), run by netpd's interpreter. That
//     interpreter has no ancillary data (a load of [vlanp] or [vlan_tci] rejects the
//     packet there, as in libpcap's bpf_filter), so each program runs with those two
//     loads bound to the frame's metadata: `ld #present` and `ld #tci`;
//  4. expressions without `vlan` compile as they do for files;
//  5. as root with tcpdump (else skipped, saying why): 1 and 2 against tcpdump run now
//     on a veth of a test lab (test/support/netns.mjs), not only against the fixture.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compileFilter } from '../bindings/filter/compile.js';
import { optimizeProgram } from '../bindings/filter/optimize.js';
import { formatDdd, parseDdd, runFilter, validateProgram, type BpfInstruction, type FilterInput } from '../bindings/bpf.js';
import { PcapReader } from '../bindings/pcap/index.js';
import { NetpdError } from '../bindings/errors.js';
import { createLab, labSkipReason, toolSkipReason, type Lab } from './support/netns.mjs';

/** What tcpdump printed for one expression: the -ddd text, or the message it refused it with. */
type Answer = { ddd: string } | { error: string };
interface Case { expr: string; group?: string; optimized: Answer; unoptimized: Answer }
interface Fixture { tcpdump: string; libpcap: string; cases: Case[] }

const fixture = JSON.parse(readFileSync(new URL('./fixtures/filter-live/libpcap-live.json', import.meta.url), 'utf8')) as Fixture;
const onLinux = { vlanMetadata: true } as const;

// Where tcpdump's optimized program and netpd's differ, and why; each is checked on packets (3).
const JSET = "netpd's second pass turns `and #b; jeq #b` (b a single bit) into `jset #b`; tcpdump keeps both (so it does for files)";
const ORDER = 'the same blocks, laid out in another order (so it does for files)';
// libpcap's or_pullup moves the TPID tests, and the stores that shift the offsets with them,
// in front of the metadata test: a frame whose outer tag is in metadata and that carries
// another 0x8100 tag is then looked at 4 bytes too far on. netpd keeps the order.
const MEANING = "libpcap's optimizer changes what the program means; netpd's program means what the unoptimized one does";
const OPTIMIZED_DIFFERENTLY: Record<string, string> = {
  'vlan and ether[0] & 1 = 1': JSET,
  'vlan and mpls and ip6': JSET,
  'vlan and mpls and mpls 3 and ip': JSET,
  'vlan and mpls 5 and mpls 6 and ip': JSET,
  'vlan 7 and mpls 5 and ip6': JSET,
  'mpls and ip': JSET,
  'vlan and dst host 10.0.0.2 and src net 10.0.0.0/24': ORDER,
  'vlan and (ip or ip6) and port 53': ORDER,
  'vlan and src portrange 1000-2000 and dst port 80': ORDER,
  'host 10.0.0.1 and not port 22': ORDER,
  'vlan and ip and ip[2:2] - ((ip[0] & 0xf) << 2) > 100': "tcpdump's `tax` keeps the k (7) of the `ldx M[7]` it replaced, netpd's has k = 0; no machine reads it",
  'vlan and ip[0] & 0xf > 5 and udp port 53': 'netpd keeps `ip[0] & 0xf` in a scratch word where tcpdump computes it again',
  'vlan and 1 + 2 * 3 = 7': 'a test decided by constants: tcpdump keeps `ld #7; jeq #7` with both branches to one place, netpd goes on',
  '(vlan and ip) or ip': 'without the tag in metadata a frame ends in the same test of [16] whatever its TPID: netpd merges the two copies of that test and drops the 0x9100 test that chose between them',
  '(ip or vlan) and vlan': MEANING,
  '(arp or vlan 100) and vlan': MEANING,
};
const LIBPCAP_CHANGES_MEANING = new Set(Object.keys(OPTIMIZED_DIFFERENTLY).filter((e) => OPTIMIZED_DIFFERENTLY[e] === MEANING));

/** libpcap's live code for `vlan` then `pppoes` reads M[1] before storing it: the kernel refuses it, and netpd says so. */
const KERNEL_REFUSES = /kernel refuses: EBADPROG: instruction \d+ \(code 0x60 jt 0 jf 0 k 1\): scratch memory word read before it is stored/;

function ours(expr: string, optimize: boolean): { ddd: string } | { error: NetpdError } {
  try {
    return { ddd: formatDdd(compileFilter(expr, { ...onLinux, optimize })) };
  } catch (e) {
    if (!(e instanceof NetpdError)) throw e;
    return { error: e };
  }
}

/** The ways netpd disagrees with tcpdump's answers (empty when it agrees as 1 and 2 say). */
function disagreements(cases: readonly Case[]): string[] {
  const out: string[] = [];
  for (const c of cases) {
    for (const optimize of [false, true]) {
      const theirs = optimize ? c.optimized : c.unoptimized;
      const mine = ours(c.expr, optimize);
      const what = `"${c.expr}" ${optimize ? '(optimized)' : '(-O)'}`;
      if ('error' in theirs) {
        if (!('error' in mine) || mine.error.code !== 'EFILTER') out.push(`${what}: tcpdump refuses it (${theirs.error}), netpd compiles it`);
      } else if ('error' in mine) {
        // netpd refuses a program tcpdump prints only where the kernel would refuse it too.
        let kernelToo = false;
        try { validateProgram(theirs.ddd); } catch { kernelToo = true; }
        if (!kernelToo || !KERNEL_REFUSES.test(mine.error.message)) out.push(`${what}: netpd refuses it: ${mine.error.message}`);
      } else if (mine.ddd !== theirs.ddd && (!optimize || !(c.expr in OPTIMIZED_DIFFERENTLY))) {
        out.push(`${what}: netpd's program differs from tcpdump's`);
      } else if (mine.ddd === theirs.ddd && optimize && c.expr in OPTIMIZED_DIFFERENTLY) {
        out.push(`${what}: listed in OPTIMIZED_DIFFERENTLY but now tcpdump's program: take it off the list`);
      }
    }
  }
  return out;
}

describe('compileFilter with vlanMetadata agrees with tcpdump on a live Linux interface (fixture)', () => {
  it(`covers at least 40 expressions, vlan in many positions (${fixture.tcpdump}, ${fixture.libpcap})`, () => {
    const withVlan = fixture.cases.filter((c) => /\bvlan\b/.test(c.expr));
    expect(withVlan.length).toBeGreaterThanOrEqual(40);
    expect(fixture.cases.length - withVlan.length).toBeGreaterThanOrEqual(5);
    for (const e of Object.keys(OPTIMIZED_DIFFERENTLY)) expect(fixture.cases.some((c) => c.expr === e), e).toBe(true);
  });

  it("emits tcpdump's program instruction for instruction without the optimizer, and with it but for the listed expressions", () => {
    expect(disagreements(fixture.cases)).toEqual([]);
    const optimized = fixture.cases.filter((c) => 'ddd' in c.optimized && 'ddd' in ours(c.expr, true));
    const same = optimized.filter((c) => !(c.expr in OPTIMIZED_DIFFERENTLY)).length;
    console.log(`filter-live-vlan: ${fixture.cases.length} expressions; optimized, ${same} of ${optimized.length} are tcpdump's program instruction for instruction`);
  });

  it("refuses `vlan` followed by `pppoes`, whose live code (libpcap's too) the kernel's scratch-memory check refuses", () => {
    const refused = fixture.cases.filter((c) => 'error' in ours(c.expr, false) && 'ddd' in c.unoptimized);
    expect(refused.map((c) => c.expr)).toEqual(['vlan and pppoes and ip', 'vlan and pppoes 7 and ip6', 'vlan and pppoes and ip6 and tcp']);
    for (const c of refused) {
      for (const answer of [c.unoptimized, c.optimized]) expect(() => validateProgram((answer as { ddd: string }).ddd), c.expr).toThrow(/read before it is stored/);
    }
  });

  it("compiles expressions without vlan exactly as for files (the fixture's and the file corpora's)", () => {
    const corpora = ['bpf', 'filter'].map((name) => new URL(`./fixtures/${name}/libpcap.json`, import.meta.url)).filter((u) => existsSync(u));
    const exprs = new Set(fixture.cases.map((c) => c.expr));
    for (const u of corpora) for (const c of (JSON.parse(readFileSync(u, 'utf8')) as { cases: { expr: string }[] }).cases) exprs.add(c.expr);
    const outcome = (expr: string, options: object) => {
      try { return formatDdd(compileFilter(expr, options)); } catch (e) { return (e as Error).message; }
    };
    const changed: string[] = [];
    let n = 0;
    for (const expr of [...exprs].filter((e) => !/\bvlan\b/.test(e))) {
      n++;
      for (const optimize of [false, true]) if (outcome(expr, { ...onLinux, optimize }) !== outcome(expr, { optimize })) changed.push(expr);
    }
    expect(n).toBeGreaterThanOrEqual(300);
    expect(changed).toEqual([]);
  });
});

// ---- (3) on packets

/** A frame as a live socket filter sees it, and the metadata its ancillary loads read. */
interface LiveFrame extends FilterInput { present: number; tci: number }

const SKF_AD_VLAN_TAG = 0xfffff000 + 44;
const SKF_AD_VLAN_TAG_PRESENT = 0xfffff000 + 48;

/** Every frame of the reference captures, the outer 802.1Q/802.1ad tag taken off as the kernel does (skb_vlan_untag). */
function liveFrames(): LiveFrame[] {
  const dir = fileURLToPath(new URL('./fixtures/captures/', import.meta.url));
  const frames: LiveFrame[] = [];
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.pcap')).sort()) {
    for (const p of PcapReader.readAllFromFile(dir + name)) {
      const d = p.data;
      const type = d.length >= 14 ? (d[12] << 8) | d[13] : -1;
      if (type !== 0x8100 && type !== 0x88a8) {
        frames.push({ data: Uint8Array.from(d), wireLen: p.wireLen, present: 0, tci: 0 });
      } else if (d.length >= 18) { // shorter, the kernel drops it
        const data = new Uint8Array(d.length - 4);
        data.set(d.subarray(0, 12));
        data.set(d.subarray(16), 12);
        frames.push({ data, wireLen: p.wireLen - 4, present: 1, tci: (d[14] << 8) | d[15] });
      }
    }
  }
  return frames;
}

/** The frames' verdicts (as a string of 0s and 1s) under `program`, its VLAN metadata loads bound to each frame's. */
function verdicts(program: readonly BpfInstruction[], frames: readonly LiveFrame[], groups: Map<string, number[]>): string {
  const out = new Array<string>(frames.length);
  for (const [key, members] of groups) {
    const [present, tci] = key.split(':').map(Number);
    const bound = program.map((s) => (s.code !== 0x30 ? s
      : s.k === SKF_AD_VLAN_TAG_PRESENT ? { code: 0x00, jt: 0, jf: 0, k: present }
      : s.k === SKF_AD_VLAN_TAG ? { code: 0x00, jt: 0, jf: 0, k: tci } : s));
    runFilter(bound, members.map((i) => frames[i])).forEach((v, j) => { out[members[j]] = v === 0 ? '0' : '1'; });
  }
  return out.join('');
}

describe('compileFilter with vlanMetadata accepts what tcpdump accepts, on frames without their outer tag', () => {
  const frames = liveFrames();
  const groups = new Map<string, number[]>();
  frames.forEach((f, i) => {
    const key = `${f.present}:${f.tci}`;
    groups.set(key, [...(groups.get(key) ?? []), i]);
  });

  it('has tagged and untagged frames to judge by', () => {
    expect(frames.filter((f) => f.present).length).toBeGreaterThanOrEqual(30);
    expect(frames.filter((f) => !f.present).length).toBeGreaterThanOrEqual(500);
  });

  it("with the optimizer: the packets tcpdump's optimized program accepts (or, where libpcap's optimizer changes the meaning, its unoptimized one)", () => {
    const mismatches: string[] = [];
    let checked = 0;
    for (const c of fixture.cases) {
      if (!('ddd' in c.optimized) || !('ddd' in c.unoptimized)) continue;
      const mine = ours(c.expr, true);
      if (!('ddd' in mine)) continue;
      checked++;
      const got = verdicts(parseDdd(mine.ddd), frames, groups);
      const optimized = verdicts(parseDdd(c.optimized.ddd), frames, groups);
      if (!LIBPCAP_CHANGES_MEANING.has(c.expr)) {
        if (got !== optimized) mismatches.push(c.expr);
        continue;
      }
      const unoptimized = verdicts(parseDdd(c.unoptimized.ddd), frames, groups);
      if (got !== unoptimized || optimized === unoptimized) mismatches.push(`${c.expr} (libpcap's optimizer should change its meaning here)`);
    }
    expect(checked).toBeGreaterThanOrEqual(150);
    expect(mismatches).toEqual([]);
  });

  it('sees the VLAN id in metadata and in the bytes alike', () => {
    // `vlan 100` on a frame with the tag in metadata, and on one whose 0x9100 tag the kernel left in place.
    const program = compileFilter('vlan 100', onLinux);
    const inner = [0x08, 0x00, ...new Array<number>(40).fill(0)];
    const stripped: LiveFrame = { data: Uint8Array.from([...new Array<number>(12).fill(2), ...inner]), present: 1, tci: 0x2064 };
    const inBytes: LiveFrame = { data: Uint8Array.from([...new Array<number>(12).fill(2), 0x91, 0x00, 0x00, 0x64, ...inner]), present: 0, tci: 0 };
    const other: LiveFrame = { ...stripped, tci: 0x2065 };
    const frames3 = [stripped, inBytes, other];
    expect(verdicts(program, frames3, new Map([['1:8292', [0]], ['0:0', [1]], ['1:8293', [2]]]))).toBe('110');
  });
});

describe('block-local jumps in the optimizer', () => {
  it("keep the VLAN id test's metadata load and `ja` inside their block, as libpcap's optimizer does", () => {
    const program = compileFilter('vlan 100', onLinux);
    const codes = program.map((s) => s.code);
    expect(codes.filter((c) => c === 0x05).length).toBe(1); // the `ja` over `ldh [14]`
    expect(program.filter((s) => s.code === 0x30 && s.k === SKF_AD_VLAN_TAG_PRESENT).length).toBe(2);
  });

  it('are refused when one would leave its block', () => {
    // ldb [0]; jeq #1 jt 0 jf 1 (local, but jf lands past the block's jeq); ld #1; jeq #2 → ret, ret
    const p = [
      { code: 0x30, jt: 0, jf: 0, k: 0 }, { code: 0x15, jt: 0, jf: 2, k: 1 }, { code: 0x00, jt: 0, jf: 0, k: 1 },
      { code: 0x15, jt: 0, jf: 1, k: 2 }, { code: 0x06, jt: 0, jf: 0, k: 1 }, { code: 0x06, jt: 0, jf: 0, k: 0 },
    ];
    expect(() => optimizeProgram(p, { localJumps: new Set([1]) })).toThrow(/block-local jump leaves its block/);
    expect(() => optimizeProgram(p)).not.toThrow();
  });
});

// ---- (5) tcpdump run now on a veth of a test lab

const skip = labSkipReason() ?? toolSkipReason('tcpdump');
if (skip) console.log(`filter-live-vlan: tcpdump run now on a veth: skipped: ${skip}`);

describe.skipIf(skip !== null)('compileFilter with vlanMetadata agrees with tcpdump run now on a veth', () => {
  let lab: Lab;
  beforeAll(async () => { lab = await createLab('vlan'); });
  afterAll(async () => { await lab?.destroy(); });

  const tcpdump = (iface: string, expr: string, optimized: boolean) => new Promise<Answer>((resolve) => {
    execFile('tcpdump', ['-i', iface, ...(optimized ? [] : ['-O']), '-ddd', '--', expr], (err, stdout, stderr) => {
      resolve(err ? { error: String(stderr).trim().split('\n').pop()!.replace(/^tcpdump: /, '') } : { ddd: stdout });
    });
  });

  it('for every expression of the fixture', async () => {
    const cases: Case[] = [];
    const queue = [...fixture.cases];
    await Promise.all([0, 1, 2, 3].map(async () => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        cases.push({ expr: c.expr, optimized: await tcpdump(lab.a, c.expr, true), unoptimized: await tcpdump(lab.a, c.expr, false) });
      }
    }));
    expect(cases.filter((c) => 'ddd' in c.unoptimized).length).toBeGreaterThanOrEqual(150);
    expect(disagreements(cases)).toEqual([]);
  }, 120_000);
});
