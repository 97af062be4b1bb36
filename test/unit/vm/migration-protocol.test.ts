/**
 * The live-migration stream (main/vm/migration/protocol.ts) and its receiving side against a
 * hostile or broken source: pages round-trip (zero pages as a flag), the URI syntax, and every
 * kind of bad stream — wrong magic or version, a definition that does not validate, RAM that
 * does not fit it, pages past RAM or cut short, a final state that is not one or carries RAM,
 * an unexpected message, a header announcing a huge message, a peer that hangs up — ends the
 * receive with one MigrationError, tells the peer why, and leaves the process running.
 */
import { describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import {
  applyPages,
  dirtyPages,
  encodePages,
  MessageReader,
  MessageWriter,
  MIGRATION_MAGIC,
  MIGRATION_VERSION,
  MigrationError,
  MSG,
  PAGE_BYTES,
  parseMigrationUri,
} from '../../../main/vm/migration/protocol.js';
import { receiveMigration } from '../../../main/vm/migration/destination.js';
import { defaultVmConfig } from '../../../main/vm/config.js';
import { encodeJson, encodeStateFile } from '../../../main/vm/vmstate/file-format.js';

describe('the migration stream', () => {
  it('pages round-trip, zero pages as a flag only', () => {
    const ram = new Uint8Array(8 * PAGE_BYTES);
    ram.fill(7, 2 * PAGE_BYTES, 3 * PAGE_BYTES);
    ram[5 * PAGE_BYTES + 100] = 1;
    const data = encodePages(ram, [0, 2, 5, 7]);
    expect(data.length).toBe(4 * 4 + 2 * PAGE_BYTES); // two zero pages, two with data
    const out = new Uint8Array(ram.length).fill(0xee);
    const present = Uint8Array.of(0b1000_0001); // pages 0 and 7 held data before
    expect(applyPages(data, out, present)).toBe(4);
    expect(present[0]).toBe(0b0010_0100); // now 2 and 5 do; 0 and 7 came as zeros
    for (const p of [0, 2, 5, 7]) {
      expect(out.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES)).toEqual(
        ram.subarray(p * PAGE_BYTES, (p + 1) * PAGE_BYTES),
      );
    }
    expect(out[PAGE_BYTES]).toBe(0xee); // page 1 was not sent
  });

  it('a zero page that never held data is left untouched (fresh memory stays unallocated)', () => {
    const ram = new Uint8Array(4 * PAGE_BYTES);
    const out = new Uint8Array(ram.length).fill(0xee); // as if RAM held something: it must stay
    const present = Uint8Array.of(0b0000_0100); // page 2 held data, 1 never did
    applyPages(encodePages(ram, [1, 2]), out, present);
    expect(out[PAGE_BYTES]).toBe(0xee); // page 1: zeros already by the contract, not written
    expect(out.subarray(2 * PAGE_BYTES, 3 * PAGE_BYTES).every((b) => b === 0)).toBe(true);
    expect(present[0]).toBe(0);
  });

  it('refuses pages past RAM and entries cut short', () => {
    const ram = new Uint8Array(4 * PAGE_BYTES);
    const big = new Uint8Array(8 * PAGE_BYTES).fill(1);
    expect(() => applyPages(encodePages(big, [6]), ram)).toThrow(/page 6 is past the end of RAM/);
    const cut = encodePages(big, [1]).subarray(0, 100);
    expect(() => applyPages(cut, ram)).toThrow(/ends inside a page/);
    expect(() => applyPages(Uint8Array.of(0, 0), ram)).toThrow(/ends inside an entry/);
  });

  it('reads dirty bitmaps and tcp:HOST:PORT as QEMU writes them', () => {
    expect(dirtyPages(Uint8Array.of(0b101, 0, 0x80), 24)).toEqual([0, 2, 23]);
    expect(dirtyPages(Uint8Array.of(0xff), 3)).toEqual([0, 1, 2]);
    expect(parseMigrationUri('tcp:10.0.0.2:4444')).toEqual({ host: '10.0.0.2', port: 4444 });
    expect(parseMigrationUri('tcp::4444')).toEqual({ host: '127.0.0.1', port: 4444 });
    expect(parseMigrationUri('tcp:[::1]:5')).toEqual({ host: '::1', port: 5 });
    expect(parseMigrationUri('tcp:127.0.0.1:0', true).port).toBe(0);
    for (const bad of ['tcp:127.0.0.1:0', 'unix:/x', 'tcp:h:99999', 'tcp:h', 'exec:cat']) {
      expect(() => parseMigrationUri(bad)).toThrow(MigrationError);
    }
  });
});

