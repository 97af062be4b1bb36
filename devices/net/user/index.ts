/**
 * `net=user` (see ../README.md): user-mode NAT. One module per layer: ethernet/arp, ipv4, icmp,
 * udp (+ udp-nat, dhcp, dns), tcp-segment/tcp-conn/tcp-nat, hostfwd, reassembly/fragment (IP
 * fragments both ways); config holds the addresses, limits and spec syntax; network.ts is the
 * NetBackend that ties them together.
 */
export { UserNetwork, type UserNetOptions } from './network.js';
export { parseUserSpec, DEFAULT_LIMITS, type UserNetLimits, type UserNetSpec } from './config.js';
