// AfPacketSource when things go wrong, on a real link: opening without CAP_NET_RAW, on
// an interface that does not exist or is down, with a bad filter; the interface going
// down or being deleted while frames flow; the arena running out of slots while frames
// keep coming; the kernel dropping frames because nobody read the socket in time; an
// onBurst callback that throws; and closing (AbortSignal, close() twice). Each must end
// in a clear NetpdError or a counted drop, with every slot back in the arena and the
// process alive. Needs root, tcpdump, tcpreplay, ping and Habets' arping (and setpriv
// for the EPERM case); without them the tests skip and say why.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AfPacketSource, Arena, NetpdError, PacketDispatcher } from '../bindings/index.js';
import { createLab, toolPath, type Lab } from './support/netns.mjs';
import { thrown } from './support/slots.js';
import { collector, liveSkipReason, multisetDiff, readFrames, root, samplePath, settleAt, waitFor } from './support/live-frames.js';

const reason = liveSkipReason('afpacket-errors', ['tcpdump', 'tcpreplay', 'ping', 'arping']);
const NANO = ['--time-stamp-precision=nano'];

/** Runs `node -e script` with the given wrapper argv in front (setpriv ...); resolves with its output. */
function runNode(prefix: string[], script: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = [...prefix, process.execPath, '--input-type=module', '-e', script];
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

describe.skipIf(reason !== null)('AfPacketSource.open errors', () => {
  let lab: Lab;
  beforeEach(async () => { lab = await createLab('err'); });
  afterEach(async () => { await lab?.destroy(); });

  it('EPERM, saying how to grant CAP_NET_RAW, when the process lacks it (as root without the capability, and as nobody)', async (ctx) => {
    const setpriv = toolPath('setpriv');
    const dist = join(root, 'dist/index.js');
    if (!setpriv) {
      console.log('afpacket-errors: EPERM case skipped: setpriv (util-linux) not found');
      ctx.skip();
      return;
    }
    // The child runs the built package (npm test builds it first).
    expect(existsSync(dist), `${dist} is missing: run npm run build`).toBe(true);
    const script = `
      import { AfPacketSource, Arena } from ${JSON.stringify(dist)};
      const arena = Arena.create({ slotSize: 2048, slotCount: 64 });
      try {
        AfPacketSource.open(${JSON.stringify(lab.a)}, { arena }).close();
        console.log(JSON.stringify({ opened: true }));
      } catch (e) {
        console.log(JSON.stringify({ code: e.code, message: e.message }));
      }`;
    const ways = {
      'root without CAP_NET_RAW': [setpriv, '--inh-caps=-net_raw,-net_admin', '--ambient-caps=-net_raw,-net_admin', '--bounding-set=-net_raw,-net_admin'],
      nobody: [setpriv, '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all'],
    };
    for (const [who, prefix] of Object.entries(ways)) {
      const r = await runNode(prefix, script);
      expect(r.code, `${who}: ${r.stderr}`).toBe(0);
      const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { code?: string; message?: string; opened?: boolean };
      expect(out.code, `${who}: ${r.stdout}`).toBe('EPERM');
      expect(out.message).toMatch(/CAP_NET_RAW/);
      expect(out.message).toMatch(/setcap cap_net_raw/);
    }
  });

  it('ENODEV for an interface that does not exist (or whose name is too long to exist)', () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 64 });
    for (const name of ['npnosuch0', 'a-name-longer-than-ifnamsiz']) {
      const e = thrown(() => AfPacketSource.open(name, { arena }));
      expect(e.code).toBe('ENODEV');
      expect(e.message).toContain(name);
    }
    expect(arena.stats.inUse).toBe(0);
  });

  it('ENETDOWN for an interface that is down, for receive and for transmit only', async () => {
    await lab.down('a');
    const arena = Arena.create({ slotSize: 2048, slotCount: 64 });
    for (const opts of [{}, { rxMode: 'mmsg' as const }, { transmitOnly: true }]) {
      const e = thrown(() => AfPacketSource.open(lab.a, { arena, ...opts }));
      expect(e.code).toBe('ENETDOWN');
      expect(e.message).toContain(`ip link set ${lab.a} up`);
    }
    await lab.up('a');
    AfPacketSource.open(lab.a, { arena }).close();
  });

  it('EFILTER for an expression that does not compile, EBADPROG for a bad program, EINVAL for bad options', () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 64 });
    expect(thrown(() => AfPacketSource.open(lab.a, { arena, filter: 'tcp porty 80' })).code).toBe('EFILTER');
    expect(thrown(() => AfPacketSource.open(lab.a, { arena, filter: [{ code: 0x05, jt: 0, jf: 0, k: 7 }] })).code).toBe('EBADPROG');
    expect(thrown(() => AfPacketSource.open(lab.a, {})).code).toBe('EINVAL');
    expect(thrown(() => AfPacketSource.open('', { arena })).code).toBe('EINVAL');
    expect(thrown(() => AfPacketSource.open(lab.a, { arena, snaplen: 0 })).code).toBe('EINVAL');
    expect(thrown(() => AfPacketSource.open(lab.a, { arena, burstSize: 0 })).code).toBe('EINVAL');
    expect(thrown(() => AfPacketSource.open(lab.a, { arena, fanout: { group: 1, mode: 'nope' as 'hash' } })).code).toBe('EINVAL');
    expect(thrown(() => AfPacketSource.open(lab.a, { arena, fanout: { group: 70000 } })).code).toBe('EINVAL');
    const pd = PacketDispatcher.create({ arena });
    expect(thrown(() => AfPacketSource.open(lab.a, { dispatcher: pd, onBurst: () => {} })).code).toBe('EINVAL');
    expect(thrown(() => AfPacketSource.open(lab.a, { dispatcher: pd, arena: Arena.create({ slotSize: 2048, slotCount: 8 }) })).code).toBe('EINVAL');
    expect(arena.stats.inUse).toBe(0);
  });
});

