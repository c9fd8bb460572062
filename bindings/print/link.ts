// Link-layer printers: what tcpdump's if_printers print before the network layer, at
// default verbosity without -e. Without -e tcpdump prints no Ethernet addresses and no
// VLAN tags for the frames it decodes further (the line starts at "IP", "ARP", ...); it
// prints them, with the ethertype and the frame length, only for a frame whose ethertype
// it cannot decode. LINUX_SLL likewise prints nothing of its own header; LINUX_SLL2
// prints the interface (by the local name of its index, as tcpdump does with
// if_indextoname) and the packet type; NULL/LOOP and RAW print nothing of theirs.
//
// The ethertypes tcpdump decodes but this printer does not (802.3/LLC
// frames, IPX, AppleTalk, ...) are printed in the form of the undecodable-ethertype line;
// test/print.test.ts counts them as known differences.

import { arpPrint } from './arp.js';
import { Dissection, macString, tok } from './dissection.js';
import { ip6Print, ipPrint, ipNPrint } from './ip.js';
import { lldpPrint } from './lldp.js';
import { mplsPrint } from './mpls.js';
import { pppoePrint } from './ppp.js';
import { stpPrint } from './stp.js';

const ETHERTYPE_IP = 0x0800;
const ETHERTYPE_ARP = 0x0806;
const ETHERTYPE_REVARP = 0x8035;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_MPLS = 0x8847;
const ETHERTYPE_LLDP = 0x88cc;
const ETHERTYPE_PPPOED = 0x8863;
const ETHERTYPE_PPPOES = 0x8864;
const ETHERTYPE_PPPOED2 = 0x3c12;
const ETHERTYPE_PPPOES2 = 0x3c13;
const ETHERTYPE_MPLS_MULTI = 0x8848;
const ETHERTYPE_8021Q = 0x8100;
const ETHERTYPE_JUMBO = 0x8870;
const MAX_ETHERNET_LENGTH_VAL = 1500;
/** The VLAN tag ethertypes ether_common_print steps over. */
const VLAN_TYPES = new Set([0x8100, 0x9100, 0x9200, 0x88a8]);

/** tcpdump's ethertype_values (print-ether.c), first name wins (0x9100 is "802.1Q-9100"). */
export const ETHERTYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [0x0800, 'IPv4'], [0x8847, 'MPLS unicast'], [0x8848, 'MPLS multicast'], [0x86dd, 'IPv6'],
  [0x8100, '802.1Q'], [0x9100, '802.1Q-9100'], [0x88a8, '802.1Q-QinQ'], [0x9200, '802.1Q-9200'],
  [0x88e5, '802.1AE MACsec'], [0x0200, 'PUP'], [0x0806, 'ARP'], [0x8035, 'Reverse ARP'],
  [0x0600, 'NS'], [0x0500, 'Sprite'], [0x1000, 'Trail'], [0x6001, 'MOP DL'], [0x6002, 'MOP RC'],
  [0x6003, 'DN'], [0x6004, 'LAT'], [0x6007, 'SCA'], [0x6558, 'TEB'], [0x8038, 'Lanbridge'],
  [0x803c, 'DEC DNS'], [0x803e, 'DEC DTS'], [0x805b, 'VEXP'], [0x805c, 'VPROD'],
  [0x809b, 'Appletalk'], [0x80f3, 'Appletalk ARP'], [0x8137, 'IPX'], [0x880b, 'PPP'],
  [0x8808, 'MPCP'], [0x8809, 'Slow Protocols'], [0x8863, 'PPPoE D'], [0x8864, 'PPPoE S'],
  [0x888e, 'EAPOL'], [0x8899, 'Realtek protocols'], [0x886f, 'MS NLB heartbeat'], [0x8870, 'Jumbo'],
  [0x894f, 'NSH'], [0x9000, 'Loopback'], [0xfefe, 'OSI'], [0x00fe, 'GRE-OSI'], [0xabcd, 'CFM (old)'],
  [0x8902, 'CFM'], [0x893a, 'IEEE1905.1'], [0x88cc, 'LLDP'], [0x88ca, 'TIPC'], [0x0707, 'GeoNet (old)'],
  [0x8947, 'GeoNet'], [0x1111, 'CALM FAST'], [0x88a2, 'AoE'], [0x88f7, 'PTP'],
  [0xd28b, 'Arista Vendor Specific Protocol'],
]);

/**
 * ethertype_print: prints the network layer at `off` and returns true, or returns false
 * for an ethertype tcpdump would not decode either (its caller prints the fallback line).
 * Ethertypes tcpdump decodes and netpd does not also return false.
 */
