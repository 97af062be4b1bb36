// A core with no devices for the JIT's tests: RAM at RAM_BASE, any MMIO access a bus fault, a
// clock that does not move (so runs are deterministic).
import { Core } from '../../../main/vm/core.js';

export const RAM_BASE = 0x8000_0000;

export function bareCore(ramBytes: number, opts: ConstructorParameters<typeof Core>[3]): Core {
  const core: Core = new Core(
    RAM_BASE,
    ramBytes,
    {
      mmioRead: () => {
        core.busFault();
        return 0;
      },
      mmioWrite: () => core.busFault(),
      hostTicks: () => 0,
    },
    opts,
  );
  return core;
}
