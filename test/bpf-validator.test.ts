import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { validateProgram, runFilter, parseDdd, BpfFilter, type BpfInstruction } from '../bindings/bpf.js';
import { Arena } from '../bindings/arena.js';
import { modelFilter, VALID_CODES } from './support/bpf-model.js';

const ret = (k = 0): BpfInstruction => ({ code: 0x06, jt: 0, jf: 0, k });
const I = (code: number, k = 0, jt = 0, jf = 0): BpfInstruction => ({ code, jt, jf, k });

function rejects(program: BpfInstruction[], rule: RegExp, instruction?: number) {
  try {
    validateProgram(program);
  } catch (e) {
    const err = e as { code: string; message: string; details: Record<string, unknown> };
    expect(err.code).toBe('EBADPROG');
    expect(err.message).toMatch(rule);
    if (instruction !== undefined) expect(err.details.instruction).toBe(instruction);
    return;
  }
  throw new Error('program was accepted');
}

describe('classic BPF validator (Linux bpf_check_classic rules)', () => {
  it('rejects empty and over-long programs', () => {
    rejects([], /1 to 4096/);
    rejects(Array.from({ length: 4097 }, () => ret()), /1 to 4096/);
    expect(() => validateProgram(Array.from({ length: 4096 }, () => ret()))).not.toThrow();
  });
  it('rejects unknown opcodes, naming the instruction', () => {
    rejects([I(0x00), I(0x0e), ret()], /unknown or unsupported opcode/, 1);   // ret x is not Linux classic BPF
    rejects([I(0x08, 1), ret()], /unknown or unsupported opcode/, 0);        // ld.h #k
    rejects([I(0xffff), ret()], /unknown or unsupported opcode/, 0);
  });
  it('rejects division and modulo by constant zero but not by X', () => {
    rejects([I(0x34, 0), ret()], /division or modulo by constant zero/, 0);
    rejects([I(0x94, 0), ret()], /division or modulo by constant zero/, 0);
    expect(() => validateProgram([I(0x3c), ret()])).not.toThrow();
  });
  it('rejects constant shifts of 32 or more', () => {
    rejects([I(0x64, 32), ret()], /shift/, 0);
    rejects([I(0x74, 0xffffffff), ret()], /shift/, 0);
    expect(() => validateProgram([I(0x64, 31), ret()])).not.toThrow();
  });
  it('rejects scratch memory indices outside 0..15', () => {
    rejects([I(0x02, 16), ret()], /scratch memory index/, 0);
    rejects([I(0x03, 99), ret()], /scratch memory index/, 0);
  });
  it('rejects jumps that leave the program', () => {
    rejects([I(0x05, 1), ret()], /jump target/, 0);
    rejects([I(0x15, 0, 1, 0), ret()], /jump target/, 0);
    rejects([I(0x15, 0, 0, 1), ret()], /jump target/, 0);
    expect(() => validateProgram([I(0x15, 0, 0, 1), ret(1), ret()])).not.toThrow();
  });
  it('rejects unknown ancillary loads and accepts the known ones', () => {
    rejects([I(0x20, 0xfffff000 + 64), ret()], /ancillary/, 0);
    rejects([I(0x28, 0xfffff000 + 2), ret()], /ancillary/, 0);
    expect(() => validateProgram([I(0x30, 0xfffff000 + 48), ret()])).not.toThrow();
  });
  it('requires a return as the last instruction', () => {
    rejects([ret(), I(0x00)], /last instruction must be a return/, 1);
  });
  it('rejects reading scratch memory that some path has not stored', () => {
    rejects([I(0x60, 3), ret()], /read before it is stored/, 0);
    // Stored on one branch only.
    rejects([I(0x15, 0, 0, 1), I(0x02, 5), I(0x61, 5), ret()], /read before it is stored/, 2);
    expect(() => validateProgram([I(0x02, 5), I(0x15, 0, 0, 1), I(0x00, 1), I(0x61, 5), ret()])).not.toThrow();
  });
  it('rejects malformed fields and -ddd text', () => {
    expect(() => validateProgram([{ code: 6, jt: 0, jf: 256, k: 0 }])).toThrow(/jt and jf 0..255/);
    expect(() => parseDdd('2\n6 0 0 0\n')).toThrow(expect.objectContaining({ code: 'EBADPROG' }));
    expect(() => parseDdd('1\n6 0 x 0\n')).toThrow(/not an integer/);
  });
});

// Random programs built from valid opcodes with forward jumps; many are rejected by
// the validator (that is fine), the rest must run without trapping or hanging, agree
// with the model of libpcap, and never look at bytes past the captured length.
const insn = fc.record({
  code: fc.constantFrom(...VALID_CODES),
  jt: fc.nat(6),
  jf: fc.nat(6),
  k: fc.oneof(fc.nat(80), fc.nat(15), fc.constant(0xfffffff0), fc.integer({ min: 0, max: 0xffffffff })),
});
const program = fc.array(insn, { minLength: 1, maxLength: 24 }).map((p) => [...p, { code: 0x16, jt: 0, jf: 0, k: 0 }]);
const packet = fc.uint8Array({ minLength: 0, maxLength: 96 });

describe('classic BPF interpreter on random programs', () => {
  it('agrees with the libpcap model and never reads past the captured bytes', () => {
    const arena = Arena.create({ slotSize: 128, slotCount: 1, controlBytes: 8 * 1024 * 1024 });
    const vec = arena.burstVector(1);
    const out = arena.burstVector(1);
    arena.allocBurst(vec, 1);
    let ran = 0;
    fc.assert(
      fc.property(program, packet, fc.nat(200), (prog, bytes, extraWire) => {
        try {
          validateProgram(prog);
        } catch (e) {
          expect((e as { code: string }).code).toBe('EBADPROG');
          return;
        }
        ran++;
        const wire = bytes.length + extraWire;
        const [verdict] = runFilter(prog, [{ data: bytes, wireLen: wire }]);
        expect(verdict).toBe(modelFilter(prog, bytes, bytes.length, wire));
        // In a slot whose bytes past the packet are garbage, two different garbage
        // patterns must give the same verdict: nothing past caplen was read.
        const filter = new BpfFilter(arena, prog);
        for (const fill of [0x00, 0xff, 0x5a]) {
          arena.bytes.fill(fill, arena.dataOffset(vec[0]), arena.dataOffset(vec[0]) + arena.slotSize);
          arena.bytes.set(bytes, arena.dataOffset(vec[0]));
          arena.setPacket(vec[0], bytes.length, wire, 0, 0, 0);
          filter.run(vec, 1, out);
          expect(out[0]).toBe(verdict);
        }
      }),
      { numRuns: 4000, seed: 20261123 },
    );
    expect(ran).toBeGreaterThan(200);
  });
});
