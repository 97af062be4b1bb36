/**
 * The host end of `switch-link` (main/host/vm-runner.ts): a VM worker hands over one end of a
 * channel per `switch:NAME` NIC and the runner plugs it into the main thread's switch. A stand-in
 * worker sends a bad request (no port, an invalid name) and a good one: the bad ones are refused
 * (the channel is closed, so the worker's NIC sees no carrier) without harming the host, the
 * good one joins, and the port leaves when the worker is terminated.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmRunner } from '../../../main/host/vm-runner.js';
import { defaultVmConfig } from '../../../main/vm/config.js';
import { netSwitch } from '../../../devices/net/index.js';
import { switchNames } from '../../../devices/net/switch.js';

const WORKER = `
import { parentPort, MessageChannel } from 'node:worker_threads';
parentPort.postMessage({ type: 'switch-link', name: 'vmr-ok', port: 42 });
const bad = new MessageChannel();
bad.port1.on('close', () => parentPort.postMessage({ type: 'log', message: 'bad name refused' }));
bad.port1.on('message', () => {});
parentPort.postMessage({ type: 'switch-link', name: '../evil', port: bad.port2 }, [bad.port2]);
const good = new MessageChannel();
good.port1.on('message', () => {});
parentPort.postMessage({ type: 'switch-link', name: 'vmr-ok', port: good.port2 }, [good.port2]);
setInterval(() => {}, 1000);
`;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("VmRunner: a worker's switch ports", () => {
  it('plugs a good request into the switch, refuses bad ones, unplugs when the worker ends', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wasmvisor-vmr-'));
    dirs.push(dir);
    const path = join(dir, 'worker.mjs');
    writeFileSync(path, WORKER);
    const logs: string[] = [];
    const r = new VmRunner(path, {
      state: () => {},
      stats: () => {},
      devices: () => {},
      console: () => {},
      log: (m) => logs.push(m),
    });
    r.start(defaultVmConfig('vmr'));
    await until(() => logs.includes('bad name refused') && switchNames().includes('vmr-ok'));
    expect(netSwitch('vmr-ok').stats.ports).toBe(1);
    expect(switchNames()).not.toContain('../evil');
    r.stop(true);
    await r.whenStopped();
    await until(() => !switchNames().includes('vmr-ok'));
  });
});
