// formatProgram prints programs exactly as tcpdump -d / -dd / -ddd do (libpcap's bpf_dump):
//  - every program of the pcap-filter corpus (test/fixtures/filter/libpcap.json, as tcpdump
//    printed it, optimized and not, error cases' compiled sides included);
//  - synthetic programs with every opcode, Linux ancillary offsets and extreme operands,
//    printed by libpcap's bpf_dump() itself (test/fixtures/filter/bpf-dump.json);
//  - live, where tcpdump (and gcc with libpcap-dev) exist: a handful of expressions compiled by
//    tcpdump now, and random programs printed by bpf_dump() now.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { parseDdd, type BpfInstruction } from '../bindings/bpf.js';
import { formatInstruction, formatProgram } from '../bindings/filter/format.js';
import { NetpdError } from '../bindings/errors.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const fixtureDir = join(root, 'test/fixtures/filter');

interface Forms { ddd: string; d: string; dd: string }
interface Case extends Forms { expr: string; optimized: boolean }
interface ErrorSide { status: number; ddd?: string; d?: string; dd?: string }
interface ErrorCase { expr: string; optimized: ErrorSide; unoptimized: ErrorSide }
const corpus = JSON.parse(readFileSync(join(fixtureDir, 'libpcap.json'), 'utf8')) as { cases: Case[]; errors: ErrorCase[] };
const dumps = JSON.parse(readFileSync(join(fixtureDir, 'bpf-dump.json'), 'utf8')) as { programs: (Forms & { name: string })[] };

/** Every program tcpdump printed for the corpus, with a label. */
const printed: (Forms & { label: string })[] = [
  ...corpus.cases.map((c) => ({ ...c, label: `${c.optimized ? '' : '-O '}${c.expr}` })),
  ...corpus.errors.flatMap((e) => (['optimized', 'unoptimized'] as const)
    .filter((side) => e[side].status === 0)
    .map((side) => ({ ddd: e[side].ddd!, d: e[side].d!, dd: e[side].dd!, label: `${side === 'optimized' ? '' : '-O '}${e.expr}` }))),
];

function firstDifference(ours: string, theirs: string): string {
  const a = ours.split('\n');
  const b = theirs.split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) return `line ${i + 1}: ours ${JSON.stringify(a[i])}, libpcap ${JSON.stringify(b[i])}`;
  }
  return 'identical';
}

function mismatches(programs: (Forms & { label: string })[]): string[] {
  const out: string[] = [];
  for (const p of programs) {
    const program = parseDdd(p.ddd);
    for (const form of ['d', 'dd', 'ddd'] as const) {
      const ours = formatProgram(program, form);
      if (ours !== p[form]) out.push(`${p.label} (-${form}): ${firstDifference(ours, p[form])}`);
    }
  }
  return out;
}

describe('formatProgram prints what tcpdump prints', () => {
  it('covers the corpus: at least 2000 programs, every opcode tcpdump emits', () => {
    expect(printed.length).toBeGreaterThanOrEqual(2000);
    const ops = new Set(printed.flatMap((p) => p.d.split('\n').filter(Boolean).map((l) => l.replace(/^\(\d+\) /, '').split(' ')[0])));
    for (const op of ['ld', 'ldh', 'ldb', 'ldx', 'ldxb', 'st', 'stx', 'add', 'sub', 'mul', 'div', 'mod', 'and', 'or', 'xor', 'lsh', 'rsh',
      'neg', 'tax', 'txa', 'ja', 'jeq', 'jgt', 'jge', 'jset', 'ret']) {
      expect(ops, op).toContain(op);
    }
  });

  it('-d, -dd and -ddd of every corpus program, optimized and not', () => {
    expect(mismatches(printed)).toEqual([]);
  });

  it('libpcap\'s bpf_dump() on every opcode, ancillary offsets, extreme operands and 4-digit indexes', () => {
    expect(dumps.programs.length).toBeGreaterThanOrEqual(10);
    expect(mismatches(dumps.programs.map((p) => ({ ...p, label: p.name })))).toEqual([]);
  });

  it('edge cases: empty program, one instruction, trailing whitespace', () => {
    expect(formatProgram([], 'd')).toBe('');
    expect(formatProgram([], 'dd')).toBe('');
    expect(formatProgram([], 'ddd')).toBe('0\n');
    const ret = [{ code: 0x06, jt: 0, jf: 0, k: 262144 }];
    expect(formatProgram(ret, 'd')).toBe('(000) ret      #262144\n');
    expect(formatProgram(ret, 'dd')).toBe('{ 0x6, 0, 0, 0x00040000 },\n');
    expect(formatProgram(ret, 'ddd')).toBe('1\n6 0 0 262144\n');
    expect(formatInstruction({ code: 0x07, jt: 0, jf: 0, k: 0 }, 5)).toBe('(005) tax      ');
    expect(formatInstruction({ code: 0x15, jt: 0, jf: 3, k: 0x800 }, 1)).toBe('(001) jeq      #0x800           jt 2\tjf 5');
    expect(formatInstruction({ code: 0x28, jt: 0, jf: 0, k: 0xfffff004 }, 0)).toBe('(000) ldh      [type]');
    expect(formatInstruction({ code: 0x05, jt: 0, jf: 0, k: 0xffffffff }, 1000)).toBe('(1000) ja       1000');
  });

  it('refuses what is not a program', () => {
    const bad: unknown[] = [
      [{ code: 0x10000, jt: 0, jf: 0, k: 0 }], [{ code: 6, jt: 256, jf: 0, k: 0 }], [{ code: 6, jt: 0, jf: -1, k: 0 }],
      [{ code: 6, jt: 0, jf: 0, k: 2 ** 32 }], [{ code: 6, jt: 0, jf: 0, k: 1.5 }], [{ code: 6, jt: 0, jf: 0 }], [null], 'ret',
    ];
    for (const p of bad) {
      expect(() => formatProgram(p as BpfInstruction[], 'd'), JSON.stringify(p)).toThrow(NetpdError);
    }
    expect(() => formatProgram([], 'dddd' as 'd')).toThrow(/form must be/);
  });
});