describe.skipIf(reason !== null).each(['ring', 'mmsg'] as const)('AfPacketSource losing its interface (rxMode %s)', (rxMode) => {
  let lab: Lab;
  beforeEach(async () => { lab = await createLab('gone'); });
  afterEach(async () => { await lab?.destroy(); });

  /**
   * Opens a source, gets frames flowing (ping every 2 ms), runs `cut` once some have
   * arrived, and checks the source reports ENETDOWN, closes itself, and gives every
   * slot back.
   */
  async function loseInterface(cut: () => Promise<void>) {
    const arena = Arena.create({ slotSize: 2048, slotCount: 1024 });
    const got = collector(arena);
    const source = AfPacketSource.open(lab.a, { arena, rxMode, onBurst: got.onBurst });
    const errors: NetpdError[] = [];
    let closes = 0;
    source.on('error', (e: NetpdError) => errors.push(e));
    source.on('close', () => { closes++; });
    // ping from B every 2 ms for as long as it takes (killed below).
    const ping = lab.spawn('ping', ['-n', '-q', '-i', '0.002', '-w', '20', lab.addrA], { ns: true, stdio: 'ignore' });
    const pingDone = new Promise((r) => ping.once('close', r));
    try {
      expect(await waitFor(() => got.frames.length >= 20, 5000)).toBe(true);
      await cut();
      expect(await waitFor(() => errors.length > 0, 3000), 'no error event after the interface went away').toBe(true);
    } finally {
      ping.kill('SIGINT');
      await pingDone;
      if (source.open) source.close();
    }
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(NetpdError);
    // libuv reports epoll's EPOLLERR as UV_EBADF; the source must read the socket's own
    // error (SO_ERROR, or the first read after it), which is ENETDOWN.
    expect(errors[0].code, errors[0].message).toBe('ENETDOWN');
    expect(errors[0].message).toContain(lab.a);
    expect(source.open).toBe(false);
    expect(closes).toBe(1);
    expect(arena.stats.inUse).toBe(0);
    // Reading the counters of a closed source still works; using it does not.
    expect(source.stats().received).toBe(got.frames.length);
    expect(thrown(() => source.drain()).code).toBe('ECLOSED');
  }

  it('reports ENETDOWN when the interface is deleted mid-capture, closes itself and frees every slot', async () => {
    await loseInterface(() => lab.removeLink());
  });

  it('reports ENETDOWN when the interface is set down mid-capture, closes itself and frees every slot', async () => {
    await loseInterface(() => lab.down('a'));
  });

  it('without an error listener, warns instead of throwing into the event loop', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 256 });
    const source = AfPacketSource.open(lab.a, { arena, rxMode, onBurst: () => {} });
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      expect((await lab.ping(2)).received).toBe(2);
      await lab.removeLink();
      expect(await waitFor(() => !source.open, 3000), 'the source did not close after its interface was deleted').toBe(true);
      expect(await waitFor(() => warnings.length > 0, 1000)).toBe(true);
      expect(warnings.map((w) => `${(w as NodeJS.ErrnoException).code}: ${w.message}`)).toEqual([expect.stringMatching(/^ENETDOWN: .*went down or was removed/)]);
    } finally {
      process.off('warning', onWarning);
      source.close();
    }
    expect(arena.stats.inUse).toBe(0);
  });
});

