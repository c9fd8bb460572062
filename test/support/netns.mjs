// @ts-check
// A throwaway live link for tests and benchmarks that need real packets on a real
// interface. A lab is a veth pair: end A stays in this process's network namespace,
// where the code under test opens its AF_PACKET sockets; end B is moved into a fresh
// namespace, and traffic is sent from there (ping, arping, tcpreplay) while tcpdump
// can watch either end. Plain JavaScript with JSDoc so both the TypeScript tests and
// the .mjs benchmarks can import it (netns.d.mts gives the tests its types).
//
// Keeping the lab quiet and harmless:
// - addresses come from 198.18.0.0/15, the block RFC 2544 sets aside for benchmarking,
//   rather than 10/8, which the host may well route somewhere real; each lab takes a
//   /30 derived from the pid and a per-process counter and skips any /30 already in
//   use, so parallel test workers don't collide;
// - IPv6 is disabled on both ends before they come up, so no router solicitation,
//   DAD or MLD report lands in a capture; IPv4 forwarding is off on A, so nothing
//   replayed into A is ever routed out of the lab;
// - destroy() removes everything; an exit handler (and SIGINT/SIGTERM/SIGHUP, when
//   nobody else handles them) removes labs a test forgot, and the first createLab()
//   of a process sweeps namespaces left by processes that were killed outright.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** @typedef {'a' | 'b'} Side */
/**
 * @typedef {object} ExecResult
 * @property {number | null} code exit status; null when killed by a signal
 * @property {NodeJS.Signals | null} signal
 * @property {string} stdout
 * @property {string} stderr
 */
/**
 * @typedef {object} ExecOptions
 * @property {boolean} [ns] run inside the lab's namespace (end B's side)
 * @property {number} [timeoutMs] SIGKILL the command after this long (the result then has signal 'SIGKILL')
 */
/**
 * @typedef {object} SpawnOptions
 * @property {boolean} [ns] run inside the lab's namespace (end B's side)
 * @property {import('node:child_process').StdioOptions} [stdio] default ['ignore', 'pipe', 'pipe']
 */
/**
 * @typedef {object} CaptureStats
 * @property {number} captured "N packets captured": written to the file
 * @property {number} receivedByFilter "N packets received by filter": matched in the kernel
 * @property {number} droppedByKernel "N packets dropped by kernel": lost for want of ring space
 * @property {number | null} droppedByInterface "N packets dropped by interface", which tcpdump prints only when the driver reports it
 * @property {string} file
 * @property {string} stderr all tcpdump printed on stderr
 */
/**
 * @typedef {object} Capture
 * @property {string} file where the packets go
 * @property {Side} side
 * @property {string} iface
 * @property {number} pid
 * @property {(opts?: { settleMs?: number }) => Promise<CaptureStats>} stop waits settleMs (default 50 ms, 1100 ms
 *   without immediate mode) for packets still in flight, then SIGINTs tcpdump and parses its closing statistics
 */
/**
 * @typedef {object} PingResult
 * @property {number} transmitted
 * @property {number} received
 * @property {number | null} code
 * @property {NodeJS.Signals | null} signal
 * @property {string} stdout
 * @property {string} stderr
 */
/**
 * @typedef {object} ReplayResult
 * @property {number} sent "Actual: N packets": packets the kernel accepted
 * @property {number} bytes
 * @property {number} seconds
 * @property {number} pps the rate tcpreplay reports it reached
 * @property {number} mbps
 * @property {number} failed e.g. frames longer than the MTU ("Message too long")
 * @property {number} truncated
 * @property {number} retriedEnobufs
 * @property {number} retriedEagain
 * @property {string} stdout
 * @property {string} stderr
 */
