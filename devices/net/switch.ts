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
 * Switches live in a per-thread registry and disappear when their last port leaves. When the
 * host shares switches with its other processes (switch-socket.ts), a switch is told to its
 * `SwitchUplinks` when it gets its first NIC and when its last NIC leaves; the links to other
 * processes are `peer` members, which neither keep a switch alive nor forward to each other.
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
  /**
   * A link to the same switch in another host process (switch-socket.ts). The processes of a
   * switch are fully meshed, each reaching every other directly, so a frame that came from one
   * peer never goes out to another (split horizon: no loops, no duplicates), and peers alone do
   * not keep a switch alive.
   */
  readonly peer?: boolean;
}

/** Told when a switch gets its first NIC (not a peer) and when its last one leaves. */
export interface SwitchUplinks {
  active(sw: NetSwitch): void;
  idle(sw: NetSwitch): void;
}
let uplinks: SwitchUplinks | undefined;

/** Sets (or with undefined, clears) what joins this thread's switches to other processes. */
export function setSwitchUplinks(u: SwitchUplinks | undefined): void {
  uplinks = u;
}

export class NetSwitch {
  private readonly ports = new Set<SwitchMember>();
  /** MAC (48-bit number) → port. */
  private readonly macs = new Map<number, SwitchMember>();
  readonly counters = { forwarded: 0, flooded: 0 };
  /** Members that are not peers (NICs, links to worker threads). */
  private locals = 0;

  constructor(readonly name: string) {}

  /** Plugs a new NIC of this thread into the switch. */
  connect(): SwitchPort {
    const p = new SwitchPort(this);
    this.join(p);
    return p;
  }

  /** Plugs any member in (a NIC of another thread, through its link). */
  join(m: SwitchMember): void {
    if (this.ports.has(m)) return;
    this.ports.add(m);
    if (!m.peer && this.locals++ === 0) uplinks?.active(this);
  }

  get stats(): SwitchStats {
    return { ports: this.ports.size, macs: this.macs.size, ...this.counters };
  }

  /** Unplugs a member: it is forgotten in the MAC table; the last one removes the switch. */
  leave(p: SwitchMember): void {
    if (!this.ports.delete(p)) return;
    for (const [mac, q] of this.macs) if (q === p) this.macs.delete(mac);
    if (p.peer || --this.locals > 0) return;
    if (registry.get(this.name) === this) registry.delete(this.name);
    uplinks?.idle(this);
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
        if (to !== from && !(to.peer && from.peer)) {
          this.counters.forwarded++;
          to.deliver(pkt);
        }
        return;
      }
    }
    this.counters.flooded++;
    for (const p of this.ports) if (p !== from && !(p.peer && from.peer)) p.deliver(pkt);
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