describe.skipIf(reason !== null).each(['ring', 'mmsg'] as const)('AfPacketSource with the arena exhausted (rxMode %s)', (rxMode) => {
  let lab: Lab;
  beforeEach(async () => { lab = await createLab('full'); });
  afterEach(async () => { await lab?.destroy(); });

  it('counts frames as noslot drops while no slot is free, and receives intact frames once slots come back', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 64 });
    const frames: Buffer[] = [];
    const pd = PacketDispatcher.create({ arena, defaultNetio: (p) => { frames.push(Buffer.from(p.data)); } });
    const source = AfPacketSource.open(lab.a, { dispatcher: pd, rxMode, burstSize: 16 });
    // Take every slot before the source can stash any (it allocates on its first wake-up).
    const held = arena.burstVector(64);
    expect(arena.allocBurst(held, 64)).toBe(64);
    try {
      const dump1 = await lab.tcpdump({ side: 'a', args: NANO });
      expect((await lab.ping(10)).received).toBe(10);
      expect((await lab.arping(5)).received).toBe(5);
      const seen1 = readFrames((await dump1.stop()).file);
      expect(seen1.length).toBeGreaterThanOrEqual(30);
      const n1 = await settleAt(() => source.stats().dropped.noslot, seen1.length);
      expect(n1).toBe(seen1.length);
      let s = source.stats();
      expect(s.received).toBe(0);
      expect(frames).toHaveLength(0);
      let d = pd.stats();
      expect(d.dropped.noslot).toBe(seen1.length);
      expect(d.in).toBe(seen1.length);
      expect(d.delivered).toBe(0);
      expect(arena.stats.inUse).toBe(64);

      // Slots come back: the next frames are received, byte for byte what tcpdump saw.
      expect(arena.freeBurst(held, 64)).toBe(64);
      const dump2 = await lab.tcpdump({ side: 'a', args: NANO });
      expect((await lab.ping(40, { size: 1000 })).received).toBe(40);
      const seen2 = readFrames((await dump2.stop()).file);
      expect(seen2.length).toBeGreaterThanOrEqual(80);
      await settleAt(() => frames.length, seen2.length);
      expect(multisetDiff(frames.map((data) => ({ data })), seen2)).toEqual({ onlyA: [], onlyB: [] });

      s = source.stats();
      expect(s.received).toBe(seen2.length);
      expect(s.dropped.noslot).toBe(seen1.length);
      // Every frame the kernel accepted is accounted for once.
      expect(s.received + s.dropped.noslot + s.dropped.kernel).toBe(s.kernel.packets);
      d = pd.stats();
      expect(d.in).toBe(s.kernel.packets);
      expect(d.in).toBe(d.delivered + Object.values(d.dropped).reduce((a, b) => a + b, 0));
    } finally {
      source.close();
    }
    expect(arena.stats.inUse).toBe(0);
  });
});

