/**
 * A host process with one NIC on a shared switch, for switch-socket.test.ts: argv is the runtime
 * directory, the switch name and the last byte of the NIC's MAC (52:54:00:00:00:NN). It prints
 * one JSON line per event on stdout (`{"peers":n}` when its number of links changes, `{"rx":…}`
 * per frame its NIC receives) and takes JSON lines on stdin (`{"send":…}`, `{"stats":1}`,
 * `{"exit":code}`).
 */
import { createInterface } from 'node:readline';
import { netSwitch } from '../../../devices/net/switch.js';
import {
  sharedSwitchSocket,
  sharedSwitchStats,
  shareSwitchesBetweenProcesses,
} from '../../../devices/net/switch-socket.js';
import type { NetPacket } from '../../../devices/net/packet.js';

const [runtimeDir, name, me] = process.argv.slice(2);
const say = (o: unknown): boolean => process.stdout.write(JSON.stringify(o) + '\n');

shareSwitchesBetweenProcesses({ runtimeDir, log: (m) => process.stderr.write(`child: ${m}\n`) });
const port = netSwitch(name).connect();
port.onReceive = (p: NetPacket) =>
  say({
    rx: {
      dst: p.data[5],
      src: p.data[11],
      len: p.data.length,
      sum: p.data.reduce((a, b) => (a + b) >>> 0, 0),
      csum: p.csum,
      gso: p.gso,
      valid: p.csumValid,
    },
  });

let peers = -1;
setInterval(() => {
  const n = sharedSwitchStats(name)?.peers ?? 0;
  if (n !== peers) say({ peers: (peers = n), socket: sharedSwitchSocket(name) });
}, 20);

/** 52:54:00:00:00:n, or the broadcast address for 255. */
const mac = (n: number): number[] => (n === 0xff ? Array(6).fill(0xff) : [0x52, 0x54, 0, 0, 0, n]);

interface Send {
  dst: number;
  len: number;
  count?: number;
  csum?: { start: number; offset: number };
  gso?: { type: 0 | 1 | 4; size: number; hdrLen: number };
}
createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line) as { send?: Send; stats?: 1; exit?: number };
  if (cmd.send) {
    const s = cmd.send;
    for (let k = 0; k < (s.count ?? 1); k++) {
      const d = new Uint8Array(s.len);
      for (let i = 14; i < d.length; i++) d[i] = (i * 7 + k) & 0xff;
      d.set(mac(s.dst), 0);
      d.set(mac(Number(me)), 6);
      d[12] = 0x08;
      port.send({ data: d, csum: s.csum, gso: s.gso });
    }
  }
  if (cmd.stats) say({ stats: sharedSwitchStats(name) });
  if (cmd.exit !== undefined) process.exit(cmd.exit);
});
