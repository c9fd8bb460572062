// MPLS (print-mpls.c, mpls_print) at default verbosity: the label stack, then the
// packet inside when the bottom label or the first nibble says IPv4 or IPv6. OSI inside
// MPLS is not decoded.

import { Dissection } from './dissection.js';
import { ip6Print, ipPrint } from './ip.js';

export function mplsPrint(d: Dissection, p: number, length: number): void {
  d.protocol = 'mpls';
  d.print('MPLS');
  let entry: number;
  do {
    if (length < 4) {
      d.print(' (invalid)');
      d.need(p, length);
      return;
    }
    entry = d.u32(p);
    d.print(` (label ${entry >>> 12}, tc ${(entry >>> 9) & 7}${entry & 0x100 ? ', [S]' : ''}, ttl ${entry & 0xff})`);
    p += 4;
    length -= 4;
  } while (!(entry & 0x100));
  const label = entry >>> 12;
  let version: number;
  if (label === 0 || label === 3) version = 4;
  else if (label === 2) version = 6;
  else {
    if (length < 1) return;
    const first = d.u8(p);
    version = first >= 0x45 && first <= 0x4f ? 4 : first >= 0x60 && first <= 0x6f ? 6 : 0;
  }
  if (version === 4) {
    d.print(' ');
    ipPrint(d, p, length);
  } else if (version === 6) {
    d.print(' ');
    ip6Print(d, p, length);
  }
}
