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
  ninep: 9,
} as const;

/** virtio-pci (virtio 1.2 §4.1): PCI vendor, the modern device IDs start at 0x1040 + device ID. */
export const PCI_VENDOR_VIRTIO = 0x1af4;
export const PCI_DEVICE_ID_BASE = 0x1040;

/** cfg_type of the vendor-specific capabilities that locate the transport's structures. */
export const PCI_CAP = {
  vendorId: 0x09,
  common: 1,
  notify: 2,
  isr: 3,
  device: 4,
  pciCfg: 5,
} as const;

/** Fields of the common configuration structure, byte offsets (§4.1.4.3). */
export const PCI_COMMON = {
  deviceFeatureSelect: 0x00,
  deviceFeature: 0x04,
  driverFeatureSelect: 0x08,
  driverFeature: 0x0c,
  configMsixVector: 0x10,
  numQueues: 0x12,
  deviceStatus: 0x14,
  configGeneration: 0x15,
  queueSelect: 0x16,
  queueSize: 0x18,
  queueMsixVector: 0x1a,
  queueEnable: 0x1c,
  queueNotifyOff: 0x1e,
  queueDescLow: 0x20,
  queueDescHigh: 0x24,
  queueDriverLow: 0x28,
  queueDriverHigh: 0x2c,
  queueDeviceLow: 0x30,
  queueDeviceHigh: 0x34,
  queueNotifyData: 0x38,
  queueReset: 0x3a,
  /** Admin virtqueue fields (not offered: VIRTIO_F_ADMIN_VQ is off), read as zero. */
  adminQueueIndex: 0x3c,
  adminQueueNum: 0x3e,
  size: 0x40,
} as const;

/** "No MSI-X vector": what the vector fields read, as the transport has no MSI-X. */
export const PCI_NO_VECTOR = 0xffff;
