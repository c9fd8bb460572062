// GRE version 0 (print-gre.c, gre_print_0) at default verbosity: "GREv0", the key,
// sequence number and offset when present, ", length N: ", then the packet inside
// (IPv4, IPv6, MPLS, or an Ethernet frame for transparent bridging). Source routing
// entries and GRE version 1 (PPTP's enhanced GRE) are not decoded: the caller prints
// its fallback for them.

import { Dissection } from './dissection.js';
import { ip6Print, ipPrint } from './ip.js';
import { etherPrint } from './link.js';
import { mplsPrint } from './mpls.js';

const GRE_CP = 0x8000, GRE_RP = 0x4000, GRE_KP = 0x2000, GRE_SP = 0x1000;

/** gre_print; false for what is not decoded here (nothing printed then). */
export function grePrint(d: Dissection, bp: number, length: number): boolean {
  d.protocol = 'gre';
  if (!d.has(bp, 2) || length < 2) {
    d.trunc();
    return true;
  }
  const flags = d.u16(bp);
  if ((flags & 7) !== 0 || (flags & GRE_RP)) return false;
  d.print('GREv0');
  let len = length - 2;
  bp += 2;
  const field = (n: number): number | undefined => {
    if (!d.has(bp, n) || len < n) {
      d.trunc();
      return undefined;
    }
    const v = n === 2 ? d.u16(bp) : d.u32(bp);
    bp += n;
    len -= n;
    return v;
  };
  const proto = field(2);
  if (proto === undefined) return true;
  if (flags & GRE_CP) {
    if (field(2) === undefined) return true; // the checksum, printed with -v only
    const offset = field(2);
    if (offset === undefined) return true;
    d.print(`, off 0x${offset.toString(16)}`);
  }
  if (flags & GRE_KP) {
    const key = field(4);
    if (key === undefined) return true;
    d.print(`, key=0x${key.toString(16)}`);
  }
  if (flags & GRE_SP) {
    const seq = field(4);
    if (seq === undefined) return true;
    d.print(`, seq ${seq}`);
  }
  d.print(`, length ${length}: `);
  switch (proto) {
    case 0x0800: ipPrint(d, bp, len); break;
    case 0x86dd: ip6Print(d, bp, len); break;
    case 0x8847: mplsPrint(d, bp, len); break;
    case 0x6558: etherPrint(d, bp, len, d.available(bp)); break;
    default: d.print(`gre-proto-0x${proto.toString(16)}`); // IPX, AppleTalk, OSI: not decoded
  }
  return true;
}
