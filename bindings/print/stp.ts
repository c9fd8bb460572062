// Spanning tree BPDUs (print-stp.c, stp_print) at default verbosity: the protocol, the
// BPDU type, and for configuration BPDUs the flags, bridge id and port; for MSTP the
// CIST flags. The multi-line details tcpdump prints with -v are not printed.

import { Dissection, tok } from './dissection.js';

const PROTOCOLS: ReadonlyMap<number, string> = new Map([[0, '802.1d'], [2, '802.1w'], [3, '802.1s'], [4, '802.1aq']]);
const BPDU_TYPES: ReadonlyMap<number, string> = new Map([[0x00, 'Config'], [0x02, 'Rapid STP'], [0x80, 'Topology Change']]);
const FLAGS: readonly [number, string][] = [
  [0x01, 'Topology change'], [0x02, 'Proposal'], [0x10, 'Learn'], [0x20, 'Forward'], [0x40, 'Agreement'], [0x80, 'Topology change ACK'],
];
/** sizeof(struct stp_bpdu_): the configuration BPDU and the v1 length byte. */
const STP_BPDU_LEN = 36;
const STP_BPDU_MSTP_MIN_LEN = 102;
const SPB_BPDU_MIN_LEN = 87;

/** bittok2str: the names of the set bits joined by ", ", or "none". */
function flagNames(v: number): string {
  const names = FLAGS.filter(([bit]) => v & bit).map(([, name]) => name);
  return names.length ? names.join(', ') : 'none';
}

function hex(v: number, n: number): string {
  return v.toString(16).padStart(n, '0');
}

export function stpPrint(d: Dissection, p: number, length: number): void {
  d.protocol = 'stp';
  if (length < 4) {
    d.print(' (invalid)');
    return;
  }
  if (d.u16(p) !== 0) {
    d.print(`unknown STP version, length ${length}`);
    return;
  }
  const version = d.u8(p + 2);
  d.print(`STP ${tok(PROTOCOLS, 'Unknown STP protocol (0x%02x)', version)}`);
  if (!PROTOCOLS.has(version)) return;
  const type = d.u8(p + 3);
  d.print(`, ${tok(BPDU_TYPES, 'Unknown BPDU Type (0x%02x)', type)}`);
  const config = (): void => {
    const flags = d.u8(p + 4);
    d.print(`, Flags [${flagNames(flags)}]`);
    let id = `${hex(d.u8(p + 17), 2)}${hex(d.u8(p + 18), 2)}.`;
    for (let i = 19; i < 25; i++) id += (i > 19 ? ':' : '') + hex(d.u8(p + i), 2);
    d.print(`, bridge-id ${id}.${hex(d.u16(p + 25), 4)}, length ${length}`);
  };
  if (type === 0x00) {
    if (length < STP_BPDU_LEN - 1) return d.print(' (invalid)');
    config();
  } else if (type === 0x02) {
    if (version === 2) {
      if (length < STP_BPDU_LEN) return d.print(' (invalid)');
      config();
    } else if (version === 3 || version === 4) {
      if (length < STP_BPDU_MSTP_MIN_LEN || d.u8(p + 35) !== 0) return d.print(' (invalid)');
      const mstpLen = d.u16(p + 36) + 2;
      if (length < STP_BPDU_LEN + mstpLen) return d.print(' (invalid)');
      d.print(`, CIST Flags [${flagNames(d.u8(p + 4))}], length ${length}`);
      // 802.1aq (SPB) adds a part tcpdump prints only with -v, after checking its length.
      if (version === 4) {
        const spbLen = d.u16(p + 36 + mstpLen) + 2;
        if (length < STP_BPDU_LEN + mstpLen + spbLen || spbLen < SPB_BPDU_MIN_LEN) d.print(' (invalid)');
      }
    }
  }
}
