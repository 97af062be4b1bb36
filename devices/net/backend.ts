/**
 * The network back-end contract, as small as TinyEMU's: the NIC side hands frames to `send`,
 * the back end hands frames to `onReceive`, and tells the NIC whether there is a carrier. A NIC
 * model never knows which back end it is plugged into.
 */
import type { NetPacket } from './packet.js';

export interface NetBackend {
  /** The spec it was opened from ("none", "switch:lab"), for the API and the stats. */
  readonly spec: string;
  /** Whether a cable is plugged in (the far end exists). */
  readonly carrier: boolean;
  /** A frame from the NIC. The back end may keep `p` (its data is not written after this). */
  send(p: NetPacket): void;
  /** Frames for the NIC; set by the port that owns this back end. */
  onReceive: ((p: NetPacket) => void) | undefined;
  /** Carrier changes (a switch going away); set by the port. */
  onCarrier: ((up: boolean) => void) | undefined;
  /**
   * Set by the port: where byte 0 of a frame for the NIC lands in the guest's receive buffer,
   * modulo 8, when the NIC model knows (virtio-net: after its 12-byte header). A back end that
   * chooses where a byte stream is cut (net=user's TCP) can then make the payload's guest
   * address agree with its stream offset modulo 8, so a guest reading into an aligned buffer
   * copies by words.
   */
  rxFrameAlign?: () => number | undefined;
  /** The back end's own counters (drops and why, connections), shown as `net_backend_*`. */
  stats?(): Record<string, number>;
  /** Leaves the network (unplugs from the switch). Idempotent. */
  close(): void;
}

/** A back-end spec the user must fix (bad `net=` value); the message says what. */
export class NetSpecError extends Error {}
