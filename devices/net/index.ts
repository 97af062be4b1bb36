/**
 * Network back ends (see README.md): `none` (no cable), `user[,...]` (user-mode NAT) and
 * `switch:NAME` (an L2 switch shared by the VMs of this process, across worker threads, and with
 * the user's other host processes once `shareSwitchesBetweenProcesses` is called), the
 * port a NIC uses to reach them, capture, and software offloads.
 */
import { NetSpecError, type NetBackend } from './backend.js';
import { NoNetwork } from './none.js';
import { netSwitch } from './switch.js';
import { parseUserSpec } from './user/config.js';
import { UserNetwork } from './user/network.js';

export { NetPort, type NicFrontend, type NetPortStats, type RxTaken } from './port.js';
export { NetSpecError, type NetBackend } from './backend.js';
export type { NetPacket } from './packet.js';
export { netSwitch, NetSwitch } from './switch.js';
export { attachSwitchLink, switchLinkConnector } from './switch-link.js';
export {
  shareSwitchesBetweenProcesses,
  stopSharingSwitches,
  sharedSwitchStats,
  sharedSwitches,
  type SharedSwitchStats,
} from './switch-socket.js';
export { NoNetwork } from './none.js';
export { PcapWriter } from './pcap.js';
export { UserNetwork } from './user/index.js';

/** Checks a `net=` spec without opening it; returns it normalised or throws NetSpecError. */
export function checkNetSpec(spec: string): string {
  if (spec === 'none') return spec;
  const m = /^switch:([\w.-]{1,64})$/.exec(spec);
  if (m) return spec;
  if (spec === 'user' || spec.startsWith('user,')) {
    parseUserSpec(spec);
    return spec;
  }
  throw new NetSpecError(
    `net="${spec}" is not a network: use none, user[,...] or switch:NAME (letters, digits, "-", "_", ".")`,
  );
}

/** How `switch:NAME` is reached from this thread; by default, this thread's own switches. */
let switchConnector: ((name: string) => NetBackend) | undefined;

/**
 * Makes `switch:NAME` back ends opened from now on go through `connect` (a worker thread sets
 * switchLinkConnector, so its NICs join the main thread's switches); undefined restores the
 * default.
 */
export function setSwitchConnector(connect: ((name: string) => NetBackend) | undefined): void {
  switchConnector = connect;
}

/** Opens the back end a spec names; `log` gets what a user should know (e.g. why ping fails). */
export function openNetBackend(spec: string, o: { log?: (m: string) => void } = {}): NetBackend {
  checkNetSpec(spec);
  if (spec === 'none') return new NoNetwork();
  if (spec.startsWith('user')) return new UserNetwork(spec, { log: o.log });
  const name = spec.slice('switch:'.length);
  return switchConnector ? switchConnector(name) : netSwitch(name).connect();
}
