/** `net=none`: no cable. The NIC reports carrier loss; frames it sends are dropped. */
import type { NetBackend } from './backend.js';
import type { NetPacket } from './packet.js';

export class NoNetwork implements NetBackend {
  readonly spec = 'none';
  readonly carrier = false;
  onReceive: ((p: NetPacket) => void) | undefined;
  onCarrier: ((up: boolean) => void) | undefined;
  send(): void {}
  close(): void {}
}
