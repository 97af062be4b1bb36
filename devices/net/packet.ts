/**
 * A frame as it travels between a NIC and its back end: the Ethernet frame (no FCS) plus the
 * offload metadata of virtio's `virtio_net_hdr` — a partial checksum to finish, or a TCP
 * segment larger than the MTU to cut. Carrying the metadata (like a Linux tap with vnet_hdr)
 * lets a large segment cross from one virtio-net to another in one piece; a receiver that
 * cannot take it (e1000, a pcap reader that wants wire frames) calls `toWireFrames` first.
 */

/** GSO kinds (virtio_net_hdr.gso_type values, without the ECN bit). */
export const GSO_NONE = 0;
export const GSO_TCPV4 = 1;
export const GSO_TCPV6 = 4;
export type GsoType = typeof GSO_NONE | typeof GSO_TCPV4 | typeof GSO_TCPV6;

export interface NetPacket {
  /** The Ethernet frame, owned by the packet: nobody writes it after send(). */
  readonly data: Uint8Array;
  /**
   * Partial checksum: the 16-bit field at csumStart + csumOffset holds the pseudo-header sum;
   * the one's-complement sum of data[csumStart..] still has to be folded into it.
   */
  readonly csum?: { readonly start: number; readonly offset: number };
  /** A TCP segment to be cut into gsoSize-byte payloads (the checksum is partial too). */
  readonly gso?: { readonly type: GsoType; readonly size: number; readonly hdrLen: number };
  /** The checksums are known to be right (set by whoever computed them), so a NIC may say so. */
  readonly csumValid?: boolean;
}

/** Largest frame we accept from a guest or a back end: a 64 KiB IP packet plus headers. */
export const MAX_PACKET = 65_535 + 14 + 4;
/** Ethernet header length; frames shorter than this are dropped as runts. */
export const ETH_HLEN = 14;
/** A normal wire frame without FCS: 1500 bytes of payload plus header and a VLAN tag. */
export const MAX_WIRE_FRAME = 1518;
