// A worker thread that instantiates the core over a shared arena memory and either
// produces distinct values into a ring or consumes them, for the ring concurrency test.
import { parentPort, workerData } from 'node:worker_threads';
import { readFileSync } from 'node:fs';

const { memory, ring, vec, burst, role, id, perProducer, producers, done } = workerData;
const module = new WebAssembly.Module(readFileSync(new URL('../../wasm/netpd.wasm', import.meta.url)));
const core = new WebAssembly.Instance(module, { env: { memory } }).exports;
const words = new Uint32Array(memory.buffer);
const counters = new Int32Array(memory.buffer);
const v = vec >>> 2;

if (role === 'producer') {
  let next = 0;
  while (next < perProducer) {
    const n = Math.min(burst, perProducer - next);
    for (let i = 0; i < n; i++) words[v + i] = id * perProducer + next + i;
    let put = 0;
    while (put < n) {
      put += core.ring_enqueue_burst(ring, vec + put * 4, n - put);
    }
    next += n;
  }
  parentPort.postMessage({ produced: next });
} else {
  const last = new Array(producers).fill(-1);
  let got = 0;
  let sum = 0;
  let ordered = true;
  const total = perProducer * producers;
  while (Atomics.load(counters, done >>> 2) < total) {
    const n = core.ring_dequeue_burst(ring, vec, burst);
    for (let i = 0; i < n; i++) {
      const x = words[v + i];
      const p = Math.floor(x / perProducer);
      if (x <= last[p]) ordered = false;
      last[p] = x;
      sum += x;
    }
    got += n;
    if (n > 0) Atomics.add(counters, done >>> 2, n);
  }
  parentPort.postMessage({ got, sum, ordered });
}
