// ICMP (print-icmp.c) and ICMPv6 (print-icmp6.c) at default verbosity.
//
// ICMP builds one phrase ("echo request, id 1, seq 2", "10.0.0.1 udp port 53
// unreachable", "time exceeded in-transit") and appends ", length N". ICMPv6 prints
// "ICMP6, <type>", type-specific words, and ", length N". Router renumbering, node
// information, RPL and the ICMP extension objects are not decoded (tcpdump prints more
// for them; their lines differ).

import { Dissection, ip6String, ipString, pad, tok } from './dissection.js';

const ICMP_NAMES: ReadonlyMap<number, string> = new Map([
  [0, 'echo reply'], [4, 'source quench'], [8, 'echo request'], [10, 'router solicitation'],
  [13, 'time stamp request'], [14, 'time stamp reply'], [15, 'information request'],
  [16, 'information reply'], [17, 'address mask request'],
]);

/** Unreachable codes whose phrase is "<prefix><dst><suffix>". */
const UNREACH: ReadonlyMap<number, readonly [string, string]> = new Map([
  [0, ['net ', ' unreachable']], [1, ['host ', ' unreachable']],
  [5, ['', ' unreachable - source route failed']], [6, ['net ', ' unreachable - unknown']],
  [7, ['host ', ' unreachable - unknown']], [8, ['', ' unreachable - source host isolated']],
  [9, ['net ', ' unreachable - admin prohibited']], [10, ['host ', ' unreachable - admin prohibited']],
  [11, ['net ', ' unreachable - tos prohibited']], [12, ['host ', ' unreachable - tos prohibited']],
  [13, ['host ', ' unreachable - admin prohibited filter']],
  [14, ['host ', ' unreachable - host precedence violation']],
  [15, ['host ', ' unreachable - precedence cutoff']],
]);

const REDIRECT: readonly string[] = ['redirect %s to net %s', 'redirect %s to host %s', 'redirect-tos %s to net %s', 'redirect-tos %s to host %s'];

function tstamp(t: number): string {
  const msec = t % 1000;
  let sec = Math.floor(t / 1000);
  let min = Math.floor(sec / 60);
  sec -= min * 60;
  const hrs = Math.floor(min / 60);
  min -= hrs * 60;
  return `${pad(hrs, 2)}:${pad(min, 2)}:${pad(sec, 2)}.${pad(msec, 3)}`;
}