export function ethertypePrint(d: Dissection, type: number, off: number, length: number): boolean {
  switch (type) {
    case ETHERTYPE_IP: ipPrint(d, off, length); return true;
    case ETHERTYPE_IPV6: ip6Print(d, off, length); return true;
    case ETHERTYPE_ARP:
    case ETHERTYPE_REVARP: arpPrint(d, off, length); return true;
    case ETHERTYPE_MPLS:
    case ETHERTYPE_MPLS_MULTI: mplsPrint(d, off, length); return true;
    case ETHERTYPE_LLDP: lldpPrint(d, off, length); return true;
    case ETHERTYPE_PPPOED: case ETHERTYPE_PPPOES: case ETHERTYPE_PPPOED2: case ETHERTYPE_PPPOES2:
      pppoePrint(d, off, length);
      return true;
    default: return false;
  }
}

/**
 * llc_print, for the LLC frames that carry IP and ARP (IP on SAP 06, or a SNAP header
 * AA AA 03 with an Ethernet OUI, 0 or Cisco's 0xf8, and an ethertype) and for spanning
 * tree BPDUs (SAP 42). Other LLC frames (IPX, NetBEUI, OSI, I/S frames) return false and get the 802.3 fallback line.
 */
function llcPrint(d: Dissection, off: number, length: number, capLen: number): boolean {
  d.protocol = 'llc';
  if (capLen < 3 || length < 3) {
    d.trunc();
    return true;
  }
  const dsap = d.u8(off) & 0xfe, ssap = d.u8(off + 1) & 0xfe, control = d.u8(off + 2);
  if (dsap === 0x06 && ssap === 0x06 && control === 0x03) {
    ipPrint(d, off + 3, length - 3); // LLCSAP_IP: IPv4 straight over LLC
    return true;
  }
  if (dsap === 0x42 && ssap === 0x42 && control === 0x03) {
    stpPrint(d, off + 3, length - 3);
    return true;
  }
  if (dsap !== 0xaa || ssap !== 0xaa || control !== 0x03) return false;
  d.protocol = 'snap';
  d.need(off + 3, 5);
  if (capLen < 8 || length < 8) {
    d.trunc();
    return true;
  }
  const oui = (d.u8(off + 3) << 16) | d.u16(off + 4);
  if (oui !== 0 && oui !== 0xf8) return false;
  return ethertypePrint(d, d.u16(off + 6), off + 8, length - 8);
}

function etherTypeString(type: number): string {
  return `ethertype ${tok(ETHERTYPE_NAMES, 'Unknown', type)} (0x${type.toString(16).padStart(4, '0')})`;
}

/** ether_if_print / ether_common_print without -e. */
/**
 * ether_print without -e: the frame at `p` (0 for the link layer; a tunnel's inner frame
 * otherwise), `length` bytes on the wire of which `capLen` were captured.
 */
export function etherPrint(d: Dissection, p: number, length: number, capLen: number): void {
  d.protocol = 'ether';
  if (length < capLen) {
    d.print(`[length ${length} < caplen ${capLen}] (invalid)`);
    return;
  }
  if (capLen < 14) {
    d.trunc();
    return;
  }
  const origLength = length;
  const addresses = (): string => `${macString(d, p + 6)} > ${macString(d, p)}`;
  let off = p + 12;
  length -= 12;
  capLen -= 12;
  let type = d.u16(off);
  off += 2; length -= 2; capLen -= 2;
  while (VLAN_TYPES.has(type)) {
    if (capLen < 4 || length < 4) {
      d.protocol = 'vlan';
      d.trunc();
      return;
    }
    type = d.u16(off + 2);
    off += 4; length -= 4; capLen -= 4;
  }
  if (type <= MAX_ETHERNET_LENGTH_VAL) {
    if (type < length) {
      length = type;
      if (capLen > length) capLen = length;
    }
    d.pushSnap(off, length);
    if (!llcPrint(d, off, length, capLen)) d.print(`${addresses()} 802.3, length ${length}: `);
    d.popSnap();
    return;
  }
  if (type === ETHERTYPE_JUMBO) {
    // LLC inside a jumbo frame: undecoded ones get the 802.3 fallback line.
    if (!llcPrint(d, off, length, capLen)) d.print(`${addresses()} 802.3, length ${length}: `);
    return;
  }
  if (!ethertypePrint(d, type, off, length)) {
    d.print(`${addresses()}, ${etherTypeString(type)}, length ${origLength}: `);
  }
}

