import type { DiskConfig } from '../../../main/vm/config.js';

/** A --disk configuration for tests: a writable raw image, writeback cache, noop scheduler. */
export const diskConfig = (path: string, over: Partial<DiskConfig> = {}): DiskConfig => ({
  path,
  format: 'raw',
  readOnly: false,
  cache: 'writeback',
  sched: 'noop',
  ...over,
});
