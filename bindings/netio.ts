// Netio objects, as in the OSKit: anything packets can be pushed to. An owner is a
// netio; so is a dispatcher's incoming side, so dispatchers chain. A plain function
// is taken as a netio whose push is that function.

import { NetpdError } from './errors.js';
import type { Packet, PacketBatch } from './packet.js';

export interface Netio {
  /** Receives one borrowed packet (valid during the call; retain() to keep it). */
  push?(packet: Packet): void;
  /** Receives a borrowed run of packets at once; preferred over push when present. */
  pushBatch?(batch: PacketBatch): void;
}

export type NetioLike = Netio | ((packet: Packet) => void);

/** Normalizes a NetioLike; throws EINVAL when it can take no packets. */
export function toNetio(netio: NetioLike, what: string): Netio {
  if (typeof netio === 'function') return { push: netio };
  if (netio && (typeof netio.push === 'function' || typeof netio.pushBatch === 'function')) return netio;
  throw new NetpdError('EINVAL', `${what} must be a function or an object with push() or pushBatch()`);
}