// LINUX_SLL (16-byte header) and LINUX_SLL2 (20-byte header), as libpcap writes them:
//   SLL:  pkttype u16, hatype u16, halen u16, addr[8], protocol u16
//   SLL2: protocol u16, reserved u16, ifindex u32, hatype u16, pkttype u8, halen u8, addr[8]
const SLL_PKTTYPES: ReadonlyMap<number, string> = new Map([[0, 'In'], [1, 'B'], [2, 'M'], [3, 'P'], [4, 'Out']]);
const LINUX_SLL_P_802_3 = 0x0001;
const LINUX_SLL_P_802_2 = 0x0004;

/** The cooked header's own line (sll_print / sll2_print), printed when the protocol is not decoded. */
function sllHeaderString(d: Dissection, v2: boolean, length: number): string {
  let s: string;
  let type: number;
  if (v2) {
    s = `ifindex ${d.u32(4)} `;
    if (d.u8(11) === 6) s += `${macString(d, 12)} `;
    type = d.u16(0);
  } else {
    s = `${tok(SLL_PKTTYPES, '?', d.u16(0)).padStart(3, ' ')} `;
    if (d.u16(4) === 6) s += `${macString(d, 6)} `;
    type = d.u16(14);
  }
  if (type <= MAX_ETHERNET_LENGTH_VAL) {
    s += type === LINUX_SLL_P_802_3 ? '802.3' : type === LINUX_SLL_P_802_2 ? '802.2' : `ethertype Unknown (0x${type.toString(16).padStart(4, '0')})`;
  } else {
    s += etherTypeString(type);
  }
  return s + `, length ${length}: `;
}

/** sll_if_print (v2 false) and sll2_if_print (v2 true) without -e. */
export function sllPrint(d: Dissection, length: number, capLen: number, v2: boolean): void {
  const hdrLen = v2 ? 20 : 16;
  d.protocol = v2 ? 'sll2' : 'sll';
  d.need(0, hdrLen);
  if (v2) {
    const name = d.ifName(d.u32(4)) ?? '?';
    d.print(`${name.padEnd(5, ' ')} ${tok(SLL_PKTTYPES, '?', d.u8(10)).padEnd(3, ' ')} `);
  }
  const hatype = d.u16(v2 ? 8 : 2);
  if (hatype === 803) return; // 802.11 radiotap inside: not decoded
  let type = d.u16(v2 ? 0 : 14);
  let off = hdrLen;
  length -= hdrLen;
  capLen -= hdrLen;
  for (;;) {
    if (type <= MAX_ETHERNET_LENGTH_VAL) return; // 802.3/802.2 payload: not decoded (tcpdump: IPX/LLC)
    if (type !== ETHERTYPE_8021Q) break;
    if (capLen < 4) {
      d.protocol = 'vlan';
      d.trunc();
      return;
    }
    type = d.u16(off + 2);
    if (type <= MAX_ETHERNET_LENGTH_VAL) type = LINUX_SLL_P_802_2;
    d.print(`ethertype ${tok(ETHERTYPE_NAMES, 'Unknown', type)}, `);
    off += 4; length -= 4; capLen -= 4;
  }
  if (!ethertypePrint(d, type, off, length)) d.print(sllHeaderString(d, v2, length + hdrLen));
}

// DLT_NULL / DLT_LOOP: a 4-byte address family, host order for NULL (swapped here when its
// high half is set, as tcpdump does), network order for LOOP, which the same swap covers.
const BSD_AF_NAMES: ReadonlyMap<number, string> = new Map([
  [2, 'IPv4'], [6, 'NS'], [7, 'ISO'], [16, 'Appletalk'], [23, 'IPX'], [24, 'IPv6'], [28, 'IPv6'], [30, 'IPv6'],
]);

export function nullPrint(d: Dissection, length: number): void {
  d.protocol = 'null';
  let family = d.u32le(0);
  if ((family & 0xffff0000) !== 0) {
    family = (((family & 0xff) << 24) | ((family & 0xff00) << 8) | ((family >>> 8) & 0xff00) | (family >>> 24)) >>> 0;
  }
  switch (family) {
    case 2: ipPrint(d, 4, length - 4); break;
    case 24: case 28: case 30: ip6Print(d, 4, length - 4); break;
    default: d.print(`AF ${tok(BSD_AF_NAMES, 'Unknown', family)} (${family}), length ${length}: `);
  }
}

/** DLT_RAW / IPV4 / IPV6: the IP version nibble decides. */
export function rawPrint(d: Dissection, length: number): void {
  d.protocol = 'raw';
  ipNPrint(d, 0, length);
}
