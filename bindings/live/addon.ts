// Loading the native AF_PACKET addon (addon/), as N-API addons on npm do: node-gyp-build
// takes build/Release/ when it was compiled here (the repository's `npm install`, or the
// from-source command below), else the prebuild shipped in prebuilds/<platform>-<arch>/
// (made by prebuildify at pack time), so installing netpd needs no compiler and no
// install script.
//
// The addon is optional: on systems other than Linux, or where no build fits, netpd
// still works on capture files, and only opening a live source fails, with ENOTSUP
// saying why and how to build it from source. The reason is remembered so every attempt
// says the same.

import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetpdError } from '../errors.js';

/** Options the native PacketSocket constructor reads (see addon/binding.cc). */
export interface NativeSocketOptions {
  ifname: string;
  receive: boolean;
  promiscuous: boolean;
  snaplen: number;
  rxMode: 'ring' | 'mmsg';
  txMode: 'mmsg' | 'ring';
  ringBytes: number;
  blockBytes: number;
  blockTimeoutMs: number;
  rcvbufBytes: number;
  burst: number;
  maxFrameBytes: number;
  ignoreOutgoing: boolean;
  /** Per-frame direction rule (libpcap's): 'out' keeps only PACKET_OUTGOING, 'in' all but. */
  direction: 'in' | 'out' | 'inout';
  qdiscBypass: boolean;
  /** Four u32 per instruction: code, jt, jf, k. */
  filter?: Uint32Array;
  fanout?: { group: number; mode: number; flags: number };
}

/** Where the arena's fields are, as the addon needs them (addresses in `bytes`). */
export interface NativeArenaLayout {
  meta: number; data: number; slotSize: number; slotCount: number; metaSize: number;
  capLen: number; wireLen: number; tsNs: number; ifIndex: number; flowHash: number; flags: number;
  truncatedCounter: number;
}

/** A system-call failure as the addon throws it. */
export interface NativeError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

export interface NativeSocket {
  readonly ifindex: number;
  attach(bytes: Uint8Array, layout: NativeArenaLayout): void;
  /** Fills vec[0..n) (slot indices at arena address `vec`); returns how many. */
  receive(vec: number, n: number): number;
  discard(n: number): number;
  /** Sends vec[0..n); returns how many went, or -errno for a frame the link refused. */
  send(vec: number, n: number): number;
  /**
   * Kernel counters (PACKET_STATISTICS, accumulated), what receive() delivered, and the
   * frames it left out by the direction rule (or as a loopback device's outgoing copy).
   */
  stats(): { packets: number; drops: number; received: number; bytes: number; skipped: number };
  pendingError(): NativeError | null;
  /** Watch the socket (a callback) or stop and close the watch (null). */
  poll(callback: ((status: number, events: number) => void) | null): void;
  /** Stop watching for now; poll(callback) resumes. */
  pause(): void;
  /** Replaces the kernel filter atomically (four u32 per instruction), or removes it (null). */
  setFilter(words: Uint32Array | null): void;
  close(): void;
}

export interface NativeAddon {
  PacketSocket: new (options: NativeSocketOptions) => NativeSocket;
  fanout: { hash: number; lb: number; cpu: number; defrag: number; rollover: number };
}

let loaded: NativeAddon | undefined;
let failure: NetpdError | undefined;

const require = createRequire(import.meta.url);
/** node-gyp-build's resolver: the addon file that fits this platform, or a throw naming it. */
const nodeGypBuild = require('node-gyp-build') as { path(dir: string): string };
const PACKAGE_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const BUILD_FROM_SOURCE = `build it from source (needs python3, make and a C++17 compiler): cd '${PACKAGE_ROOT.replaceAll("'", "'\\''")}' && npm run build:addon`;

/** The addon, or ENOTSUP naming why it is not there. */
export function loadAddon(): NativeAddon {
  if (loaded) return loaded;
  if (failure) throw failure;
  if (process.platform !== 'linux') {
    failure = new NetpdError('ENOTSUP', `live capture uses Linux AF_PACKET sockets; this is ${process.platform}. Capture files work everywhere`);
    throw failure;
  }
  let file: string;
  try {
    file = nodeGypBuild.path(PACKAGE_ROOT);
  } catch (cause) {
    const wanted = (cause as Error).message.split('\n')[0].replace(/^No native build was found for /, '');
    failure = new NetpdError('ENOTSUP', `the AF_PACKET addon has no prebuild for this system (${wanted}; netpd ships one for linux-x64 with glibc); ${BUILD_FROM_SOURCE}`, { cause });
    throw failure;
  }
  try {
    loaded = require(file) as NativeAddon;
    return loaded;
  } catch (cause) {
    failure = new NetpdError('ENOTSUP', `the AF_PACKET addon ${file} does not load: ${(cause as Error).message}; ${BUILD_FROM_SOURCE}`, { cause });
    throw failure;
  }
}
