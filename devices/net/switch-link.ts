/**
 * `switch:NAME` across the worker threads of one host process. Each VM runs in its own worker
 * (main/host/vm-runner.ts), and a switch lives in one thread's registry, so a NIC in a worker
 * reaches the switch of the main thread (the hub) over a MessagePort:
 *
 *   worker: NIC → NetPort → SwitchLinkPort ══ MessagePort (FrameLink) ══ hub member → NetSwitch
 *
 * The worker opens the channel itself and hands the other end to the main thread (the
 * `request` callback posts it), so opening a back end stays synchronous. The hub's switch is the
 * ordinary NetSwitch of the main thread: learning, flooding and the MAC-table bound are the same,
 * and NICs of VMs in the main thread share it with the workers' NICs. Frames cross threads as
 * transferred buffers with bounded queues in each direction (frame-link.ts); when a worker ends,
 * its port closes and its member leaves the switch (its MACs are forgotten).
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import type { NetBackend } from './backend.js';
import { FrameLink } from './frame-link.js';
import type { NetPacket } from './packet.js';
import { netSwitch, type SwitchMember } from './switch.js';

/** The worker's end: a NIC's cable into the hub's switch. */
export class SwitchLinkPort implements NetBackend {
  readonly spec: string;
  onReceive: ((p: NetPacket) => void) | undefined;
  onCarrier: ((up: boolean) => void) | undefined;
  readonly link: FrameLink;

  constructor(name: string, port: MessagePort) {
    this.spec = `switch:${name}`;
    this.link = new FrameLink(port);
    this.link.onFrame = (p) => this.onReceive?.(p);
    this.link.onClose = () => this.onCarrier?.(false);
  }

  get carrier(): boolean {
    return !this.link.closed;
  }

  send(p: NetPacket): void {
    this.link.send(p);
  }

  close(): void {
    this.link.close();
  }
}

/**
 * A switch connector for a worker thread: each `switch:NAME` back end opens a channel, keeps
 * one end, and gives the other to `request` (which posts it to the main thread's hub).
 */
export function switchLinkConnector(
  request: (name: string, port: MessagePort) => void,
): (name: string) => NetBackend {
  return (name) => {
    const ch = new MessageChannel();
    request(name, ch.port2);
    return new SwitchLinkPort(name, ch.port1);
  };
}

/** The hub's end (main thread): plugs a worker's port into this thread's switch `name`. */
export function attachSwitchLink(name: string, port: MessagePort): FrameLink {
  const sw = netSwitch(name);
  const link = new FrameLink(port);
  const member: SwitchMember = { deliver: (p) => link.send(p) };
  sw.join(member);
  link.onFrame = (p) => sw.forward(member, p);
  link.onClose = () => sw.leave(member);
  return link;
}
