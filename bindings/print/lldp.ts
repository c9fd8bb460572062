// LLDP (print-lldp.c, lldp_print) at default verbosity: "LLDP, length N" and the system
// name, which tcpdump prints even without -v; the TLVs are walked only to find it and to
// stop where tcpdump stops on a truncated one.

import { Dissection, printableChar } from './dissection.js';

const LLDP_SYSTEM_NAME_TLV = 5;

export function lldpPrint(d: Dissection, p: number, len: number): void {
  d.protocol = 'lldp';
  d.print(`LLDP, length ${len}`);
  let tlen = len;
  while (tlen >= 2) {
    const tlv = d.u16(p);
    const type = tlv >> 9;
    const tlvLen = tlv & 0x1ff;
    tlen -= 2;
    p += 2;
    if (!type || !tlvLen) break;
    if (!d.has(p, tlvLen) || tlen < tlvLen) return d.trunc();
    if (type === LLDP_SYSTEM_NAME_TLV) {
      // nd_printjnp: up to tlvLen characters, stopping at a NUL.
      d.print(': ');
      for (let i = 0; i < tlvLen; i++) {
        const c = d.u8(p + i);
        if (c === 0) break;
        d.print(printableChar(c));
      }
    }
    tlen -= tlvLen;
    p += tlvLen;
  }
}
