/**
 * The sandboxed page's only door to the host: `window.wasmvisorHost` with invoke() and onEvent(),
 * carrying the host API's JSON messages over IPC. CommonJS, as sandboxed preloads must be.
 */
import type { ElectronPreload } from './electron-api.js';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { contextBridge, ipcRenderer } = require('electron') as ElectronPreload;

contextBridge.exposeInMainWorld('wasmvisorHost', {
  invoke: (req: unknown) => ipcRenderer.invoke('wasmvisor:invoke', req),
  onEvent: (fn: (ev: unknown) => void) => {
    ipcRenderer.on('wasmvisor:event', (_e, ev) => fn(ev));
  },
});