describe.skipIf(reason !== null).each(['ring', 'mmsg'] as const)('AfPacketSource when the kernel drops (rxMode %s)', (rxMode) => {
  let lab: Lab;
  beforeEach(async () => { lab = await createLab('kdrop', { mtu: 9000 }); });
  afterEach(async () => { await lab?.destroy(); });

  it('counts each frame the kernel accepted once: received + kernel drops = kernel packets = what tcpdump saw', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 8192 });
    const frames: Buffer[] = [];
    const pd = PacketDispatcher.create({ arena, defaultNetio: (p) => { frames.push(Buffer.from(p.data)); } });
    // The smallest buffer: a 256 KiB ring (two 128 KiB blocks), or a 64 KiB socket buffer.
    const source = AfPacketSource.open(lab.a, { dispatcher: pd, rxMode, bufferBytes: 1 << 16, statsIntervalMs: 50 });
    try {
      // tcpdump with a snap length its ring can hold ~16000 of (see afpacket-transmit).
      const dump = await lab.tcpdump({ side: 'a', args: [...NANO, '-s', '4096'] });
      // 5 × 2924 frames at full speed while this thread is blocked, so nothing reads
      // netpd's socket: its ring or buffer fills and the kernel drops the rest.
      const replay = lab.spawn('tcpreplay', ['-i', lab.b, '--topspeed', '--loop=5', '--preload-pcap', samplePath], { ns: true });
      const replayDone = new Promise<number | null>((r) => replay.once('close', r));
      const blocker = new Int32Array(new SharedArrayBuffer(4));
      const until = Date.now() + 10_000;
      const state = () => { try { return readFileSync(`/proc/${replay.pid}/stat`, 'utf8').split(') ')[1]?.[0]; } catch { return 'gone'; } };
      while (state() !== 'Z' && state() !== 'gone' && Date.now() < until) Atomics.wait(blocker, 0, 0, 10);
      expect(await replayDone).toBe(0);
      // tcpdump -U writes a packet per system call, so it can trail a top-speed replay
      // by tens of milliseconds: give it time to write all it has before the SIGINT.
      const stats = await dump.stop({ settleMs: 1000 });
      expect(stats.droppedByKernel).toBe(0);
      expect(stats.captured).toBe(stats.receivedByFilter);
      const theirs = readFrames(stats.file);
      expect(theirs.length).toBeGreaterThan(10_000);
      // The stats timer merges the kernel's drops into the dispatcher's without a stats() call.
      await settleAt(() => pd.stats().dropped.kernel, 1);
      expect(pd.stats().dropped.kernel).toBeGreaterThan(0);
      const accounted = () => { const s = source.stats(); return s.received + s.dropped.kernel + s.dropped.noslot; };
      await settleAt(accounted, theirs.length);
      const s = source.stats();
      expect(s.dropped.kernel, 'the kernel dropped nothing: the test did not overflow the socket').toBeGreaterThan(0);
      expect(s.received).toBeGreaterThan(0);
      expect(s.dropped.noslot).toBe(0);
      expect(s.kernel.packets).toBe(theirs.length);
      expect(s.received + s.dropped.kernel).toBe(s.kernel.packets);
      // What was received is what tcpdump saw (a sub-multiset of it), byte for byte.
      expect(frames).toHaveLength(s.received);
      expect(multisetDiff(frames.map((data) => ({ data })), theirs).onlyA).toEqual([]);
      // The dispatcher counts the kernel's drops as its own.
      const d = pd.stats();
      expect(d.dropped.kernel).toBe(s.dropped.kernel);
      expect(d.in).toBe(s.kernel.packets);
      expect(d.in).toBe(d.delivered + Object.values(d.dropped).reduce((a, b) => a + b, 0));
    } finally {
      source.close();
    }
    expect(arena.stats.inUse).toBe(0);
  });
});

describe.skipIf(reason !== null)('closing an AfPacketSource', () => {
  let lab: Lab;
  beforeEach(async () => { lab = await createLab('close'); });
  afterEach(async () => { await lab?.destroy(); });

  it('closes on AbortSignal, once; close() is idempotent and emits "close" once', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 256 });
    const ac = new AbortController();
    const got = collector(arena);
    const source = AfPacketSource.open(lab.a, { arena, onBurst: got.onBurst, signal: ac.signal });
    let closes = 0;
    source.on('close', () => { closes++; });
    expect((await lab.ping(3)).received).toBe(3);
    await settleAt(() => got.frames.length, 8);
    expect(source.open).toBe(true);
    ac.abort();
    expect(source.open).toBe(false);
    expect(closes).toBe(1);
    source.close();
    source.close();
    expect(closes).toBe(1);
    expect(arena.stats.inUse).toBe(0);
    const before = got.frames.length;
    expect((await lab.ping(3)).received).toBe(3);
    await new Promise((r) => setTimeout(r, 50));
    expect(got.frames.length).toBe(before);
    expect(thrown(() => source.send(arena.burstVector(1), 0)).code).toBe('ECLOSED');
  });

  it('refuses a signal that is already aborted', () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 64 });
    expect(() => AfPacketSource.open(lab.a, { arena, signal: AbortSignal.abort() })).toThrow(/abort/i);
    expect(arena.stats.inUse).toBe(0);
  });

  it('an onBurst that throws gets an "error" event; the source frees the burst and keeps receiving', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 256 });
    let calls = 0;
    let frames = 0;
    const source = AfPacketSource.open(lab.a, {
      arena,
      onBurst: (_vec, n) => {
        if (calls++ === 0) throw new Error('owner bug');
        frames += n;
      },
    });
    const errors: Error[] = [];
    source.on('error', (e: Error) => errors.push(e));
    try {
      expect((await lab.ping(10, { intervalS: 0.01 })).received).toBe(10);
      expect(await waitFor(() => frames >= 10, 3000)).toBe(true);
      expect(errors.map((e) => [(e as NetpdError).code, (e.cause as Error).message])).toEqual([['EOWNER', 'owner bug']]);
      expect(source.open).toBe(true);
    } finally {
      source.close();
    }
    expect(arena.stats.inUse).toBe(0);
  });
});