// ---------------------------------------------------------------- live
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const hasTcpdump = has('tcpdump');
const canBuild = has('gcc') && existsSync('/usr/include/pcap/pcap.h');
if (!hasTcpdump) console.log('filter-format: tcpdump is not installed; the live tcpdump comparison is skipped (stored fixtures still run)');
if (!canBuild) console.log('filter-format: gcc or libpcap-dev is missing; the live bpf_dump() comparison on random programs is skipped');

describe.skipIf(!hasTcpdump)('formatProgram agrees with tcpdump run now', () => {
  const EXPRS = ['tcp port 80', 'vlan 100 and ip6 and udp portrange 1000-2000', 'ip[2:2] - ((ip[0] & 0xf) << 2) > 100',
    'len % 64 = 0 or len ^ 0x3f = 0', '(- ip[8]) = 0xffffffc0 and ether multicast', 'mpls 16 and mpls 200 and tcp[tcpflags] & tcp-syn != 0',
    'ip6 protochain 6', 'icmp6[icmp6type] = icmp6-echo or arp host 10.1.1.1'];
  it('for a handful of expressions, optimized and not', () => {
    for (const expr of EXPRS) {
      for (const oflag of [[], ['-O']]) {
        const print = (f: string) => {
          const r = spawnSync('tcpdump', ['-y', 'EN10MB', ...oflag, f, '--', expr], { encoding: 'utf8' });
          expect(r.status, `${f} ${expr}: ${r.stderr}`).toBe(0);
          return r.stdout;
        };
        const program = parseDdd(print('-ddd'));
        expect(formatProgram(program, 'ddd'), expr).toBe(print('-ddd'));
        expect(formatProgram(program, 'dd'), expr).toBe(print('-dd'));
        expect(formatProgram(program, 'd'), expr).toBe(print('-d'));
      }
    }
  });
});

describe.skipIf(!canBuild)('formatProgram agrees with libpcap\'s bpf_dump() run now', () => {
  it('on random programs (any 16-bit code, jt, jf, k)', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'netpd-format-'));
    try {
      const bin = join(tmp, 'bpfdump');
      const cc = spawnSync('gcc', ['-O2', '-o', bin, join(fixtureDir, 'bpfdump.c'), '-lpcap'], { encoding: 'utf8' });
      expect(cc.status, cc.stderr).toBe(0);
      const code = fc.oneof(fc.integer({ min: 0, max: 0xff }), fc.integer({ min: 0, max: 0xffff }));
      const k = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0xfffff000, max: 0xfffff050 }), fc.constantFrom(0, 1, 0x7fffffff, 0x80000000));
      const ins = fc.record({ code, jt: fc.integer({ min: 0, max: 255 }), jf: fc.integer({ min: 0, max: 255 }), k });
      const programs = fc.sample(fc.array(ins, { minLength: 1, maxLength: 1200 }), { numRuns: 12, seed: 20261123 });
      for (const [i, program] of programs.entries()) {
        const file = join(tmp, `p${i}.ddd`);
        writeFileSync(file, formatProgram(program, 'ddd'));
        for (const [opt, form] of [['1', 'd'], ['2', 'dd'], ['3', 'ddd']] as const) {
          const r = spawnSync(bin, [opt, file], { encoding: 'utf8', maxBuffer: 64 << 20 });
          expect(r.status, r.stderr).toBe(0);
          const ours = formatProgram(program, form);
          expect(ours === r.stdout, `program ${i} -${form}: ${firstDifference(ours, r.stdout)}`).toBe(true);
        }
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