/**
 * @typedef {object} ReplayOptions
 * @property {Side} [side] the end to send from; default 'b'
 * @property {number} [pps] packets per second
 * @property {number} [mbps] megabits per second
 * @property {boolean} [topspeed] as fast as possible (wins over pps and mbps)
 * @property {number} [loop] times to send the file(s); 0 means forever, so give duration too
 * @property {number} [duration] stop after this many seconds
 * @property {boolean} [preload] read the file(s) into memory first; default true when looping
 * @property {string[]} [args] more tcpreplay options
 */
/**
 * @typedef {object} LabOptions
 * @property {number} [mtu] MTU of both ends (e.g. 9000 so every frame of samples/sample.pcap fits)
 */

const IP_INSTALL = /** @type {Record<string, string>} */ ({
  ip: 'iproute2', tcpdump: 'tcpdump', tcpreplay: 'tcpreplay', ping: 'iputils-ping', arping: 'arping',
});
// Non-login shells, sudo and CI images often leave sbin off PATH, yet ip and arping live there.
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];
/** @type {Map<string, string | null>} */
const toolCache = new Map();

/**
 * Absolute path of an executable on PATH (or in the sbin directories), or null.
 * @param {string} name
 * @returns {string | null}
 */
export function toolPath(name) {
  if (name.includes('/')) return name;
  const hit = toolCache.get(name);
  if (hit !== undefined) return hit;
  let found = null;
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), ...SBIN]) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      found = join(dir, name);
      break;
    } catch { /* not here */ }
  }
  toolCache.set(name, found);
  return found;
}

/**
 * Null when the tool can be run, else why not. For arping it must be Thomas Habets'
 * arping 2.x (Debian's `arping` package), whose flags lab.arping() uses; iputils'
 * arping (`iputils-arping`) spells them differently.
 * @param {string} name e.g. 'tcpdump', 'tcpreplay', 'arping', 'ping'
 * @returns {string | null}
 */
export function toolSkipReason(name) {
  const path = toolPath(name);
  if (!path) return `${name} not found on PATH${IP_INSTALL[name] ? ` (apt-get install ${IP_INSTALL[name]})` : ''}`;
  if (name === 'arping') {
    const r = spawnSync(path, ['--help'], { encoding: 'utf8', timeout: 5000 });
    if (!`${r.stdout}${r.stderr}`.includes('Habets')) return `${path} is not Thomas Habets' arping 2.x (apt-get install arping), whose flags lab.arping() uses`;
  }
  return null;
}

const PID36 = process.pid.toString(36).padStart(5, '0').slice(-5);
/** @type {string | null | undefined} */
let labReason;

/**
 * Null when a lab can be built here, else a reason to print when skipping. The first
 * call really creates and deletes a namespace and a veth pair (a uid check alone
 * says nothing inside containers); later calls return the cached answer.
 * @returns {string | null}
 */
export function labSkipReason() {
  if (labReason === undefined) labReason = probeLab();
  return labReason;
}

/** @returns {string | null} */
function probeLab() {
  if (process.platform !== 'linux') return `not Linux (${process.platform}): the lab needs network namespaces and veth pairs`;
  const uid = process.getuid?.();
  if (uid !== 0) return `not root (uid ${uid}): live AF_PACKET tests need CAP_NET_RAW and CAP_NET_ADMIN`;
  const ipPath = toolPath('ip');
  if (!ipPath) return 'ip (iproute2) not found';
  const ns = `netpd-probe-${process.pid}`;
  const a = `npprobe${PID36}a`;
  const b = `npprobe${PID36}b`;
  /** @param {string[]} args */
  const probe = (...args) => spawnSync(ipPath, args, { encoding: 'utf8', timeout: 10_000 });
  /** @param {import('node:child_process').SpawnSyncReturns<string>} r */
  const why = (r) => r.error?.message ?? (r.stderr.trim() || `exit status ${r.status}`);
  let r = probe('netns', 'add', ns);
  if (r.status !== 0) return `cannot create a network namespace: ${why(r)}`;
  try {
    r = probe('link', 'add', a, 'type', 'veth', 'peer', 'name', b, 'netns', ns);
    if (r.status !== 0) return `cannot create a veth pair: ${why(r)}`;
    // `ip netns exec` also needs to mount a private /sys, which some sandboxes refuse.
    r = probe('netns', 'exec', ns, ipPath, 'link', 'show', b);
    if (r.status !== 0) return `cannot run a command inside a network namespace: ${why(r)}`;
    return null;
  } finally {
    probe('link', 'del', a);
    probe('netns', 'del', ns);
  }
}

