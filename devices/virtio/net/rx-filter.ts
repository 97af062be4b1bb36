/**
 * virtio-net's receive filter (virtio 1.2 §5.1.6.5.1–2): which destination MACs the device
 * gives to the guest. The driver sets it through the control queue (ctrl.ts): the rx modes
 * (promiscuous, all-multicast and the CTRL_RX_EXTRA ones), the MAC it answers to
 * (MAC_ADDR_SET, also the config-space MAC) and a table of extra unicast and multicast
 * addresses (MAC_TABLE_SET).
 *
 * Bounded as QEMU bounds it: at most 64 table entries in all; a class (unicast or multicast)
 * whose entries do not fit overflows, and the device then accepts every address of that class,
 * as the spec allows ("it can silently switch to all-multicast or promiscuous mode").
 *
 * After reset the filter is promiscuous, as QEMU's: a driver that never sends rx-mode commands
 * (no CTRL_RX) keeps receiving everything. Linux turns promiscuous mode off when the interface
 * goes up.
 */

/** Unicast + multicast entries the table holds at most (QEMU's MAC_TABLE_ENTRIES). */
export const MAC_TABLE_ENTRIES = 64;

export interface RxFilterState {
  mac: number[];
  promisc: boolean;
  allmulti: boolean;
  alluni: boolean;
  nomulti: boolean;
  nouni: boolean;
  nobcast: boolean;
  unicast: number[][];
  multicast: number[][];
  unicastOverflow: boolean;
  multicastOverflow: boolean;
}

/** The rx modes of the VIRTIO_NET_CTRL_RX class, by name. */
export type RxMode = 'promisc' | 'allmulti' | 'alluni' | 'nomulti' | 'nouni' | 'nobcast';

export class RxFilter {
  /** The MAC the device answers to: config space, and unicast frames to it pass. */
  readonly mac = new Uint8Array(6);
  promisc = true;
  allmulti = false;
  alluni = false;
  nomulti = false;
  nouni = false;
  nobcast = false;
  private unicast: Uint8Array[] = [];
  private multicast: Uint8Array[] = [];
  private unicastOverflow = false;
  private multicastOverflow = false;

  constructor(mac: Uint8Array) {
    this.reset(mac);
  }

  /** Device reset: the configured MAC, promiscuous, empty table. */
  reset(mac: Uint8Array): void {
    this.mac.set(mac.subarray(0, 6));
    this.promisc = true;
    this.allmulti = this.alluni = this.nomulti = this.nouni = this.nobcast = false;
    this.setTable([], false, [], false);
  }

  setMode(mode: RxMode, on: boolean): void {
    this[mode] = on;
  }

  /** Replaces the table (entries are copied); an overflowing class accepts all of its kind. */
  setTable(
    unicast: readonly Uint8Array[],
    unicastOverflow: boolean,
    multicast: readonly Uint8Array[],
    multicastOverflow: boolean,
  ): void {
    this.unicast = unicast.map((m) => m.slice(0, 6));
    this.multicast = multicast.map((m) => m.slice(0, 6));
    this.unicastOverflow = unicastOverflow;
    this.multicastOverflow = multicastOverflow;
  }

  get unicastEntries(): number {
    return this.unicast.length;
  }
  get multicastEntries(): number {
    return this.multicast.length;
  }
  get overflowed(): { unicast: boolean; multicast: boolean } {
    return { unicast: this.unicastOverflow, multicast: this.multicastOverflow };
  }

  /** Whether a frame with this Ethernet header is for the guest. */
  accepts(frame: Uint8Array): boolean {
    if (this.promisc) return true;
    if (frame.length < 6) return false;
    if (frame[0] & 1) {
      if (isBroadcast(frame)) return !this.nobcast;
      if (this.nomulti) return false;
      if (this.allmulti || this.multicastOverflow) return true;
      return this.multicast.some((m) => sameMac(m, frame));
    }
    if (this.nouni) return false;
    if (this.alluni || this.unicastOverflow) return true;
    return sameMac(this.mac, frame) || this.unicast.some((m) => sameMac(m, frame));
  }

  save(): RxFilterState {
    return {
      mac: Array.from(this.mac),
      promisc: this.promisc,
      allmulti: this.allmulti,
      alluni: this.alluni,
      nomulti: this.nomulti,
      nouni: this.nouni,
      nobcast: this.nobcast,
      unicast: this.unicast.map((m) => Array.from(m)),
      multicast: this.multicast.map((m) => Array.from(m)),
      unicastOverflow: this.unicastOverflow,
      multicastOverflow: this.multicastOverflow,
    };
  }

  /** Restores a saved filter; throws (before changing anything) on a state that cannot be. */
  restore(s: RxFilterState): void {
    if (!Array.isArray(s?.unicast) || !Array.isArray(s.multicast)) throw new Error('bad MAC table');
    const uni = s.unicast.map(macFromState);
    const multi = s.multicast.map(macFromState);
    if (uni.length + multi.length > MAC_TABLE_ENTRIES) throw new Error('MAC table too large');
    const mac = macFromState(s.mac);
    this.mac.set(mac);
    this.promisc = !!s.promisc;
    this.allmulti = !!s.allmulti;
    this.alluni = !!s.alluni;
    this.nomulti = !!s.nomulti;
    this.nouni = !!s.nouni;
    this.nobcast = !!s.nobcast;
    this.setTable(uni, !!s.unicastOverflow, multi, !!s.multicastOverflow);
  }
}

function isBroadcast(f: Uint8Array): boolean {
  return (f[0] & f[1] & f[2] & f[3] & f[4] & f[5]) === 0xff;
}

function sameMac(m: Uint8Array, f: Uint8Array): boolean {
  return (
    m[0] === f[0] &&
    m[1] === f[1] &&
    m[2] === f[2] &&
    m[3] === f[3] &&
    m[4] === f[4] &&
    m[5] === f[5]
  );
}

/** A MAC address from saved state (six bytes); throws on anything else. */
export function macFromState(a: unknown): Uint8Array {
  if (
    !Array.isArray(a) ||
    a.length !== 6 ||
    !a.every((b) => Number.isInteger(b) && (b as number) >= 0 && (b as number) < 256)
  ) {
    throw new Error('bad MAC address in saved state');
  }
  return Uint8Array.from(a);
}