/** Starts a receive on a free port and connects a fake source to it. */
async function fakeSource(): Promise<{
  incoming: Promise<unknown>;
  s: Socket;
  w: MessageWriter;
  r: MessageReader;
}> {
  let port = 0;
  const incoming = receiveMigration('tcp:127.0.0.1:0', {
    onListening: (p) => (port = p),
    timeoutMs: 5_000,
  });
  incoming.catch(() => {});
  while (!port) await new Promise((res) => setTimeout(res, 2));
  const s = await new Promise<Socket>((res) => {
    const c = connect(port, '127.0.0.1', () => res(c));
  });
  return { incoming, s, w: new MessageWriter(s), r: new MessageReader(s) };
}

const hello = (over: Record<string, unknown> = {}) => ({
  magic: MIGRATION_MAGIC,
  version: MIGRATION_VERSION,
  config: { ...defaultVmConfig('mig'), memMiB: 16 },
  ramBytes: 16 << 20,
  ...over,
});

describe('receiving a migration from a hostile or broken source', () => {
  const cases: [string, (f: Awaited<ReturnType<typeof fakeSource>>) => Promise<void>, RegExp][] = [
    [
      'wrong magic',
      async ({ w }) => w.sendJson(MSG.hello, hello({ magic: 'qemu' })),
      /not a wasmvisor migration/,
    ],
    [
      'a newer version',
      async ({ w }) => w.sendJson(MSG.hello, hello({ version: 99 })),
      /version 99/,
    ],
    [
      'a definition that does not validate',
      async ({ w }) => w.sendJson(MSG.hello, hello({ config: { name: '../x', memMiB: 16 } })),
      /"name" may use/,
    ],
    [
      "RAM that is not the definition's",
      async ({ w }) => w.sendJson(MSG.hello, hello({ ramBytes: 1 << 40 })),
      /does not fit the VM's 16 MiB/,
    ],
    [
      'a page past RAM',
      async ({ w }) => {
        await w.sendJson(MSG.hello, hello());
        await w.send(MSG.pages, encodePages(new Uint8Array(8192 * PAGE_BYTES), [5000]));
      },
      /page 5000 is past the end of RAM/,
    ],
    [
      'a final state that is not one',
      async ({ w }) => {
        await w.sendJson(MSG.hello, hello());
        await w.send(MSG.final, new TextEncoder().encode('not a state file'));
      },
      /not a wasmvisor saved-VM file|saved VM|state file/i,
    ],
    [
      'a final state with RAM in it',
      async ({ w }) => {
        await w.sendJson(MSG.hello, hello());
        const info = {
          version: 1,
          config: { ...defaultVmConfig('mig'), memMiB: 16 },
          disks: [],
          savedAt: new Date().toISOString(),
          guestMs: 0,
        };
        await w.send(
          MSG.final,
          encodeStateFile([
            { name: 'vm', version: 1, data: encodeJson(info) },
            { name: 'ram', version: 1, data: new Uint8Array(4) },
          ]),
        );
      },
      /carries RAM/,
    ],
    [
      'a message out of place',
      async ({ w }) => {
        await w.sendJson(MSG.hello, hello());
        await w.send(MSG.running);
      },
      /unexpected message/,
    ],
    [
      'a header announcing 4 GiB',
      async ({ s }) => {
        s.write(Buffer.from([MSG.hello, 0xff, 0xff, 0xff, 0xff]));
      },
      /too large/,
    ],
    [
      'a source that hangs up',
      async ({ w, s }) => {
        await w.sendJson(MSG.hello, hello());
        s.end();
      },
      /closed/,
    ],
  ];
  for (const [what, act, why] of cases) {
    it(what, async () => {
      const f = await fakeSource();
      await act(f);
      await expect(f.incoming).rejects.toThrow(MigrationError);
      await expect(f.incoming).rejects.toThrow(why);
      // The source is told why (unless it hung up).
      if (what !== 'a source that hangs up') {
        const m = await f.r.next().catch(() => undefined);
        if (m) expect(m.type).toBe(MSG.error);
      }
      f.s.destroy();
    });
  }
});
