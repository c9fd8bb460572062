// PacketDispatcher's lifetime and error events as a Node user meets them: close() (and
// `using`) unregisters everything, gives the control region back and makes every later
// call a clear ECLOSED; an owner that throws reaches an 'error' listener as an EOWNER
// NetpdError carrying what it threw, and with no listener becomes one process warning
// per owner (events.ts), never silence.
import { describe, it, expect, afterEach } from 'vitest';
import { Arena } from '../bindings/arena.js';
import { PacketDispatcher } from '../bindings/dispatcher.js';
import { NetpdError } from '../bindings/errors.js';
import { arp, udp4, arpOp } from './support/frames.js';
import { load, thrown } from './support/slots.js';

const warnings: Error[] = [];
const onWarning = (w: Error) => warnings.push(w);
afterEach(() => {
  process.off('warning', onWarning);
  warnings.length = 0;
});

describe('PacketDispatcher.close', () => {
  it('unregisters every owner, keeps the counters, and refuses every later call with ECLOSED', async () => {
    const arena = Arena.create({ slotSize: 256, slotCount: 16 });
    const pd = PacketDispatcher.create({ arena });
    const seen: number[] = [];
    const id = pd.register(arpOp(1), (p) => seen.push(p.slot), { name: 'req' });
    const vec = load(arena, [arp(1), arp(2)]);
    pd.dispatchBurst(vec, 2);
    pd.close();
    pd.close(); // idempotent
    expect(pd.ownerCount).toBe(0);
    expect(pd.stats().owners).toEqual([]);
    expect(pd.stats().in).toBe(2);
    for (const call of [
      () => pd.register('arp', () => {}),
      () => pd.unregister(id),
      () => pd.dispatchBurst(vec, 2),
      () => pd.incoming.push({ arena, slot: vec[0] } as never),
    ]) {
      const err = thrown(call);
      expect(err.code).toBe('ECLOSED');
      expect(err.message).toMatch(/dispatcher was closed/);
    }
    await expect(pd.jitReady()).rejects.toMatchObject({ code: 'ECLOSED' });
    expect(seen).toHaveLength(1);
  });

  it('gives its control region back: a thousand create/close cycles fit in a region that holds a handful', () => {
    const arena = Arena.create({ slotSize: 256, slotCount: 16, controlBytes: 4 << 20 });
    for (const filterType of ['bpf', 'dpf'] as const) {
      for (let i = 0; i < 1000; i++) {
        const pd = PacketDispatcher.create({ arena, filterType, maxOwners: 64, programCapacity: 4096, jit: false, dpf: { maxNodes: 512 } });
        pd.register('udp port 53', () => {});
        pd.close();
      }
    }
    // And a dispatcher on reused space works.
    const pd = PacketDispatcher.create({ arena, maxOwners: 64, programCapacity: 4096, jit: false });
    const got: number[] = [];
    pd.register('udp port 53', (p) => got.push(p.slot));
    const vec = load(arena, [udp4(53), udp4(80)]);
    pd.dispatchBurst(vec, 2);
    expect(got).toEqual([vec[0]]);
  });

  it('stops compiling: no module is built for a closed dispatcher', async () => {
    const pd = PacketDispatcher.create({ arena: Arena.create({ slotSize: 256, slotCount: 16 }) });
    pd.register('tcp', () => {});
    pd.close();
    await new Promise((r) => setTimeout(r, 50));
    expect(pd.stats().jit.compiles).toBe(0);
  });

  it('refuses close() from inside its own netio callback, and closes after', () => {
    const arena = Arena.create({ slotSize: 256, slotCount: 16 });
    const pd = PacketDispatcher.create({ arena });
    let inner: NetpdError | undefined;
    pd.register(arpOp(1), () => { inner = thrown(() => pd.close()); });
    pd.dispatchBurst(load(arena, [arp(1)]), 1);
    expect(inner?.code).toBe('EINVAL');
    pd.close();
    expect(pd.ownerCount).toBe(0);
  });

  it('is disposable: `using` closes it at the end of the block', () => {
    let outer: PacketDispatcher;
    {
      using pd = PacketDispatcher.create({ arena: Arena.create({ slotSize: 256, slotCount: 16 }) });
      pd.register('arp', () => {});
      outer = pd;
    }
    expect(thrown(() => outer.register('arp', () => {})).code).toBe('ECLOSED');
  });
});

describe("PacketDispatcher 'error'", () => {
  it('hands a listener an EOWNER NetpdError whose cause is what the owner threw, with the owner', () => {
    const arena = Arena.create({ slotSize: 256, slotCount: 16 });
    const pd = PacketDispatcher.create({ arena });
    const boom = new Error('boom');
    const got: [NetpdError, { id: number; name: string }][] = [];
    pd.on('error', (err, owner) => got.push([err, owner]));
    const id = pd.register(arpOp(1), () => { throw boom; }, { name: 'bad' });
    pd.register(arpOp(2), { pushBatch() { throw 'a string'; } }, { name: 'worse' });
    pd.dispatchBurst(load(arena, [arp(1), arp(2)]), 2);
    expect(got.map(([e, o]) => [e.code, e.cause, o])).toEqual([
      ['EOWNER', boom, { id, name: 'bad' }],
      ['EOWNER', 'a string', { id: expect.any(Number), name: 'worse' }],
    ]);
    expect(got[0][0]).toBeInstanceOf(NetpdError);
    expect(got[0][0].message).toMatch(/owner "bad" .* threw: boom/);
    expect(got[1][0].message).toMatch(/threw: a string/);
  });

  it('without a listener, warns once per failing owner and counts every drop', async () => {
    process.on('warning', onWarning);
    const arena = Arena.create({ slotSize: 256, slotCount: 64 });
    const pd = PacketDispatcher.create({ arena, jit: false });
    pd.register(arpOp(1), () => { throw new Error('boom'); }, { name: 'bad' });
    for (let i = 0; i < 5; i++) {
      const vec = load(arena, [arp(1), arp(1), arp(1)]);
      pd.dispatchBurst(vec, 3);
      arena.freeBurst(vec, 3);
    }
    await new Promise((r) => setImmediate(r));
    expect(pd.stats().dropped['owner-error']).toBe(15);
    expect(warnings.map((w) => `${(w as NodeJS.ErrnoException).code} ${w.message}`)).toEqual([
      expect.stringMatching(/^EOWNER EOWNER: owner "bad" .*threw: boom/),
    ]);
  });
});
