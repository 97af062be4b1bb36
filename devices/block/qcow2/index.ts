/** qcow2 (v3 read/write, v2 read) with backing chains: see qcow2-image.ts for the data path. */
export { Qcow2Image, type Qcow2OpenOptions, type Qcow2Stats } from './qcow2-image.js';
export { createQcow2, type CreateQcow2Options, type Preallocation } from './create.js';
export { openImage, probeFormat, resolveBacking, type ImageFormat } from './open-image.js';
export { rebuildRefcounts, type RefcountReport } from './repair.js';
export {
  imageInfo,
  backingChain,
  checkQcow2,
  type ImageInfo,
  type CheckResult,
} from './inspect.js';
export {
  applySnapshot,
  createSnapshot,
  deleteSnapshot,
  listSnapshots,
  SnapshotError,
  type SnapshotInfo,
} from './snapshots.js';
export { resizeQcow2, ResizeError } from './resize.js';
