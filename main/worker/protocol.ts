/** Messages between the host (main thread) and one VM's worker thread. */
import type { VmConfig } from '../vm/config.js';
import type { DeviceRow, VmExit, VmStats } from '../host/api-types.js';

export type ToWorker =
  | { type: 'start'; config: VmConfig }
  | { type: 'input'; data: Uint8Array }
  /** Ends the run loop at the next slice boundary; the worker then exits by itself. */
  | { type: 'stop' }
  | { type: 'pause' }
  | { type: 'resume' }
  /** Host reset button: rebuilds the machine from its definition in the same worker. */
  | { type: 'reset' };

export type FromWorker =
  | { type: 'console'; data: Uint8Array }
  | { type: 'stats'; stats: VmStats }
  | { type: 'devices'; devices: DeviceRow[] }
  | { type: 'state'; state: 'running' | 'paused' }
  | { type: 'log'; message: string }
  | { type: 'exit'; exit: VmExit };
