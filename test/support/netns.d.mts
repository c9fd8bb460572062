// Types for netns.mjs, the live-link lab harness (see the comment at its top). The
// harness stays plain JavaScript so the .mjs benchmarks can import it without a build;
// this file is what the TypeScript tests see. It has to be .d.mts: TypeScript looks
// for the declarations of an import of './netns.mjs' there, never in netns.d.ts.
import type { ChildProcess, StdioOptions } from 'node:child_process';

export type Side = 'a' | 'b';

export interface ExecResult {
  /** Exit status; null when the command was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Run inside the lab's namespace (end B's side). */
  ns?: boolean;
  /** SIGKILL the command after this long (the result then has signal 'SIGKILL'). */
  timeoutMs?: number;
}

export interface SpawnOptions {
  /** Run inside the lab's namespace (end B's side). */
  ns?: boolean;
  /** Default ['ignore', 'pipe', 'pipe']. */
  stdio?: StdioOptions;
}

/** tcpdump's closing statistics. */
export interface CaptureStats {
  /** "N packets captured": written to the file. */
  captured: number;
  /** "N packets received by filter": matched in the kernel. */
  receivedByFilter: number;
  /** "N packets dropped by kernel": lost for want of ring space. */
  droppedByKernel: number;
  /** "N packets dropped by interface", printed only when the driver reports it (veth doesn't). */
  droppedByInterface: number | null;
  file: string;
  /** Everything tcpdump printed on stderr. */
  stderr: string;
}

export interface Capture {
  /** Where the packets go. */
  file: string;
  side: Side;
  iface: string;
  pid: number;
  /**
   * Waits settleMs (default 50 ms; 1100 ms without immediate mode, where the last block
   * waits for tcpdump's 1 s timeout) for packets still in flight, then SIGINTs tcpdump
   * and parses its statistics. Throws if tcpdump ended without printing them.
   */
  stop(opts?: { settleMs?: number }): Promise<CaptureStats>;
}

export interface PingResult extends ExecResult {
  transmitted: number;
  received: number;
}

export interface ReplayResult {
  /** "Actual: N packets": packets the kernel accepted. */
  sent: number;
  bytes: number;
  seconds: number;
  /** The rate tcpreplay reports it reached. */
  pps: number;
  mbps: number;
  /** Frames the kernel refused, e.g. longer than the MTU ("Message too long"). */
  failed: number;
  truncated: number;
  retriedEnobufs: number;
  retriedEagain: number;
  stdout: string;
  stderr: string;
}

export interface ReplayOptions {
  /** The end to send from; default 'b' (inside the namespace). */
  side?: Side;
  pps?: number;
  mbps?: number;
  /** As fast as possible; wins over pps and mbps. */
  topspeed?: boolean;
  /** Times to send the file(s); 0 means forever, so give duration too. */
  loop?: number;
  /** Stop after this many seconds. */
  duration?: number;
  /** Read the file(s) into memory first (--preload-pcap); default true when looping. */
  preload?: boolean;
  /** More tcpreplay options. */
  args?: string[];
}

export interface LabOptions {
  /** MTU of both ends, e.g. 9000 so every frame of samples/sample.pcap fits. */
  mtu?: number;
}

/** Absolute path of an executable on PATH (or in the sbin directories), or null. */
export function toolPath(name: string): string | null;

/**
 * Null when the tool can be run, else why not. arping must be Thomas Habets' arping
 * 2.x (Debian's `arping`), whose flags lab.arping() uses.
 */
export function toolSkipReason(name: string): string | null;

/**
 * Null when a lab can be built here, else the reason to print when skipping. Probes
 * for real once (a namespace and a veth pair, created and deleted), then caches.
 */
export function labSkipReason(): string | null;

/**
 * Deletes lab namespaces (with their veth pairs and temp dirs) left by processes
 * that are gone. createLab() runs it once per process.
 */
export function sweepStaleLabs(): Promise<string[]>;

/**
 * A veth pair, end A in this namespace and end B in a new one, with a /30 of
 * 198.18.0.0/15 (A .1, B .2), IPv6 off, both ends up with carrier.
 * @param tag short label for the names, [a-z0-9]+; interface names keep its first 5 characters
 */
export function createLab(tag?: string, opts?: LabOptions): Promise<Lab>;

export class Lab {
  private constructor(init: never);
  readonly tag: string;
  /** End A's interface name, in this process's namespace (≤ 15 characters). */
  readonly a: string;
  /** End B's interface name, inside `ns`. */
  readonly b: string;
  /** The network namespace holding end B. */
  readonly ns: string;
  /** End A's IPv4 address (the /30's .1). */
  readonly addrA: string;
  /** End B's IPv4 address (the /30's .2). */
  readonly addrB: string;
  readonly prefixLength: number;
  readonly macA: string;
  readonly macB: string;
  readonly ifindexA: number;
  /** End B's ifindex, inside `ns`. */
  readonly ifindexB: number;
  readonly mtu: number;

  /** The interface name of one end. */
  iface(side: Side): string;
  /** A directory for this lab's files, removed by destroy(). */
  tmpdir(): string;
  /** Runs a command to completion; resolves whatever its status, rejects only if it cannot start. */
  exec(cmd: string, args?: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a long-running command; destroy() kills it if it is still running. */
  spawn(cmd: string, args?: string[], opts?: SpawnOptions): ChildProcess;
  /**
   * Starts `tcpdump -i IFACE -n -U --immediate-mode -B 65536 -w FILE ...args` on one
   * end (default 'a'); resolves once it is listening. Put the filter in args. Use
   * immediate: false for benchmarks: immediate mode (TPACKET_V2, a wakeup per packet)
   * drops packets at a few 100k pps.
   */
  tcpdump(opts?: { side?: Side; args?: string[]; file?: string; immediate?: boolean; bufferKiB?: number }): Promise<Capture>;
  /**
   * `ping -i 0.002 -c COUNT` from B to A's address (or from A to B with from: 'a' or
   * ns: false); resolves when ping is done.
   */
  ping(count: number, opts?: { from?: Side; ns?: boolean; intervalS?: number; size?: number; deadlineS?: number }): Promise<PingResult>;
  /** ARP requests from B to A's address (or from A with from: 'a'), 10 ms apart by default. */
  arping(count: number, opts?: { from?: Side; intervalS?: number; deadlineS?: number }): Promise<PingResult>;
  /** `tcpreplay -i B ...` inside the namespace (or from A); throws if tcpreplay fails. */
  tcpreplay(pcapPath: string | string[], opts?: ReplayOptions): Promise<ReplayResult>;
  /** `ip link set down` on one end. */
  down(side: Side): Promise<void>;
  /** `ip link set up` on one end. */
  up(side: Side): Promise<void>;
  /** Deletes the veth pair (both ends); the namespace stays until destroy(). */
  removeLink(): Promise<void>;
  /** Kills what the lab started, deletes link, namespace and tmpdir(); idempotent. */
  destroy(): Promise<void>;
  /** destroy() for 'exit' handlers, where nothing asynchronous runs. */
  destroySync(): void;
}
