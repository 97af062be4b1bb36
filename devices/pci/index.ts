export { PciHost, PCI_SLOTS } from './host.js';
export {
  PciFunction,
  CFG,
  CMD_IO,
  CMD_MEMORY,
  CMD_BUS_MASTER,
  CMD_INTX_DISABLE,
  type BarSpec,
  type ConfigWindow,
  type PciFunctionOptions,
} from './function.js';
