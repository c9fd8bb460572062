// IPv4 and IPv6 (print-ip.c, print-ip6.c, print-ip-demux.c) at default verbosity.
//
// Both cut the readable bytes to the datagram's own length (nd_push_snaplen), so that
// Ethernet padding is never read as payload; a first fragment goes to the transport
// printer, a later one prints the addresses and "ip-proto-N". TCP/UDP print the
// addresses themselves (joined with their ports); every other protocol gets
// "src > dst: " here first. IPv6 walks the hop-by-hop, destination-options and fragment
// headers; the routing and mobility headers, and the IP protocols other than TCP, UDP,
// ICMP, ICMPv6, IGMP, GRE, IP-in-IP and "no next header", are not decoded (tcpdump decodes many
// more; their lines differ, see test/print.test.ts).

import { Dissection, ip6String, ipString } from './dissection.js';
import { grePrint } from './gre.js';
import { icmp6Print, icmpPrint } from './icmp.js';
import { igmpPrint } from './igmp.js';
import { tcpPrint } from './tcp.js';
import { udpPrint } from './udp.js';

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
const IPPROTO_ICMP = 1;
const IPPROTO_IGMP = 2;
const IPPROTO_GRE = 47;
const IPPROTO_IPV4 = 4;
const IPPROTO_IPV6 = 41;
const IPPROTO_ICMPV6 = 58;
const IPPROTO_NONE = 59;
const IPPROTO_HOPOPTS = 0;
const IPPROTO_DSTOPTS = 60;
const IPPROTO_FRAGMENT = 44;
const IPPROTO_SCTP = 132;
const IPPROTO_DCCP = 33;

/** tcpdump's ipproto_values, for the "[icmp requires IPv4]"-style complaints. */
const IPPROTO_NAMES: ReadonlyMap<number, string> = new Map([[1, 'ICMP'], [2, 'IGMP'], [58, 'ICMPv6']]);

/** The network header the transport printers look back at (tcpdump passes bp2). */
export interface IpHeader {
  /** 4 or 6. */
  version: 4 | 6;
  /** Offset of the IP header in the packet. */
  off: number;
  /** The protocol/next-header field of the IP header itself (not of the last extension header). */
  headerProto: number;
}

export function addressPair(d: Dissection, ip: IpHeader): [string, string] {
  return ip.version === 4
    ? [ipString(d, ip.off + 12), ipString(d, ip.off + 16)]
    : [ip6String(d, ip.off + 8), ip6String(d, ip.off + 24)];
}

/** ipN_print: IPv4 or IPv6 by the version nibble. */
export function ipNPrint(d: Dissection, off: number, length: number): void {
  d.protocol = 'ipn';
  if (length < 1) {
    d.print(`truncated-ip ${length}`);
    return;
  }
  const v = d.u8(off) & 0xf0;
  if (v === 0x40) ipPrint(d, off, length);
  else if (v === 0x60) ip6Print(d, off, length);
  else d.print(`unknown ip ${v >> 4}`);
}

/** ip_print. */
export function ipPrint(d: Dissection, off: number, length: number): void {
  d.protocol = 'ip';
  const v = d.u8(off) >> 4;
  if (v !== 4) {
    d.print(v === 6 ? 'IP6, wrong link-layer encapsulation' : `IP${v}`);
    d.print(' (invalid)');
    return;
  }
  d.print('IP ');
  d.need(off, 20);
  if (length < 20) {
    d.print(`truncated-ip ${length}`);
    return;
  }
  const hlen = (d.u8(off) & 0x0f) * 4;
  if (hlen < 20) {
    d.print(`bad-hlen ${hlen}`);
    return;
  }
  let len = d.u16(off + 2);
  if (length < len) d.print(`truncated-ip - ${len - length} bytes missing! `);
  if (len < hlen) {
    d.print(`bad-len ${len}`);
    return;
  }
  d.pushSnap(off, len);
  len -= hlen;
  const frag = d.u16(off + 6);
  const proto = d.u8(off + 9);
  const ip: IpHeader = { version: 4, off, headerProto: proto };
  if ((frag & 0x1fff) === 0) {
    if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP && proto !== IPPROTO_SCTP && proto !== IPPROTO_DCCP) {
      d.print(`${ipString(d, off + 12)} > ${ipString(d, off + 16)}: `);
    }
    if (!d.has(off, hlen)) {
      d.print(` [remaining caplen(${d.available(off)}) < header length(${hlen})]`);
      d.trunc();
      return;
    }
    demuxPrint(d, off + hlen, len, ip, (frag & 0x2000) !== 0, proto);
  } else {
    d.print(`${ipString(d, off + 12)} > ${ipString(d, off + 16)}: ip-proto-${proto}`);
  }
  d.popSnap();
}

