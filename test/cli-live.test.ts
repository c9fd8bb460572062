// netpd run on live interfaces with tcpdump's flags: -D against `tcpdump -D`, and in a
// network namespace lab (a veth pair, test/support/netns.mjs) -Q in|out, -p, -B, -s, -w,
// -y and -i any, with pings whose direction and length are known. Needs root and ping
// for the lab; without them those tests skip and say why.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AfPacketSource } from '../bindings/live/afpacket.js';
import { PcapReader } from '../bindings/pcap/index.js';
import { createLab, type Lab } from './support/netns.mjs';
import { liveSkipReason } from './support/live-frames.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const cli = process.env.NETPD_CLI ?? join(root, 'dist/cli.js'); // NETPD_CLI: another build of the command (one with a bug put in on purpose)
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const reason = liveSkipReason('cli-live', ['ping']);

describe('netpd run -D', () => {
  it.skipIf(process.platform !== 'linux')('lists every interface with its index, state and link type, as tcpdump -D does, then any', () => {
    const r = spawnSync(process.execPath, [cli, 'run', '-D'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    const list = AfPacketSource.interfaces();
    expect(lines).toHaveLength(list.length);
    expect(lines.at(-1)).toBe('any (Pseudo-device that captures on all interfaces) [Up, Running] LINUX_SLL');
    const states = new Map<string, string>();
    for (const line of lines.slice(0, -1)) {
      const m = /^(\d+)\.(\S+) \[([^\]]*)\] (\S+)$/.exec(line);
      expect(m, line).not.toBeNull();
      const i = list.find((x) => x.name === m![2])!;
      expect(Number(m![1]), line).toBe(i.index);
      expect(m![4], line).toBe(i.linkTypeName);
      states.set(m![2], m![3]);
    }
    expect(states.get('lo')).toBe('Up, Running, Loopback');
    if (!has('tcpdump')) {
      console.log('cli-live: tcpdump is not installed; -D is not compared with tcpdump -D');
      return;
    }
    // tcpdump -D: "N.NAME [Up, Running, Loopback]" (plus words netpd does not print, such as Connected).
    for (const line of spawnSync('tcpdump', ['-D'], { encoding: 'utf8' }).stdout.trim().split('\n')) {
      const m = /^\d+\.(\S+)(?: \([^)]*\))? \[([^\]]*)\]$/.exec(line);
      // Labs of tests running beside this one (np...) come and go between the two listings.
      if (!m || !states.has(m[1]) || m[1].startsWith('np')) continue;
      const words = m[2].split(', ').filter((w) => ['Up', 'Running', 'Loopback'].includes(w));
      expect(states.get(m[1]), line).toBe(words.length ? words.join(', ') : 'none');
    }
  });
});

/** Starts `netpd run ...`; resolves once it is listening, with a promise of its exit. */
function startRun(args: string[]): Promise<{ done: Promise<{ code: number | null; stdout: string; stderr: string }> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'run', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((res) => child.once('close', (code) => { clearTimeout(timer); res({ code, stdout, stderr }); }));
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => {
      stderr += d;
      if (stderr.includes('listening on')) resolve({ done });
    });
    child.once('close', () => { if (!stderr.includes('listening on')) reject(new Error(`netpd run ${args.join(' ')} ended before listening: ${stderr}`)); });
  });
}

const lastJson = (out: string) => JSON.parse(out.trim().split('\n').pop()!) as { packets: number; owners: Record<string, { packets: number }> };
/** ICMP types of the echo packets in a capture (Ethernet or Linux cooked). */
const icmpTypes = (file: string) => {
  const reader = PcapReader.open(file);
  const link = reader.linkType;
  reader.close();
  const l3 = link === 113 ? 16 : 14;
  return { link, packets: PcapReader.readAllFromFile(file).map((p) => ({ type: p.data[l3 + 20], capLen: p.capLen, wireLen: p.wireLen })) };
};

describe.skipIf(reason !== null)('netpd run -i with tcpdump\'s live flags', () => {
  let lab: Lab;
  beforeAll(async () => { lab = await createLab('cli'); });
  afterAll(async () => { await lab?.destroy(); });

  it('-Q in sees only what comes in, -Q out only what goes out; -p, -B, -s and -w as tcpdump', async () => {
    for (const [dir, type] of [['in', 8], ['out', 0]] as const) {
      const file = join(lab.tmpdir(), `q-${dir}.pcap`);
      const run = await startRun(['-i', lab.a, '-Q', dir, '-p', '-B', '1024', '-s', '96', '-w', file, '-c', '5', '--rule', 'echo=icmp', '--json', 'icmp']);
      await lab.ping(5, { size: 200 });
      const r = await run.done;
      expect(r.code, r.stderr).toBe(0);
      const report = lastJson(r.stdout);
      expect(report.packets, dir).toBe(5);
      expect(report.owners.echo.packets, dir).toBe(5);
      const seen = icmpTypes(file);
      expect(seen.link).toBe(1);
      // Echo requests come in, replies go out; 200 bytes of data, cut to 96 by -s.
      expect(seen.packets.map((p) => p.type), dir).toEqual([type, type, type, type, type]);
      for (const p of seen.packets) expect([p.capLen, p.wireLen], dir).toEqual([96, 14 + 20 + 8 + 200]);
    }
  }, 60_000);

  it('-i any captures as Linux cooked frames, and the rules are compiled for them', async () => {
    const file = join(lab.tmpdir(), 'any.pcap');
    const run = await startRun(['-i', 'any', '-y', 'LINUX_SLL', '-w', file, '-c', '4', '--rule', 'echo=icmp and host ' + lab.addrB, '--json', `icmp and host ${lab.addrB}`]);
    await lab.ping(2);
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/listening on any, link-type LINUX_SLL/);
    expect(lastJson(r.stdout).owners.echo.packets).toBe(4);
    const seen = icmpTypes(file);
    expect(seen.link).toBe(113);
    expect(seen.packets.map((p) => p.type).sort()).toEqual([0, 0, 8, 8]);
  }, 60_000);

  it('-y names the link type expected: another is ENOTSUP', () => {
    const r = spawnSync(process.execPath, [cli, 'run', '-i', lab.a, '-y', 'LINUX_SLL', '-c', '1'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^netpd: ENOTSUP: .* captures as EN10MB, not LINUX_SLL \(-y\)/);
  });
});

describe('tcpdump\'s live flags without -i', () => {
  it('are EINVAL, naming the flag', () => {
    for (const [args, flag] of [[['-p'], '-p'], [['-B', '64'], '-B'], [['-Q', 'in'], '-Q'], [['-s', '96'], '-s'], [['-y', 'EN10MB'], '-y'], [['-F', 'x'], '-F']] as const) {
      const r = spawnSync(process.execPath, [cli, 'run', ...args], { encoding: 'utf8' });
      expect(r.status, flag).toBe(1);
      expect(r.stderr, flag).toBe(`netpd: EINVAL: ${flag} is for live capture; it needs -i IFACE\n`);
    }
  });
});
