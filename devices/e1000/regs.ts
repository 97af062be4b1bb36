/**
 * Register offsets and bits of the Intel 82540EM, from Intel's "PCI/PCI-X Family of Gigabit
 * Ethernet Controllers Software Developer's Manual" (§13 registers, §3 descriptors). Only what
 * the model uses; names follow the manual's mnemonics.
 */
export const REG = {
  CTRL: 0x0000,
  STATUS: 0x0008,
  EECD: 0x0010,
  EERD: 0x0014,
  CTRL_EXT: 0x0018,
  MDIC: 0x0020,
  ICR: 0x00c0,
  ITR: 0x00c4,
  ICS: 0x00c8,
  IMS: 0x00d0,
  IMC: 0x00d8,
  RCTL: 0x0100,
  TCTL: 0x0400,
  RDBAL: 0x2800,
  RDBAH: 0x2804,
  RDLEN: 0x2808,
  RDH: 0x2810,
  RDT: 0x2818,
  TDBAL: 0x3800,
  TDBAH: 0x3804,
  TDLEN: 0x3808,
  TDH: 0x3810,
  TDT: 0x3818,
  STATS_START: 0x4000,
  STATS_END: 0x4100,
  MPC: 0x4010,
  GPRC: 0x4074,
  BPRC: 0x4078,
  MPRC: 0x407c,
  GPTC: 0x4080,
  GORCL: 0x4088,
  GOTCL: 0x4090,
  TORL: 0x40c0,
  TOTL: 0x40c8,
  TPR: 0x40d0,
  TPT: 0x40d4,
  RXCSUM: 0x5000,
  MTA: 0x5200,
  RA: 0x5400,
} as const;

/** Size of the memory BAR (register space). */
export const MMIO_SIZE = 0x2_0000;
/** Size of the I/O BAR (IOADDR at 0, IODATA at 4). */
export const IO_SIZE = 0x40;

export const CTRL_FD = 1 << 0;
export const CTRL_ASDE = 1 << 5;
export const CTRL_SLU = 1 << 6;
export const CTRL_SPEED_1000 = 2 << 8;
export const CTRL_RST = 1 << 26;
export const CTRL_PHY_RST = 1 << 31;

export const STATUS_FD = 1 << 0;
export const STATUS_LU = 1 << 1;
export const STATUS_SPEED_1000 = 2 << 6;
export const STATUS_ASDV_1000 = 2 << 8;

export const EECD_SK = 1 << 0;
export const EECD_CS = 1 << 1;
export const EECD_DI = 1 << 2;
export const EECD_DO = 1 << 3;
export const EECD_REQ = 1 << 6;
export const EECD_GNT = 1 << 7;
export const EECD_PRES = 1 << 8;

export const EERD_START = 1 << 0;
export const EERD_DONE = 1 << 4;

export const MDIC_OP_WRITE = 1 << 26;
export const MDIC_OP_READ = 2 << 26;
export const MDIC_READY = 1 << 28;
export const MDIC_ERROR = 1 << 30;

/** Interrupt causes (ICR/ICS/IMS/IMC bits). */
export const ICR_TXDW = 1 << 0;
export const ICR_TXQE = 1 << 1;
export const ICR_LSC = 1 << 2;
export const ICR_RXDMT0 = 1 << 4;
export const ICR_RXO = 1 << 6;
export const ICR_RXT0 = 1 << 7;

export const RCTL_EN = 1 << 1;
export const RCTL_UPE = 1 << 3;
export const RCTL_MPE = 1 << 4;
export const RCTL_BAM = 1 << 15;
export const RCTL_BSEX = 1 << 25;
export const RCTL_SECRC = 1 << 26;

export const TCTL_EN = 1 << 1;

export const RXCSUM_IPOFL = 1 << 8;
export const RXCSUM_TUOFL = 1 << 9;

/** Transmit descriptor command bits (legacy CMD, data DCMD, context TUCMD share RS/DEXT/IDE). */
export const TXD_EOP = 0x01;
export const TXD_IFCS = 0x02;
export const TXD_IC = 0x04;
export const TXD_TSE = 0x04;
export const TXD_RS = 0x08;
export const TXD_DEXT = 0x20;
export const TXD_VLE = 0x40;
export const TXD_STA_DD = 0x01;
export const TXD_DTYP_CONTEXT = 0;
export const TXD_DTYP_DATA = 1;
export const TXD_POPTS_IXSM = 0x01;
export const TXD_POPTS_TXSM = 0x02;

export const RXD_STA_DD = 0x01;
export const RXD_STA_EOP = 0x02;
export const RXD_STA_IXSM = 0x04;
export const RXD_STA_TCPCS = 0x20;
export const RXD_STA_IPCS = 0x40;

/** Ethernet FCS length, counted in the descriptor length unless RCTL.SECRC strips it. */
export const FCS_LEN = 4;
