// Checks the live-link lab (test/support/netns.mjs) that the AF_PACKET tests and the
// live benchmarks stand on: if it lost packets, leaked IPv6 noise into captures or left
// links behind, their failures would point at netpd. Needs root, iproute2, tcpdump and
// ping; without them these tests skip and say why.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createLab, labSkipReason, toolPath, toolSkipReason } from './support/netns.mjs';

const reason = labSkipReason() ?? toolSkipReason('tcpdump') ?? toolSkipReason('ping');
if (reason) console.log(`netns: skipped: ${reason}`);

const ip = toolPath('ip') ?? 'ip';
const netnsNames = () => spawnSync(ip, ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.split(' ')[0]);

describe.skipIf(reason !== null)('netns lab harness', () => {
  it('carries 20 pings from B to A, all of them seen by tcpdump on A, and leaves nothing behind', async () => {
    const lab = await createLab('t');
    try {
      expect(lab.a.length).toBeLessThanOrEqual(15);
      expect(lab.b.length).toBeLessThanOrEqual(15);
      expect(existsSync(`/sys/class/net/${lab.a}`)).toBe(true);
      expect(lab.ifindexA).toBeGreaterThan(0);
      expect(lab.macA).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);

      const icmp = await lab.tcpdump({ side: 'a', args: ['icmp'] });
      // IPv6 is off on both ends, so nothing at all should show up here.
      const ip6 = await lab.tcpdump({ side: 'b', args: ['ip6'] });
      const ping = await lab.ping(20);
      expect(ping.received, ping.stdout + ping.stderr).toBe(20);
      const stats = await icmp.stop();
      expect(stats).toMatchObject({ captured: 40, receivedByFilter: 40, droppedByKernel: 0 });
      expect((await ip6.stop()).receivedByFilter).toBe(0);

      const lines = spawnSync('tcpdump', ['-r', stats.file, '-n'], { encoding: 'utf8' }).stdout.trim().split('\n');
      expect(lines.filter((l) => l.includes(`${lab.addrB} > ${lab.addrA}: ICMP echo request`))).toHaveLength(20);
      expect(lines.filter((l) => l.includes(`${lab.addrA} > ${lab.addrB}: ICMP echo reply`))).toHaveLength(20);
    } finally {
      await lab.destroy();
    }
    expect(netnsNames()).not.toContain(lab.ns);
    expect(existsSync(`/sys/class/net/${lab.a}`)).toBe(false);
    expect(spawnSync(ip, ['link', 'show', 'dev', lab.a]).status).not.toBe(0);
  });

  it('gives labs made at once their own names and subnets', async () => {
    const labs = await Promise.all([createLab('u'), createLab('u')]);
    try {
      const [x, y] = labs;
      expect(new Set([x.a, x.b, y.a, y.b, x.ns, y.ns]).size).toBe(6);
      expect(x.addrA).not.toBe(y.addrA);
      // Each lab's traffic stays on its own pair.
      const [px, py] = await Promise.all([x.ping(5), y.ping(5, { from: 'a' })]);
      expect([px.received, py.received]).toEqual([5, 5]);
    } finally {
      await Promise.all(labs.map((l) => l.destroy()));
    }
    for (const l of labs) expect(netnsNames()).not.toContain(l.ns);
  });
});