/** ip_demux_print: the payload of an IPv4 or IPv6 datagram. */
function demuxPrint(d: Dissection, off: number, length: number, ip: IpHeader, fragmented: boolean, nh: number): void {
  const requires = (version: 4 | 6): boolean => {
    if (ip.version === version) return true;
    d.print(`[${IPPROTO_NAMES.get(nh)} requires IPv${version}] (invalid)`);
    return false;
  };
  switch (nh) {
    case IPPROTO_TCP: tcpPrint(d, off, length, ip); return;
    case IPPROTO_UDP: udpPrint(d, off, length, ip, fragmented); return;
    case IPPROTO_ICMP: if (requires(4)) icmpPrint(d, off, length); return;
    case IPPROTO_ICMPV6: if (requires(6)) icmp6Print(d, off, length); return;
    case IPPROTO_IGMP:
      if (!requires(4) || igmpPrint(d, off, length)) return;
      break;
    case IPPROTO_GRE: if (grePrint(d, off, length)) return; break;
    case IPPROTO_IPV4: ipPrint(d, off, length); return;
    case IPPROTO_IPV6: ip6Print(d, off, length); return;
    case IPPROTO_NONE: d.print('no next header'); return;
  }
  // tcpdump decodes many others (OSPF, SCTP, ESP, AH, PIM, VRRP, ...); this is its
  // line for a protocol it has no printer for. SCTP and DCCP print the addresses
  // themselves in tcpdump, so the IP layer did not.
  if ((nh === IPPROTO_SCTP || nh === IPPROTO_DCCP) && ip.headerProto === nh) {
    const [src, dst] = addressPair(d, ip);
    d.print(`${src} > ${dst}: `);
  }
  d.print(` ip-proto-${nh} ${length}`);
}

/**
 * ip6_opt_process for a hop-by-hop header at default verbosity: walks the options and
 * prints only what tcpdump prints without -v (malformed options, then " [|hbhopt]").
 * Returns a valid Jumbo Payload length (with an IPv6 payload length of 0), 0, or -1 when
 * the header is malformed.
 */
function hbhOptions(d: Dissection, bp: number, len: number, payloadLen: number): number {
  let jumbo = 0;
  let seenJumbo = false;
  const bad = (what: string): number => {
    d.print(what);
    d.trunc();
    return -1;
  };
  for (let i = 0, optlen = 0; i < len; i += optlen) {
    const type = d.u8(bp + i);
    if (type === 0) optlen = 1;
    else if (i + 1 < len) optlen = d.u8(bp + i + 1) + 2;
    else return bad('');
    if (i + optlen > len) return bad('');
    switch (type) {
      case 0: break;
      case 1: if (len - i < 2) return bad('(padn: trunc)'); break;
      case 5:
        if (len - i < 4) return bad('(rtalert: trunc)');
        if (d.u8(bp + i + 1) !== 2) return bad(`(rtalert: invalid len ${d.u8(bp + i + 1)})`);
        break;
      case 0xc2: {
        if (len - i < 6) return bad('(jumbo: trunc)');
        if (d.u8(bp + i + 1) !== 4) return bad(`(jumbo: invalid len ${d.u8(bp + i + 1)})`);
        const jumboLen = d.u32(bp + i + 2);
        if (!seenJumbo) {
          seenJumbo = true;
          if (payloadLen === 0 && jumboLen >= 65536) jumbo = jumboLen;
        }
        break;
      }
      case 0xc9:
        if (len - i < 18) return bad('(homeaddr: trunc)');
        if (d.u8(bp + i + 1) < 16) return bad(`(homeaddr: invalid len ${d.u8(bp + i + 1)})`);
        break;
      default:
        if (len - i < 2) return bad(`(type ${type}: trunc)`);
    }
  }
  return jumbo;
}