/** icmp_print: `off` is the ICMP header, `plen` its length from the IP header. */
export function icmpPrint(d: Dissection, off: number, plen: number): void {
  d.protocol = 'icmp';
  const type = d.u8(off);
  const code = d.u8(off + 1);
  const innerDst = (): string => ipString(d, off + 24);
  let str: string;
  switch (type) {
    case 0:
    case 8:
      str = `echo ${type === 8 ? 'request' : 'reply'}, id ${d.u16(off + 4)}, seq ${d.u16(off + 6)}`;
      break;
    case 3: {
      const plain = UNREACH.get(code);
      if (plain) {
        str = plain[0] + innerDst() + plain[1];
      } else if (code === 2) {
        str = `${innerDst()} protocol ${d.u8(off + 17)} unreachable`;
      } else if (code === 3) {
        d.need(off + 17, 1);
        const hlen = (d.u8(off + 8) & 0x0f) * 4;
        const dport = d.u16(off + 8 + hlen + 2);
        const proto = d.u8(off + 17);
        str = proto === 6 ? `${innerDst()} tcp port ${dport} unreachable`
          : proto === 17 ? `${innerDst()} udp port ${dport} unreachable`
            : `${innerDst()} protocol ${proto} port ${dport} unreachable`;
      } else if (code === 4) {
        const mtu = d.u16(off + 6);
        str = mtu ? `${innerDst()} unreachable - need to frag (mtu ${mtu})` : `${innerDst()} unreachable - need to frag`;
      } else {
        str = `${innerDst()} unreachable - #${code}`;
      }
      break;
    }
    case 5: {
      const dst = innerDst();
      const gw = ipString(d, off + 4);
      str = code < 4 ? REDIRECT[code].replace('%s', dst).replace('%s', gw) : `redirect-#${code} ${dst} to ${gw}`;
      break;
    }
    case 9: {
      d.need(off + 4, 4);
      const lifetime = d.u16(off + 6);
      str = 'router advertisement lifetime ';
      str += lifetime < 60 ? `${lifetime}`
        : lifetime < 3600 ? `${Math.floor(lifetime / 60)}:${pad(lifetime % 60, 2)}`
          : `${Math.floor(lifetime / 3600)}:${pad(Math.floor((lifetime % 3600) / 60), 2)}:${pad(lifetime % 60, 2)}`;
      let num = d.u8(off + 4);
      str += ` ${num}:`;
      const size = d.u8(off + 5);
      if (size !== 2) {
        str += ` [size ${size}]`;
        break;
      }
      for (let p = off + 8; num > 0; num--, p += 8) {
        d.need(p, 8);
        str += ` {${ipString(d, p)} ${d.u32(p + 4)}}`;
      }
      break;
    }
    case 11:
      d.need(off + 24, 4);
      str = code === 0 ? 'time exceeded in-transit' : code === 1 ? 'ip reassembly time exceeded' : `time exceeded-#${code}`;
      break;
    case 12:
      str = code ? `parameter problem - code ${code}` : `parameter problem - octet ${d.u8(off + 4)}`;
      break;
    case 18:
      str = `address mask is 0x${d.u32(off + 8).toString(16).padStart(8, '0')}`;
      break;
    case 13:
      str = `time stamp query id ${d.u16(off + 4)} seq ${d.u16(off + 6)}`;
      break;
    case 14:
      d.need(off + 16, 4);
      str = `time stamp reply id ${d.u16(off + 4)} seq ${d.u16(off + 6)}: org ${tstamp(d.u32(off + 8))}, recv ${tstamp(d.u32(off + 12))}, xmit ${tstamp(d.u32(off + 16))}`;
      break;
    default:
      str = tok(ICMP_NAMES, 'type-#%u', type);
  }
  d.print(`ICMP ${str}, length ${plen}`);
}

const ICMP6_NAMES: ReadonlyMap<number, string> = new Map([
  [1, 'destination unreachable'], [2, 'packet too big'], [3, 'time exceeded in-transit'],
  [4, 'parameter problem'], [128, 'echo request'], [129, 'echo reply'],
  [130, 'multicast listener query'], [131, 'multicast listener report'], [132, 'multicast listener done'],
  [133, 'router solicitation'], [134, 'router advertisement'], [135, 'neighbor solicitation'],
  [136, 'neighbor advertisement'], [137, 'redirect'], [138, 'router renumbering'],
  [141, 'inverse neighbor solicitation'], [142, 'inverse neighbor advertisement'],
  [143, 'multicast listener report v2'], [144, 'ha discovery request'], [145, 'ha discovery reply'],
  [146, 'mobile router solicitation'], [147, 'mobile router advertisement'],
  [139, 'who-are-you request'], [140, 'who-are-you reply'], [200, 'mtrace response'],
  [201, 'mtrace message'], [155, 'RPL'],
]);
const UNREACH6: ReadonlyMap<number, string> = new Map([
  [0, 'unreachable route'], [1, ' unreachable prohibited'], [2, 'beyond scope'],
  [3, 'unreachable address'], [4, 'unreachable port'],
]);
const PARAMPROB6: readonly string[] = ['erroneous', 'next header', 'option', 'incomplete header chain'];

/** get_upperlayer: the TCP/UDP header inside an ICMPv6 error's quoted packet, or undefined. */
function upperLayer(d: Dissection, ip6: number): { proto: number; off: number } | undefined {
  if (!d.has(ip6 + 6, 1)) return undefined;
  let nh = d.u8(ip6 + 6);
  let p = ip6;
  let hlen = 40;
  while (p < d.snapEnd) {
    p += hlen;
    switch (nh) {
      case 6: case 17:
        return d.has(p + 2, 2) ? { proto: nh, off: p } : undefined;
      case 0: case 60: case 43:
        if (!d.has(p + 1, 1)) return undefined;
        nh = d.u8(p);
        hlen = (d.u8(p + 1) + 1) << 3;
        break;
      case 44:
        if (!d.has(p + 2, 2) || (d.u16(p + 2) & 0xfff8) !== 0) return undefined;
        nh = d.u8(p);
        hlen = 8;
        break;
      case 51:
        if (!d.has(p + 1, 1)) return undefined;
        nh = d.u8(p);
        hlen = (d.u8(p + 1) + 2) << 2;
        break;
      default:
        return undefined;
    }
  }
  return undefined;
}