/** @returns {string} */
function ipBin() {
  const ip = toolPath('ip');
  if (!ip) throw new Error('ip (iproute2) not found');
  return ip;
}

/**
 * Runs a child to completion, collecting its output; rejects only if it cannot start.
 * @param {string} cmd @param {string[]} args @param {number} [timeoutMs]
 * @param {Set<import('node:child_process').ChildProcess>} [track]
 * @returns {Promise<ExecResult>}
 */
function run(cmd, args, timeoutMs, track) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    track?.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    const timer = timeoutMs ? setTimeout(() => child.kill('SIGKILL'), timeoutMs) : undefined;
    child.once('error', (e) => { clearTimeout(timer); track?.delete(child); reject(e); });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      track?.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * ip with the given arguments; throws with ip's own message when it fails.
 * @param {string[]} args
 * @returns {Promise<string>}
 */
async function ip(...args) {
  const r = await run(ipBin(), args, 15_000);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code ?? r.signal}`}`);
  return r.stdout;
}

/** @param {string[]} args */
const ipQuiet = (...args) => run(ipBin(), args, 15_000).catch(() => undefined);

const delay = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

// --- addresses ---------------------------------------------------------------------

const BENCH_NET = ((198 << 24) | (18 << 16)) >>> 0; // 198.18.0.0/15
const SLOTS = 1 << 15; // /30 blocks in the /15

/** @param {string} dotted */
function ipv4ToInt(dotted) {
  const p = dotted.split('.').map(Number);
  return p.length === 4 && p.every((x) => x >= 0 && x <= 255) ? ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0 : null;
}
/** @param {number} x */
const intToIpv4 = (x) => [x >>> 24, (x >>> 16) & 255, (x >>> 8) & 255, x & 255].join('.');

/**
 * The /30 blocks of 198.18.0.0/15 already holding an address or a route in this namespace.
 * @returns {Promise<Set<number>>}
 */
async function usedSlots() {
  const used = new Set();
  /** @param {string} addr @param {number} len */
  const mark = (addr, len) => {
    const x = ipv4ToInt(addr);
    if (x === null || len < 15 || (x & 0xfffe0000) >>> 0 !== BENCH_NET) return;
    const first = ((x - BENCH_NET) >>> 2) & ~((1 << Math.max(0, 30 - len)) - 1);
    for (let i = 0; i < 1 << Math.max(0, 30 - len); i++) used.add(first + i);
  };
  const addrs = JSON.parse((await ip('-j', '-4', 'addr', 'show')) || '[]');
  for (const link of addrs) for (const a of link.addr_info ?? []) mark(a.local, a.prefixlen);
  const routes = JSON.parse((await ip('-j', '-4', 'route', 'show', 'table', 'all')) || '[]');
  for (const r of routes) {
    if (typeof r.dst !== 'string' || r.dst === 'default') continue;
    const [addr, len] = r.dst.split('/');
    mark(addr, len === undefined ? 32 : Number(len));
  }
  return used;
}

// --- bookkeeping for cleanup --------------------------------------------------------

/** @type {Set<Lab>} */
const liveLabs = new Set();
let labCounter = 0;
/** @type {Promise<string[]> | null} */
let sweeping = null;
let cleanupInstalled = false;

function destroyAllSync() {
  for (const lab of [...liveLabs]) lab.destroySync();
}

