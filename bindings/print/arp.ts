// ARP and RARP (print-arp.c, arp_print) at default verbosity.
//
// Layout: hrd u16, pro u16, hln u8, pln u8, op u16, then sha[hln] spa[pln] tha[hln] tpa[pln].
// tcpdump checks the fixed part and the whole address block up to the end of tpa first
// and prints only " [|arp]" when they are not captured. ATM ARP (hrd 19) is not decoded.

import { Dissection, ipString, linkAddrString, tok } from './dissection.js';
import { ETHERTYPE_NAMES } from './link.js';

const OPS: ReadonlyMap<number, string> = new Map([
  [1, 'Request'], [2, 'Reply'], [3, 'Reverse Request'], [4, 'Reverse Reply'],
  [8, 'Inverse Request'], [9, 'Inverse Reply'], [10, 'NACK Reply'],
]);
const HARDWARE: ReadonlyMap<number, string> = new Map([
  [1, 'Ethernet'], [6, 'TokenRing'], [7, 'ArcNet'], [15, 'FrameRelay'], [23, 'Strip'],
  [24, 'IEEE 1394'], [19, 'ATM'], [32, 'InfiniBand'],
]);

export function arpPrint(d: Dissection, off: number, length: number): void {
  d.protocol = 'arp';
  if (!d.has(off, 8)) {
    d.trunc();
    return;
  }
  const hrd = d.u16(off), pro = d.u16(off + 2), hln = d.u8(off + 4), pln = d.u8(off + 5), op = d.u16(off + 6);
  const sha = off + 8, spa = sha + hln, tha = spa + pln, tpa = tha + hln;
  if (hrd === 19) return; // ATM ARP: tcpdump's atmarp_print, not decoded here
  if (!d.has(tpa, pln)) {
    d.trunc();
    return;
  }
  d.print('ARP, ');
  const ipProto = pro === 0x0800 || pro === 0x1000;
  if (!ipProto || pln !== 4 || hln === 0) {
    d.print(`${tok(HARDWARE, 'Unknown Hardware (%u)', hrd)} (len ${hln}), ${tok(ETHERTYPE_NAMES, 'Unknown Protocol (0x%04x)', pro)} (len ${pln})`);
    d.print(`, length ${length}`);
    return;
  }
  const hw = (at: number): string => {
    d.need(at, hln);
    return linkAddrString(d.bytes, at, hln);
  };
  const proto = (at: number): string => (!ipProto ? '<wrong proto type>' : pln !== 4 ? '<wrong len>' : ipString(d, at));
  d.print(`${tok(OPS, 'Unknown (%u)', op)} `);
  switch (op) {
    case 1: {
      d.print(`who-has ${proto(tpa)}`);
      let nonzero = false;
      for (let i = 0; i < hln; i++) if (d.u8(tha + i) !== 0) nonzero = true;
      if (nonzero) d.print(` (${hw(tha)})`);
      d.print(` tell ${proto(spa)}`);
      break;
    }
    case 2: d.print(`${proto(spa)} is-at ${hw(sha)}`); break;
    case 3: case 8: d.print(`who-is ${hw(tha)} tell ${hw(sha)}`); break;
    case 4: d.print(`${hw(tha)} at ${proto(tpa)}`); break;
    case 9: d.print(`${hw(sha)} at ${proto(spa)}`); break;
    default: return; // tcpdump: a hex dump of the packet on the following lines
  }
  d.print(`, length ${length}`);
}
