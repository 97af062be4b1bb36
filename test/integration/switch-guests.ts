/**
 * What the network integration tests share: whether tshark is installed, and VMs of this
 * process on one `switch:NAME` (booted to the prompt, addressed by a command per guest), stopped
 * and closed together.
 */
import { execFileSync } from 'node:child_process';
import { VirtMachine } from '../../main/vm/machine.js';
import { defaultVmConfig, type NicModel } from '../../main/vm/config.js';
import { InProcessGuest as Guest } from '../../bench/in-process-guest.js';

export function hasTshark(): boolean {
  try {
    execFileSync('tshark', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface SwitchGuestsOptions {
  /** One NIC model per guest. */
  models: readonly NicModel[];
  /** The switch's name (unique per test). */
  sw: string;
  /** VM names and MACs: `${name}-${i + 1}`, `52:54:00:00:${macByte}:0${i + 1}`. */
  name: string;
  macByte: string;
  /** A pcap file the first guest's NIC writes. */
  capture?: string;
  /** Brings guest i's interface up; its output must match `ready`. */
  up: (i: number) => string;
  ready: RegExp;
}

/** Boots one VM per model on the switch, waits for each prompt, runs `up(i)` in guest i. */
export async function guestsOnSwitch(o: SwitchGuestsOptions): Promise<Guest[]> {
  const guests: Guest[] = [];
  for (const [i, model] of o.models.entries()) {
    const cfg = {
      ...defaultVmConfig(`${o.name}-${i + 1}`),
      nics: [
        {
          model,
          net: `switch:${o.sw}`,
          mac: `52:54:00:00:${o.macByte}:0${i + 1}`,
          capture: i === 0 ? o.capture : undefined,
        },
      ],
    };
    guests.push(new Guest(await VirtMachine.open(cfg)));
  }
  for (const g of guests) await g.expect(/~# /, 120_000);
  for (const [i, g] of guests.entries()) await g.run(o.up(i), o.ready);
  return guests;
}

/** The IPv4 set-up of most switch tests: guest i is 10.0.0.(i+1)/24. */
export const ipv4Up = {
  up: (i: number): string =>
    `ip addr add 10.0.0.${i + 1}/24 dev eth0 && ip link set eth0 up; echo ok$((40+2))`,
  ready: /ok42/,
};

export async function shutdown(guests: readonly Guest[]): Promise<void> {
  for (const g of guests) g.vm.stop();
  await Promise.all(guests.map((g) => g.done));
  for (const g of guests) await g.vm.close();
}
