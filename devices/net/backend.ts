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
  /** The back end's own counters (drops and why, connections), shown as `net_backend_*`. */
  stats?(): Record<string, number>;
  /** Leaves the network (unplugs from the switch). Idempotent. */
  close(): void;
}

/** A back-end spec the user must fix (bad `net=` value); the message says what. */
export class NetSpecError extends Error {}