/** ip6_print. */
export function ip6Print(d: Dissection, off: number, length: number): void {
  d.protocol = 'ip6';
  d.need(off, 40);
  if (length < 40) {
    d.print(`truncated-ip6 ${length}`);
    return;
  }
  d.print('IP6 ');
  const v = d.u8(off) >> 4;
  if (v !== 6) {
    d.print(`version error: ${v} != 6`);
    return;
  }
  let payloadLen = d.u16(off + 4);
  let len: number;
  if (payloadLen !== 0) {
    len = payloadLen + 40;
    if (length < len) d.print(`truncated-ip6 - ${len - length} bytes missing!`);
  } else {
    len = length + 40;
  }
  let nh = d.u8(off + 6);
  const ip: IpHeader = { version: 6, off, headerProto: nh };
  d.pushSnap(off, len);
  let cp = off;
  let advance = 40;
  let fragmented = false;
  let foundExtension = false;
  let foundHbh = false;
  let foundJumbo = false;
  let previous = 255;
  while (cp < d.snapEnd && advance > 0) {
    if (len < advance) {
      d.trunc();
      return;
    }
    cp += advance;
    len -= advance;
    if (cp === off + 40 && nh !== IPPROTO_TCP && nh !== IPPROTO_UDP && nh !== IPPROTO_DCCP && nh !== IPPROTO_SCTP) {
      d.print(`${ip6String(d, off + 8)} > ${ip6String(d, off + 24)}: `);
    }
    switch (nh) {
      case IPPROTO_HOPOPTS: {
        if (foundHbh) {
          d.print('[The Hop-by-Hop Options header was already found] (invalid)');
          return;
        }
        if (previous !== 255) {
          d.print("[The Hop-by-Hop Options header don't follow the IPv6 header] (invalid)");
          return;
        }
        d.protocol = 'hbhopt';
        const hbhLen = (d.u8(cp + 1) + 1) << 3;
        let jumbo = -1;
        if (d.has(cp, hbhLen)) {
          d.print('HBH ');
          jumbo = hbhOptions(d, cp + 2, hbhLen - 2, payloadLen);
        } else {
          d.trunc();
        }
        if (jumbo > 0) payloadLen = jumbo;
        if (payloadLen === 0) {
          d.print('[No valid Jumbo Payload Hop-by-Hop option found] (invalid)');
          return;
        }
        if (jumbo < 0) return;
        foundJumbo = jumbo > 0;
        advance = hbhLen;
        foundExtension = true;
        foundHbh = true;
        nh = d.u8(cp);
        break;
      }
      case IPPROTO_DSTOPTS: {
        d.protocol = 'dstopt';
        advance = (d.u8(cp + 1) + 1) << 3;
        d.need(cp, advance);
        d.print('DSTOPT ');
        foundExtension = true;
        nh = d.u8(cp);
        break;
      }
      case IPPROTO_FRAGMENT: {
        d.protocol = 'frag6';
        const fragOff = d.u16(cp + 2) & 0xfff8;
        // tcpdump computes the fragment's size in size_t: a header that claims less than
        // it holds wraps around 2^64.
        const size = 40 + payloadLen - (cp - off) - 8;
        d.print(`frag (${fragOff}|${size >= 0 ? size : (2n ** 64n + BigInt(size)).toString()})`);
        if (fragOff !== 0) return;
        d.print(' ');
        advance = 8;
        if (d.snapEnd <= cp + advance) return;
        foundExtension = true;
        nh = d.u8(cp);
        fragmented = true;
        break;
      }
      default:
        if (foundJumbo) {
          len = payloadLen + 40;
          if (len < cp - off) {
            d.trunc();
            return;
          }
          if (length < len) d.print(`truncated-ip6 - ${len - length} bytes missing!`);
          d.snapEnd = Math.min(d.snapEnd, off + len);
          len -= cp - off;
        } else if (payloadLen === 0) {
          if (foundExtension) {
            d.trunc();
            return;
          }
          len = 0;
          d.snapEnd = Math.min(d.snapEnd, off + 40);
        }
        demuxPrint(d, cp, len, ip, fragmented, nh);
        return;
    }
    previous = nh;
    d.protocol = 'ip6';
  }
}