/** icmp6_print. */
export function icmp6Print(d: Dissection, off: number, length: number): void {
  d.protocol = 'icmp6';
  if (length === 0) {
    d.print('ICMP6, length 0 (invalid)');
    return;
  }
  const type = d.u8(off);
  d.print(`ICMP6, ${tok(ICMP6_NAMES, 'unknown icmp6 type (%u)', type)}`);
  const code = d.u8(off + 1);
  const oip = off + 8;
  switch (type) {
    case 1:
      d.print(`, ${tok(UNREACH6, 'unknown unreach code (%u)', code)}`);
      switch (code) {
        case 0: case 1: case 3: d.print(` ${ip6String(d, oip + 24)}`); break;
        case 2: d.print(` ${ip6String(d, oip + 24)}, source address ${ip6String(d, oip + 8)}`); break;
        case 4: {
          const upper = upperLayer(d, oip);
          if (!upper) {
            d.trunc();
            return;
          }
          const dport = d.u16(upper.off + 2);
          d.print(`, ${ip6String(d, oip + 24)} ${upper.proto === 6 ? 'tcp' : 'udp'} port ${dport}`);
          break;
        }
        default:
          return; // tcpdump: a hex dump on the following lines
      }
      break;
    case 2: d.print(`, mtu ${d.u32(off + 4)}`); break;
    case 3:
      if (code === 0) d.print(` for ${ip6String(d, oip + 24)}`);
      else if (code === 1) d.print(' (reassembly)');
      else d.print(`, unknown code (${code})`);
      break;
    case 4:
      d.need(oip + 24, 16);
      d.print(code < 4 ? `, ${PARAMPROB6[code]} - octet ${d.u32(off + 4)}` : `, code-#${code}`);
      break;
    case 128: case 129: d.print(`, id ${d.u16(off + 4)}, seq ${d.u16(off + 6)}`); break;
    case 130:
      if (length === 24) mld6(d, off);
      else if (length >= 28) mldv2Query(d, off, length);
      else d.print(` unknown-version (len ${length}) `);
      break;
    case 131: case 132: mld6(d, off); break;
    case 133: case 134: case 141: case 142: case 145: case 147: break;
    case 135: d.print(`, who has ${ip6String(d, off + 8)}`); break;
    case 136: d.print(`, tgt is ${ip6String(d, off + 8)}`); break;
    case 137: d.print(`, ${ip6String(d, off + 24)} to ${ip6String(d, off + 8)}`); break;
    case 143:
      if (length < 8) d.print(` [invalid len ${length}]`);
      else d.print(`, ${d.u16(off + 6)} group record(s)`);
      break;
    case 144: case 146: d.print(`, id 0x${d.u16(off + 4).toString(16).padStart(4, '0')}`); break;
    default:
      // Router renumbering, node information, RPL, mtrace and unknown types: tcpdump
      // decodes some and dumps the others in hex on the following lines.
      d.print(`, length ${length}`);
      return;
  }
  d.print(`, length ${length}`);
}

function mld6(d: Dissection, off: number): void {
  if (!d.has(off, 24)) return;
  d.print(`max resp delay: ${d.u16(off + 4)} addr: ${ip6String(d, off + 8)}`);
}

function mldv2Query(d: Dissection, off: number, length: number): void {
  d.print(' v2');
  d.print(` [gaddr ${ip6String(d, off + 8)}`);
  const nsrcs = d.u16(off + 26);
  if (nsrcs > 0) d.print(length < 28 + nsrcs * 16 ? ' [invalid number of sources]' : `, ${nsrcs} source(s)`);
  d.print(']');
}
