// IGMP (print-igmp.c, igmp_print) at default verbosity: queries (v1, v2, v3 with the
// maximum response time and group), v1/v2 reports and leaves, v3 reports with their
// group-record count. DVMRP, PIMv1 and mtrace messages inside IGMP are not decoded.

import { Dissection, ipString } from './dissection.js';

/** unsigned_relts_print: seconds as 1y2w3d4h5m6s. */
function relativeTime(secs: number): string {
  if (secs === 0) return '0s';
  let s = '';
  for (const [unit, n] of [['y', 31536000], ['w', 604800], ['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (secs >= n) {
      s += `${Math.floor(secs / n)}${unit}`;
      secs %= n;
    }
  }
  return s;
}

/** igmp_print; false for the message types not decoded here (the caller prints its fallback). */
export function igmpPrint(d: Dissection, bp: number, len: number): boolean {
  d.protocol = 'igmp';
  const type = d.u8(bp);
  switch (type) {
    case 0x11:
      d.print('igmp query');
      if (len >= 12) {
        d.print(' v3');
        if (len & 3) {
          d.print(` [invalid len ${len}]`);
          break;
        }
        const mrc = d.u8(bp + 1);
        const mrt = mrc < 128 ? mrc : ((mrc & 0x0f) | 0x10) << (((mrc & 0x70) >> 4) + 3);
        if (mrc !== 100) d.print(` [max resp time ${mrt < 600 ? `${(mrt * 0.1).toFixed(1)}s` : relativeTime(Math.floor(mrt / 10))}]`);
        if (d.u32(bp + 4) === 0) break;
        d.print(` [gaddr ${ipString(d, bp + 4)}`);
        const nsrcs = d.u16(bp + 10);
        if (nsrcs > 0) d.print(len < 12 + nsrcs * 4 ? ' [invalid number of sources]' : `, ${nsrcs} source(s)`);
        d.print(']');
      } else {
        const mrt = d.u8(bp + 1);
        if (mrt) {
          d.print(' v2');
          if (mrt !== 100) d.print(` [max resp time ${mrt}]`);
        } else {
          d.print(' v1');
        }
        if (d.u32(bp + 4)) d.print(` [gaddr ${ipString(d, bp + 4)}]`);
        if (len !== 8) d.print(` [len ${len}]`);
      }
      break;
    case 0x12:
      d.print(`igmp v1 report ${ipString(d, bp + 4)}`);
      if (len !== 8) d.print(` [len ${len}]`);
      break;
    case 0x16: d.print(`igmp v2 report ${ipString(d, bp + 4)}`); break;
    case 0x17: d.print(`igmp leave ${ipString(d, bp + 4)}`); break;
    case 0x22:
      d.print('igmp v3 report');
      if (len < 16 || len & 3) d.print(` [invalid len ${len}]`);
      else d.print(`, ${d.u16(bp + 6)} group record(s)`);
      break;
    case 0x13: case 0x14: case 0x1e: case 0x1f:
      return false;
    default:
      d.print(`igmp-${type}`);
  }
  return true;
}
