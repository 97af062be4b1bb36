/**
 * Numbers from the virtio 1.2 spec that more than one file needs: the virtio-mmio register
 * map (§4.2.2), device status bits (§2.1), transport/ring feature bits (§6) and device IDs (§5).
 */

/** virtio-mmio registers (version 2, "modern"), byte offsets from the slot's base. */
export const MMIO = {
  magic: 0x000,
  version: 0x004,
  deviceId: 0x008,
  vendorId: 0x00c,
  deviceFeatures: 0x010,
  deviceFeaturesSel: 0x014,
  driverFeatures: 0x020,
  driverFeaturesSel: 0x024,
  queueSel: 0x030,
  queueNumMax: 0x034,
  queueNum: 0x038,
  queueReady: 0x044,
  queueNotify: 0x050,
  interruptStatus: 0x060,
  interruptAck: 0x064,
  status: 0x070,
  queueDescLow: 0x080,
  queueDescHigh: 0x084,
  queueDriverLow: 0x090,
  queueDriverHigh: 0x094,
  queueDeviceLow: 0x0a0,
  queueDeviceHigh: 0x0a4,
  shmSel: 0x0ac,
  shmLenLow: 0x0b0,
  shmLenHigh: 0x0b4,
  shmBaseLow: 0x0b8,
  shmBaseHigh: 0x0bc,
  queueReset: 0x0c0,
  configGeneration: 0x0fc,
  config: 0x100,
} as const;

/** "virt" in little-endian ASCII. */
export const MMIO_MAGIC = 0x7472_6976;
/** QEMU's vendor ID ("QEMU"), which is what guests built for QEMU expect to see. */
export const MMIO_VENDOR_QEMU = 0x554d_4551;

/** Device status bits. */
export const STATUS = {
  acknowledge: 1,
  driver: 2,
  driverOk: 4,
  featuresOk: 8,
  needsReset: 64,
  failed: 128,
} as const;

/** Interrupt status bits. */
export const ISR_USED_BUFFER = 1;
export const ISR_CONFIG_CHANGE = 2;

/** Feature bits shared by all devices (bit numbers). */
export const F = {
  indirectDesc: 28,
  eventIdx: 29,
  version1: 32,
  accessPlatform: 33,
  ringPacked: 34,
  ringReset: 40,
} as const;

export const bit = (n: number): bigint => 1n << BigInt(n);

/** Device IDs. */
export const DEVICE_ID = {
  none: 0,
  net: 1,
  blk: 2,
  console: 3,
  rng: 4,
  balloon: 5,
} as const;
