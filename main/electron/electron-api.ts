/**
 * The few Electron APIs the shell uses, typed here so that `tsc` checks the shell without the
 * electron package (an optional dependency whose binary often cannot be installed). At run time
 * the real module is loaded; these shapes match Electron's own declarations.
 */
export interface Rectangle {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface IpcMainInvokeEvent {
  sender: WebContents;
  senderFrame: { url: string } | null;
}

export interface WebContents {
  id: number;
  send(channel: string, ...args: unknown[]): void;
  isDestroyed(): boolean;
  setWindowOpenHandler(h: (d: { url: string }) => { action: 'deny' }): void;
  on(event: 'will-navigate', fn: (e: { preventDefault(): void }, url: string) => void): void;
}

export interface BrowserWindowOptions {
  width?: number;
  height?: number;
  x?: number;
  y?: number;
  minWidth?: number;
  minHeight?: number;
  title?: string;
  show?: boolean;
  backgroundColor?: string;
  webPreferences?: {
    preload?: string;
    contextIsolation?: boolean;
    sandbox?: boolean;
    nodeIntegration?: boolean;
    webSecurity?: boolean;
  };
}

export interface BrowserWindow {
  webContents: WebContents;
  loadFile(path: string): Promise<void>;
  getNormalBounds(): Rectangle;
  isMaximized(): boolean;
  isMinimized(): boolean;
  maximize(): void;
  restore(): void;
  focus(): void;
  show(): void;
  once(event: 'ready-to-show', fn: () => void): void;
  on(event: 'close' | 'closed', fn: () => void): void;
}

export interface ElectronMain {
  app: {
    requestSingleInstanceLock(): boolean;
    quit(): void;
    whenReady(): Promise<void>;
    on(
      event: 'second-instance' | 'window-all-closed' | 'before-quit',
      fn: (e: { preventDefault(): void }) => void,
    ): void;
  };
  BrowserWindow: new (o: BrowserWindowOptions) => BrowserWindow;
  ipcMain: {
    handle(channel: string, fn: (e: IpcMainInvokeEvent, ...args: unknown[]) => unknown): void;
  };
}

export interface ElectronPreload {
  contextBridge: { exposeInMainWorld(key: string, api: unknown): void };
  ipcRenderer: {
    invoke(channel: string, ...args: unknown[]): Promise<unknown>;
    on(channel: string, fn: (e: unknown, ...args: unknown[]) => void): void;
  };
}

/** IPC channels between the preload and the main process. */
export const INVOKE_CHANNEL = 'wasmvisor:invoke';
export const EVENT_CHANNEL = 'wasmvisor:event';
