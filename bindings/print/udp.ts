// UDP (print-udp.c, udp_print) at default verbosity.
//
// tcpdump hands the payload of several dozen well-known ports to their own printers.
// Here DNS (53), mDNS (5353), BOOTP/DHCP (67, 68) and NTP (123) are decoded as tcpdump does; a datagram on
// any other port prints "UDP, length N", which is tcpdump's line for ports it has no
// printer for. On the ports tcpdump decodes and netpd does not (DHCP, SNMP, syslog,
// VXLAN, Geneve, ...), the lines differ after the ports (test/print.test.ts counts them).

import { Dissection, macString } from './dissection.js';
import { domainPrint } from './dns.js';
import { IpHeader, addressPair } from './ip.js';

const NTP_MODES = ['unspecified', 'symmetric active', 'symmetric passive', 'Client', 'Server', 'Broadcast', 'Control Message', 'Reserved'];

/** udpipaddr_print: "src.sport > dst.dport: " (sport < 0: addresses only). */
function addresses(d: Dissection, ip: IpHeader, sport: number, dport: number): void {
  if (ip.headerProto === 17) {
    const [src, dst] = addressPair(d, ip);
    d.print(sport < 0 ? `${src} > ${dst}: ` : `${src}.${sport} > ${dst}.${dport}: `);
  } else if (sport >= 0) {
    d.print(`${sport} > ${dport}: `);
  }
}

/** udp_print: `off` is the UDP header, `length` the UDP length from the IP layer. */
export function udpPrint(d: Dissection, off: number, length: number, ip: IpHeader, fragmented: boolean): void {
  d.protocol = 'udp';
  if (!d.has(off + 2, 2)) {
    addresses(d, ip, -1, -1);
    d.trunc();
    return;
  }
  const sport = d.u16(off);
  const dport = d.u16(off + 2);
  if (length < 8) {
    addresses(d, ip, sport, dport);
    d.print(`truncated-udp ${length}`);
    return;
  }
  if (!d.has(off + 4, 2)) {
    addresses(d, ip, sport, dport);
    d.trunc();
    return;
  }
  let ulen = d.u16(off + 4);
  if (ulen === 0 && length > 65535) ulen = length;
  if (ulen < 8) {
    addresses(d, ip, sport, dport);
    d.print(`truncated-udplength ${ulen}`);
    return;
  }
  ulen -= 8;
  length -= 8;
  if (ulen < length) length = ulen;
  const cp = off + 8;
  if (cp > d.snapEnd) {
    addresses(d, ip, sport, dport);
    d.trunc();
    return;
  }
  addresses(d, ip, sport, dport);
  const port = (p: number): boolean => sport === p || dport === p;
  if (port(53)) {
    domainPrint(d, cp, length, false, false);
  } else if (port(5353)) {
    domainPrint(d, cp, length, false, true);
  } else if ((port(67) || port(68)) && !port(525) && !port(69)) {
    bootpPrint(d, cp, length);
  } else if (port(123) && !tcpdumpDecodesBefore(sport, dport)) {
    d.protocol = 'ntp';
    const status = d.u8(cp);
    d.print(`NTPv${(status >> 3) & 7}, ${NTP_MODES[status & 7]}, length ${length}`);
  } else {
    d.print(ulen > length && !fragmented ? `UDP, bad length ${ulen} > ${length}` : `UDP, length ${ulen}`);
  }
}

/** bootp_print at default verbosity: the operation, the client's MAC on an Ethernet request. */
function bootpPrint(d: Dissection, bp: number, length: number): void {
  d.protocol = 'bootp';
  const op = d.u8(bp);
  d.print(`BOOTP/DHCP, ${op === 1 ? 'Request' : op === 2 ? 'Reply' : `unknown (0x${op.toString(16).padStart(2, '0')})`}`);
  const htype = d.u8(bp + 1);
  const hlen = d.u8(bp + 2);
  if (htype === 1 && hlen === 6 && op === 1) d.print(` from ${macString(d, bp + 28)}`);
  d.print(`, length ${length}`);
}

/** The ports tcpdump checks before NTP's 123 (timed, TFTP, BOOTP, RIP, AODV, ISAKMP, SNMP). */
function tcpdumpDecodesBefore(sport: number, dport: number): boolean {
  return [525, 69, 67, 68, 520, 654, 500, 4500, 7500, 8500, 161, 162].some((p) => sport === p || dport === p);
}