function installCleanup() {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', destroyAllSync);
  // A listener replaces Node's default "terminate" for these signals, so only take
  // them when nobody else does, and re-raise once the labs are gone. When the
  // process does have its own handler, the exit hook above still runs if it exits.
  for (const sig of /** @type {NodeJS.Signals[]} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
    if (process.listenerCount(sig) > 0) continue;
    process.once(sig, () => {
      destroyAllSync();
      process.kill(process.pid, sig);
    });
  }
}

/** @param {number} pid */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return /** @type {NodeJS.ErrnoException} */ (e).code === 'EPERM';
  }
}

/**
 * Deletes lab namespaces (with their veth pairs and tmpdir()s) whose creating process is gone, plus
 * any carrying this process's pid, which can only be left from an earlier process
 * that had the same pid. Runs once per process, from the first createLab().
 * @returns {Promise<string[]>} the namespaces removed
 */
export async function sweepStaleLabs() {
  const removed = [];
  const list = (await run(ipBin(), ['netns', 'list'], 15_000)).stdout;
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    const m = /^netpd-[A-Za-z0-9]+-(\d+)(?:-\d+)?$/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && alive(pid)) continue;
    if (pid === process.pid && [...liveLabs].some((l) => l.ns === name)) continue;
    // Delete the veth ends first: `ip netns del` only drops the name, and the
    // namespace, with both ends of the pair, lingers until the kernel's cleanup runs.
    const links = JSON.parse((await run(ipBin(), ['-n', name, '-j', 'link', 'show', 'type', 'veth'], 15_000)).stdout || '[]');
    for (const l of links) await ipQuiet('-n', name, 'link', 'del', l.ifname);
    await ipQuiet('netns', 'del', name);
    for (const dir of readdirSync(tmpdir())) if (dir.startsWith(`${name}-`)) rmSync(join(tmpdir(), dir), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

// --- the lab -------------------------------------------------------------------------

/**
 * Creates a veth pair, end A here and end B in a new namespace, addressed from a /30
 * of 198.18.0.0/15 (A .1, B .2), IPv6 off, both ends up with carrier. Throws with
 * labSkipReason() when labs cannot be built here.
 * @param {string} [tag] short label in the names, [a-z0-9]; the interface names keep its first 5 characters
 * @param {LabOptions} [opts]
 * @returns {Promise<Lab>}
 */
export async function createLab(tag = 'lab', opts = {}) {
  const reason = labSkipReason();
  if (reason) throw new Error(`cannot build a lab: ${reason}`);
  if (!/^[a-z0-9]+$/.test(tag)) throw new Error(`createLab: tag ${JSON.stringify(tag)} must be lowercase letters and digits`);
  installCleanup();
  sweeping ??= sweepStaleLabs();
  await sweeping;
  const n = labCounter++;
  if (n >= 36 * 36) throw new Error('createLab: more than 1296 labs in one process');
  // IFNAMSIZ allows 15 characters: "np" + tag (≤5) + pid (5, base 36) + n (2, base 36) + side.
  // The fixed-width pid and counter make the names unique whatever the tags.
  const stem = `np${tag.slice(0, 5)}${PID36}${n.toString(36).padStart(2, '0')}`;
  const a = `${stem}a`;
  const b = `${stem}b`;
  const ns = `netpd-${tag}-${process.pid}-${n}`;

  const used = await usedSlots();
  let slot = (process.pid * 64 + n) % SLOTS;
  for (let i = 0; used.has(slot) && i < SLOTS; i++) slot = (slot + 1) % SLOTS;
  if (used.has(slot)) throw new Error('createLab: every /30 of 198.18.0.0/15 is in use');
  const addrA = intToIpv4(BENCH_NET + slot * 4 + 1);
  const addrB = intToIpv4(BENCH_NET + slot * 4 + 2);

  const lab = new Lab({ tag, a, b, ns, addrA, addrB });
  liveLabs.add(lab);
  try {
    await ip('netns', 'add', ns);
    await ip('link', 'add', a, 'type', 'veth', 'peer', 'name', b, 'netns', ns);
    // Before the links come up, so not even the first link-local ND/MLD goes out.
    // A kernel without IPv6 has no ipv6 directory, and nothing to disable.
    const sysctlHere = (/** @type {string} */ key, /** @type {string} */ v) => { if (existsSync(key)) writeFileSync(key, v); };
    sysctlHere(`/proc/sys/net/ipv6/conf/${a}/disable_ipv6`, '1');
    sysctlHere(`/proc/sys/net/ipv4/conf/${a}/forwarding`, '0');
    if (existsSync('/proc/sys/net/ipv6')) {
      // /proc/sys/net shows the namespace of whoever opens it, hence the exec.
      const r = await lab.exec('sh', ['-c', `echo 1 > /proc/sys/net/ipv6/conf/${b}/disable_ipv6`], { ns: true });
      if (r.code !== 0) throw new Error(`disabling IPv6 on ${b}: ${r.stderr.trim()}`);
    }
    const mtu = opts.mtu ? ['mtu', String(opts.mtu)] : [];
    await ip('addr', 'add', `${addrA}/30`, 'dev', a);
    await ip('-n', ns, 'addr', 'add', `${addrB}/30`, 'dev', b);
    await ip('link', 'set', 'dev', a, ...mtu, 'arp', 'on', 'up');
    await ip('-n', ns, 'link', 'set', 'dev', b, ...mtu, 'arp', 'on', 'up');
    // Carrier comes through linkwatch a moment after "up"; until then the ends drop what they send.
    for (let t = Date.now(); ; await delay(10)) {
      const [la] = JSON.parse(await ip('-j', 'link', 'show', 'dev', a));
      const [lb] = JSON.parse(await ip('-n', ns, '-j', 'link', 'show', 'dev', b));
      if (la.operstate === 'UP' && lb.operstate === 'UP') {
        lab.macA = la.address;
        lab.macB = lb.address;
        lab.ifindexA = la.ifindex;
        lab.ifindexB = lb.ifindex;
        lab.mtu = la.mtu;
        break;
      }
      if (Date.now() - t > 5000) throw new Error(`${a}/${b} still not UP after 5 s (${la.operstate}/${lb.operstate})`);
    }
    return lab;
  } catch (e) {
    await lab.destroy();
    throw e;
  }
}

export class Lab {
  /** @type {Set<import('node:child_process').ChildProcess>} */
  #children = new Set();
  /** @type {Promise<void> | null} */
  #destroying = null;
  /** @type {string | null} */
  #tmp = null;
  #captures = 0;

  /** @param {{ tag: string, a: string, b: string, ns: string, addrA: string, addrB: string }} init */
  constructor(init) {
    /** Label given to createLab. */
    this.tag = init.tag;
    /** End A's interface name, in this process's namespace. */
    this.a = init.a;
    /** End B's interface name, inside `ns`. */
    this.b = init.b;
    /** The namespace holding end B (for `ip netns exec` / `ip -n`). */
    this.ns = init.ns;
    /** End A's IPv4 address (the /30's .1). */
    this.addrA = init.addrA;
    /** End B's IPv4 address (the /30's .2). */
    this.addrB = init.addrB;
    this.prefixLength = 30;
    this.macA = '';
    this.macB = '';
    this.ifindexA = 0;
    /** End B's ifindex, inside `ns` (often the same number as some link here). */
    this.ifindexB = 0;
    this.mtu = 0;
  }

  /** @param {Side} side */
  iface(side) {
    if (side !== 'a' && side !== 'b') throw new Error(`side must be 'a' or 'b', not ${JSON.stringify(side)}`);
    return side === 'a' ? this.a : this.b;
  }

  /**
   * argv for running cmd here or inside the namespace. `ip netns exec` execs the
   * command in place, so the child's pid is the command's own and signals reach it.
   * @param {string} cmd @param {string[]} args @param {boolean | undefined} ns
   * @returns {[string, string[]]}
   */
  #argv(cmd, args, ns) {
    const bin = toolPath(cmd) ?? cmd;
    return ns ? [ipBin(), ['netns', 'exec', this.ns, bin, ...args]] : [bin, args];
  }

  /** A directory for this lab's files, removed by destroy(). */
  tmpdir() {
    this.#tmp ??= mkdtempSync(join(tmpdir(), `${this.ns}-`));
    return this.#tmp;
  }

  /**
   * Runs a command to completion; resolves with its status and output whatever the
   * status, rejects only if it cannot be started.
   * @param {string} cmd @param {string[]} [args] @param {ExecOptions} [opts]
   * @returns {Promise<ExecResult>}
   */
  exec(cmd, args = [], opts = {}) {
    const [bin, argv] = this.#argv(cmd, args, opts.ns);
    return run(bin, argv, opts.timeoutMs, this.#children);
  }

  /**
   * Starts a long-running command; destroy() kills it if it is still running.
   * @param {string} cmd @param {string[]} [args] @param {SpawnOptions} [opts]
   * @returns {import('node:child_process').ChildProcess}
   */
  spawn(cmd, args = [], opts = {}) {
    const [bin, argv] = this.#argv(cmd, args, opts.ns);
    const child = spawn(bin, argv, { stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'] });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    child.once('error', () => this.#children.delete(child));
    return child;
  }

  /**
   * Starts tcpdump on one end and resolves once it says "listening on", when its
   * socket is bound and its filter set, so nothing sent afterwards is missed. Runs
   * `tcpdump -i IFACE -n -U --immediate-mode -B 65536 -w FILE ARGS...`; put the
   * filter expression (and any other options) in args.
   *
   * Immediate mode suits tests (each packet is readable at once) but makes libpcap use
   * TPACKET_V2 with a wakeup per packet, which drops packets at a few 100k pps on a
   * veth; benchmarks want immediate: false (TPACKET_V3 blocks, as tcpdump's default).
   * @param {{ side?: Side, args?: string[], file?: string, immediate?: boolean, bufferKiB?: number }} [opts]
   *   file defaults to one in tmpdir(); immediate to true; bufferKiB (-B) to 65536
   * @returns {Promise<Capture>}
   */
  async tcpdump({ side = 'a', args = [], file, immediate = true, bufferKiB = 65536 } = {}) {
    const iface = this.iface(side);
    const out = file ?? join(this.tmpdir(), `${side}-${++this.#captures}.pcap`);
    // Debian's tcpdump drops to user tcpdump after opening; -Z root keeps the file ours.
    const asRoot = process.getuid?.() === 0 ? ['-Z', 'root'] : [];
    const argv = ['-i', iface, '-n', '-U', ...(immediate ? ['--immediate-mode'] : []), '-B', String(bufferKiB), ...asRoot, '-w', out, ...args];
    const child = this.spawn('tcpdump', argv, { ns: side === 'b', stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    /** @type {Promise<void>} */
    const exited = new Promise((resolve) => child.once('close', () => resolve()));
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`tcpdump on ${iface}: not listening after 10 s: ${stderr.trim()}`));
      }, 10_000);
      child.stderr?.setEncoding('utf8').on('data', (d) => {
        stderr += d;
        if (stderr.includes('listening on')) {
          clearTimeout(timer);
          resolve(undefined);
        }
      });
      child.once('error', (e) => { clearTimeout(timer); reject(e); });
      exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`tcpdump on ${iface} exited (${child.exitCode ?? child.signalCode}) before listening: ${stderr.trim()}`));
      });
    });
    return {
      file: out,
      side,
      iface,
      pid: child.pid ?? 0,
      // tcpdump stops at the SIGINT without reading what is still queued in its ring,
      // so let packets in flight arrive and be written first; without immediate mode
      // the last TPACKET_V3 block is only handed over at tcpdump's 1 s timeout.
      stop: async ({ settleMs = immediate ? 50 : 1100 } = {}) => {
        if (settleMs > 0) await delay(settleMs);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
        await exited;
        /** @param {string} what */
        const stat = (what) => {
          const m = new RegExp(`^(\\d+) packets? ${what}$`, 'm').exec(stderr);
          return m ? Number(m[1]) : null;
        };
        const captured = stat('captured');
        const receivedByFilter = stat('received by filter');
        const droppedByKernel = stat('dropped by kernel');
        if (captured === null || receivedByFilter === null || droppedByKernel === null) {
          throw new Error(`tcpdump on ${iface} ended without its statistics: ${stderr.trim()}`);
        }
        return { captured, receivedByFilter, droppedByKernel, droppedByInterface: stat('dropped by interface'), file: out, stderr };
      },
    };
  }

  /**
   * Pings across the link: from end B (inside the namespace) to A's address, or from
   * A to B with {from: 'a'} (or {ns: false}). Resolves when ping is done.
   * @param {number} count
   * @param {{ from?: Side, ns?: boolean, intervalS?: number, size?: number, deadlineS?: number }} [opts]
   *   intervalS defaults to 0.002 (below 0.2 needs root); deadlineS to count × interval + 5
   * @returns {Promise<PingResult>}
   */
  async ping(count, { from, ns, intervalS = 0.002, size, deadlineS } = {}) {
    const side = from ?? (ns === false ? 'a' : 'b');
    const target = side === 'b' ? this.addrA : this.addrB;
    const deadline = deadlineS ?? Math.ceil(count * intervalS + 5);
    const args = ['-n', '-q', '-c', String(count), '-i', String(intervalS), '-w', String(deadline)];
    if (size !== undefined) args.push('-s', String(size));
    const r = await this.exec('ping', [...args, target], { ns: side === 'b' });
    const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
    return { ...r, transmitted: m ? Number(m[1]) : 0, received: m ? Number(m[2]) : 0 };
  }

  /**
   * ARP requests across the link with Habets' arping (see toolSkipReason('arping')):
   * from B to A's address, or from A with {from: 'a'}. Its -W is the interval and
   * -w an overall deadline (iputils' arping has neither meaning).
   * @param {number} count
   * @param {{ from?: Side, intervalS?: number, deadlineS?: number }} [opts]
   * @returns {Promise<PingResult>}
   */
  async arping(count, { from = 'b', intervalS = 0.01, deadlineS } = {}) {
    const target = from === 'b' ? this.addrA : this.addrB;
    const deadline = deadlineS ?? Math.ceil(count * intervalS + 5);
    const args = ['-c', String(count), '-W', String(intervalS), '-w', String(deadline), '-i', this.iface(from), target];
    const r = await this.exec('arping', args, { ns: from === 'b' });
    const m = /(\d+) packets transmitted, (\d+) packets received/.exec(r.stdout);
    return { ...r, transmitted: m ? Number(m[1]) : 0, received: m ? Number(m[2]) : 0 };
  }

  /**
   * Replays capture file(s) out of one end (B by default, inside the namespace) with
   * `tcpreplay -i IFACE`, and parses its summary. Throws if tcpreplay fails. Frames
   * longer than the MTU are refused one by one ("Message too long") and counted in
   * `failed`; createLab(tag, {mtu: 9000}) avoids that.
   * @param {string | string[]} pcapPath
   * @param {ReplayOptions} [opts]
   * @returns {Promise<ReplayResult>}
   */
  async tcpreplay(pcapPath, { side = 'b', pps, mbps, topspeed, loop, duration, preload, args = [] } = {}) {
    const argv = ['-i', this.iface(side)];
    if (topspeed) argv.push('--topspeed');
    else if (pps !== undefined) argv.push(`--pps=${pps}`);
    else if (mbps !== undefined) argv.push(`--mbps=${mbps}`);
    if (loop !== undefined) argv.push(`--loop=${loop}`);
    if (duration !== undefined) argv.push(`--duration=${duration}`);
    if (preload ?? (loop !== undefined && loop !== 1)) argv.push('--preload-pcap');
    argv.push(...args, ...(Array.isArray(pcapPath) ? pcapPath : [pcapPath]));
    const r = await this.exec('tcpreplay', argv, { ns: side === 'b' });
    const out = r.stdout;
    const actual = /Actual: (\d+) packets \((\d+) bytes\) sent in ([\d.]+) seconds/.exec(out);
    if (r.code !== 0 || !actual) throw new Error(`tcpreplay ${argv.join(' ')} failed (${r.code ?? r.signal}): ${r.stderr.trim() || out.trim()}`);
    const rated = /Rated: ([\d.]+) Bps, ([\d.]+) Mbps, ([\d.]+) pps/.exec(out);
    /** @param {string} label */
    const count = (label) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(out)?.[1] ?? 0);
    return {
      sent: Number(actual[1]),
      bytes: Number(actual[2]),
      seconds: Number(actual[3]),
      pps: rated ? Number(rated[3]) : 0,
      mbps: rated ? Number(rated[2]) : 0,
      failed: count('Failed packets'),
      truncated: count('Truncated packets'),
      retriedEnobufs: count('Retried packets \\(ENOBUFS\\)'),
      retriedEagain: count('Retried packets \\(EAGAIN\\)'),
      stdout: out,
      stderr: r.stderr,
    };
  }

  /** @param {Side} side */
  async down(side) {
    await (side === 'b' ? ip('-n', this.ns, 'link', 'set', 'dev', this.b, 'down') : ip('link', 'set', 'dev', this.iface(side), 'down'));
  }

  /** @param {Side} side */
  async up(side) {
    await (side === 'b' ? ip('-n', this.ns, 'link', 'set', 'dev', this.b, 'up') : ip('link', 'set', 'dev', this.iface(side), 'up'));
  }

  /** Deletes the veth pair (deleting end A takes B with it); the namespace stays until destroy(). */
  async removeLink() {
    const r = await run(ipBin(), ['link', 'del', 'dev', this.a], 15_000);
    if (r.code !== 0 && !/Cannot find device/.test(r.stderr)) throw new Error(`ip link del ${this.a}: ${r.stderr.trim()}`);
  }

  /**
   * Kills what the lab started, deletes the link, the namespace and tmpdir(). Safe to
   * call more than once; every call waits for the same teardown.
   * @returns {Promise<void>}
   */
  destroy() {
    this.#destroying ??= (async () => {
      const children = [...this.#children];
      for (const c of children) c.kill('SIGKILL');
      await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null
        ? undefined
        : Promise.race([new Promise((r) => c.once('close', r)), delay(2000)]))));
      // The link first: `ip netns del` only drops the name, and the pair would
      // otherwise live on until the kernel's namespace cleanup gets to it.
      await ipQuiet('link', 'del', 'dev', this.a);
      await ipQuiet('netns', 'del', this.ns);
      if (this.#tmp) rmSync(this.#tmp, { recursive: true, force: true });
      liveLabs.delete(this);
    })();
    return this.#destroying;
  }

  /** destroy() for process 'exit' handlers, where nothing asynchronous runs. */
  destroySync() {
    if (!liveLabs.has(this)) return;
    liveLabs.delete(this);
    for (const c of this.#children) c.kill('SIGKILL');
    const ipPath = toolPath('ip');
    if (ipPath) {
      spawnSync(ipPath, ['link', 'del', 'dev', this.a], { stdio: 'ignore', timeout: 10_000 });
      spawnSync(ipPath, ['netns', 'del', this.ns], { stdio: 'ignore', timeout: 10_000 });
    }
    if (this.#tmp) rmSync(this.#tmp, { recursive: true, force: true });
  }
}
