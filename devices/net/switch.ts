/**
 * `net=switch:NAME`: an L2 learning switch joining the NICs of the VMs of one host process. A
 * port learns the source MAC of every frame it sends; a frame to a learnt unicast address goes
 * to that port only, anything else (broadcast, multicast, unknown) floods to every other port.
 *
 * A port is any `SwitchMember`: a `SwitchPort` is the cable of a NIC in this thread; a VM in a
 * worker thread reaches the switch of the main thread over a MessagePort (switch-link.ts), whose
 * main-thread end is a member too. To a NIC in this thread delivery is synchronous: the
 * receiving NIC copies the frame into its guest's RAM (or its backlog) before send() returns,
 * and VMs of one thread never run at the same time, so no frame is shared across a slice. The
 * frame object itself is shared read-only between ports. Offload metadata (a large segment, a
 * partial checksum) travels with the frame, as between two taps with vnet_hdr: two virtio-nets
 * exchange 64 KiB segments without cutting them.
 *
 * Switches live in a per-thread registry and disappear when their last port leaves.
 */
import type { NetBackend } from './backend.js';
import type { NetPacket } from './packet.js';

/** MAC table entries at most, so a guest inventing source addresses cannot grow it unbounded. */
const MAX_MACS = 1024;

export interface SwitchStats {
  ports: number;
  forwarded: number;
  flooded: number;
  macs: number;
}

/** Something plugged into a switch port: takes the frames the switch forwards to it. */
export interface SwitchMember {
  deliver(p: NetPacket): void;
}

export class NetSwitch {
  private readonly ports = new Set<SwitchMember>();
  /** MAC (48-bit number) → port. */
  private readonly macs = new Map<number, SwitchMember>();
  readonly counters = { forwarded: 0, flooded: 0 };

  constructor(readonly name: string) {}

  /** Plugs a new NIC of this thread into the switch. */
  connect(): SwitchPort {
    const p = new SwitchPort(this);
    this.join(p);
    return p;
  }

  /** Plugs any member in (a NIC of another thread, through its link). */
  join(m: SwitchMember): void {
    this.ports.add(m);
  }

  get stats(): SwitchStats {
    return { ports: this.ports.size, macs: this.macs.size, ...this.counters };
  }

  /** Unplugs a member: it is forgotten in the MAC table; the last one removes the switch. */
  leave(p: SwitchMember): void {
    this.ports.delete(p);
    for (const [mac, q] of this.macs) if (q === p) this.macs.delete(mac);
    if (this.ports.size === 0 && registry.get(this.name) === this) registry.delete(this.name);
  }

  /** A frame `from` sent: learn its source, deliver to the port of its destination or flood. */
  forward(from: SwitchMember, pkt: NetPacket): void {
    const d = pkt.data;
    if (d.length < 14) return;
    const src = mac48(d, 6);
    // Learn only unicast sources (a multicast source address is bogus).
    if ((d[6] & 1) === 0 && this.macs.get(src) !== from) {
      if (this.macs.size >= MAX_MACS) this.macs.clear();
      this.macs.set(src, from);
    }
    if ((d[0] & 1) === 0) {
      const to = this.macs.get(mac48(d, 0));
      if (to) {
        if (to !== from) {
          this.counters.forwarded++;
          to.deliver(pkt);
        }
        return;
      }
    }
    this.counters.flooded++;
    for (const p of this.ports) if (p !== from) p.deliver(pkt);
  }
}

function mac48(d: Uint8Array, o: number): number {
  return (
    d[o] * 2 ** 40 +
    d[o + 1] * 2 ** 32 +
    ((d[o + 2] << 24) >>> 0) +
    ((d[o + 3] << 16) | (d[o + 4] << 8) | d[o + 5])
  );
}

/** One NIC's cable into a switch of its own thread: a NetBackend. */
export class SwitchPort implements NetBackend, SwitchMember {
  readonly spec: string;
  onReceive: ((p: NetPacket) => void) | undefined;
  onCarrier: ((up: boolean) => void) | undefined;
  private closed = false;

  constructor(private readonly sw: NetSwitch) {
    this.spec = `switch:${sw.name}`;
  }

  get carrier(): boolean {
    return !this.closed;
  }

  send(p: NetPacket): void {
    if (!this.closed) this.sw.forward(this, p);
  }

  /** @internal */
  deliver(p: NetPacket): void {
    this.onReceive?.(p);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sw.leave(this);
  }
}

const registry = new Map<string, NetSwitch>();

/** The switch called `name` in this thread, created on first use. */
export function netSwitch(name: string): NetSwitch {
  let s = registry.get(name);
  if (!s) {
    s = new NetSwitch(name);
    registry.set(name, s);
  }
  return s;
}

/** Switches that currently have ports (for tests and the stats). */
export function switchNames(): string[] {
  return [...registry.keys()];
}
