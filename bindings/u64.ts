// Exact arithmetic on unsigned 64-bit values held as two 32-bit halves, in doubles,
// without allocating (no BigInt): timestamps in the arena and in capture files.

/** The remainder of the last divmod64 call. */
export let remainder = 0;

/**
 * Divides hi * 2^32 + lo by d (1 <= d <= 2^30) and returns the quotient; the remainder
 * is left in `remainder`. Long division in 16-bit digits keeps every step exact.
 */
export function divmod64(hi: number, lo: number, d: number): number {
  let cur = hi >>> 16;
  let digit = Math.floor(cur / d);
  let r = cur - digit * d;
  let q = digit;
  cur = r * 65536 + (hi & 0xffff);
  digit = Math.floor(cur / d);
  r = cur - digit * d;
  q = q * 65536 + digit;
  cur = r * 65536 + (lo >>> 16);
  digit = Math.floor(cur / d);
  r = cur - digit * d;
  q = q * 65536 + digit;
  cur = r * 65536 + (lo & 0xffff);
  digit = Math.floor(cur / d);
  r = cur - digit * d;
  q = q * 65536 + digit;
  remainder = r;
  return q;
}
