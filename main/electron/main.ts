/**
 * The desktop shell: one BrowserWindow showing the renderer, and the host API behind IPC. The page
 * gets no Node: contextIsolation, sandbox, no nodeIntegration, and a preload that exposes only
 * `invoke(request)` and `onEvent(fn)` — the same JSON messages as web mode's WebSocket.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { HostApi } from '../host/host-api.js';
import { RpcSession } from '../host/rpc.js';
import { rendererDir } from '../server/static-files.js';
import {
  EVENT_CHANNEL,
  INVOKE_CHANNEL,
  type BrowserWindow,
  type ElectronMain,
} from './electron-api.js';
import { loadWindowState, saveWindowState } from './window-state.js';
import { shareSwitchesBetweenProcesses } from '../../devices/net/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const {
  app,
  BrowserWindow: Window,
  ipcMain,
} = createRequire(import.meta.url)('electron') as ElectronMain;

if (!app.requestSingleInstanceLock()) {
  app.quit(); // another instance owns the VMs; it focuses its window (second-instance below)
} else {
  let win: BrowserWindow | undefined;
  const host = new HostApi();
  // switch:NAME reaches the user's other wasmvisor processes (a CLI VM joins the app's LAN).
  shareSwitchesBetweenProcesses({ log: (m) => console.error(`wasmvisor: ${m}`) });
  const sessions = new Map<number, RpcSession>();
  const pageUrl = pathToFileURL(join(rendererDir(), 'index.html')).href;

  ipcMain.handle(INVOKE_CHANNEL, (e, req) => {
    // Only our own page may call the host API (never a navigated-to or embedded frame).
    if (e.senderFrame?.url !== pageUrl) return { id: -1, error: 'forbidden' };
    let s = sessions.get(e.sender.id);
    if (!s) {
      const wc = e.sender;
      s = new RpcSession(host, (ev) => {
        if (!wc.isDestroyed()) wc.send(EVENT_CHANNEL, ev);
      });
      sessions.set(wc.id, s);
    }
    return s.handle(req) ?? { id: -1, error: 'malformed request' };
  });

  const createWindow = (): void => {
    const state = loadWindowState(host.dataDir);
    const w = new Window({
      width: state.width,
      height: state.height,
      x: state.x,
      y: state.y,
      minWidth: 900,
      minHeight: 560,
      title: 'wasmvisor',
      show: false,
      backgroundColor: '#0f1218',
      webPreferences: {
        preload: join(here, 'preload.cjs'),
        contextIsolation: true,
        sandbox: true,
        nodeIntegration: false,
        webSecurity: true,
      },
    });
    win = w;
    const id = w.webContents.id;
    if (state.maximized) w.maximize();
    w.once('ready-to-show', () => w.show());
    w.webContents.setWindowOpenHandler(() => ({ action: 'deny' }));
    w.webContents.on('will-navigate', (ev, url) => {
      if (url !== pageUrl) ev.preventDefault();
    });
    w.on('close', () => {
      saveWindowState(host.dataDir, { ...w.getNormalBounds(), maximized: w.isMaximized() });
    });
    w.on('closed', () => {
      sessions.get(id)?.close();
      sessions.delete(id);
      win = undefined;
    });
    void w.loadFile(join(rendererDir(), 'index.html'));
  };

  app.on('second-instance', () => {
    if (!win) return;
    if (win.isMinimized()) win.restore();
    win.focus();
  });
  app.on('window-all-closed', () => app.quit());
  let stopping = false;
  app.on('before-quit', (e) => {
    if (stopping) return;
    stopping = true;
    e.preventDefault(); // stop the VMs' workers first, then quit for real
    void host.shutdown().finally(() => app.quit());
  });
  void app.whenReady().then(createWindow);
}
