/**
 * The renderer's view of the host API. Two transports carry the same JSON messages: a WebSocket
 * (web mode, `wasmvisor ui`) and the Electron preload's IPC bridge (`window.wasmvisorHost`).
 */
import type {
  ClientEvent,
  HostMethodName,
  HostMethods,
  RpcRequest,
  RpcResponse,
  ServerMessage,
} from '../../main/host/api-types.js';

/** What the Electron preload exposes (contextBridge); nothing else of Node reaches the page. */
export interface ElectronHostBridge {
  invoke(req: RpcRequest): Promise<RpcResponse>;
  onEvent(fn: (e: ClientEvent) => void): void;
}

declare global {
  interface Window {
    wasmvisorHost?: ElectronHostBridge;
  }
}

type Params<M extends HostMethodName> = Parameters<HostMethods[M]>[0];
type Result<M extends HostMethodName> = ReturnType<HostMethods[M]>;

export interface HostClient {
  call<M extends HostMethodName>(
    method: M,
    ...p: Params<M> extends undefined ? [] : [Params<M>]
  ): Promise<Result<M>>;
  onEvent(fn: (e: ClientEvent) => void): void;
  /** Called with true on (re)connect — the app re-reads its state then — and false on loss. */
  onConnection(fn: (connected: boolean) => void): void;
}

class WebSocketClient implements HostClient {
  private ws: WebSocket | undefined;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  private readonly eventFns: ((e: ClientEvent) => void)[] = [];
  private readonly connFns: ((c: boolean) => void)[] = [];
  private retryMs = 250;

  constructor(private readonly url: string) {
    this.connect();
  }

  private connect(): void {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.retryMs = 250;
      for (const f of this.connFns) f(true);
    };
    ws.onmessage = (ev) => {
      const m = JSON.parse(String(ev.data)) as ServerMessage;
      if ('event' in m) {
        for (const f of this.eventFns) f(m.event);
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if ('error' in m) p.reject(new Error(m.error));
      else p.resolve(m.result);
    };
    ws.onclose = () => {
      for (const p of this.pending.values()) p.reject(new Error('connection to wasmvisor lost'));
      this.pending.clear();
      for (const f of this.connFns) f(false);
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 5000);
    };
  }

  call<M extends HostMethodName>(
    method: M,
    ...p: Params<M> extends undefined ? [] : [Params<M>]
  ): Promise<Result<M>> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error('not connected to wasmvisor'));
    }
    const id = this.nextId++;
    const req: RpcRequest = { id, method, params: p[0] };
    ws.send(JSON.stringify(req));
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: (v) => resolve(v as Result<M>), reject });
    });
  }

  onEvent(fn: (e: ClientEvent) => void): void {
    this.eventFns.push(fn);
  }

  onConnection(fn: (c: boolean) => void): void {
    this.connFns.push(fn);
    if (this.ws?.readyState === WebSocket.OPEN) fn(true);
  }
}

class ElectronClient implements HostClient {
  private nextId = 1;
  constructor(private readonly bridge: ElectronHostBridge) {}

  async call<M extends HostMethodName>(
    method: M,
    ...p: Params<M> extends undefined ? [] : [Params<M>]
  ): Promise<Result<M>> {
    const res = await this.bridge.invoke({ id: this.nextId++, method, params: p[0] });
    if ('error' in res) throw new Error(res.error);
    return res.result as Result<M>;
  }

  onEvent(fn: (e: ClientEvent) => void): void {
    this.bridge.onEvent(fn);
  }

  onConnection(fn: (c: boolean) => void): void {
    fn(true); // IPC to the main process does not drop
  }
}

export function connectHost(): HostClient {
  if (window.wasmvisorHost) return new ElectronClient(window.wasmvisorHost);
  // The page is served at /TOKEN/; the WebSocket lives at /TOKEN/ws and carries the same token.
  const base = location.pathname.endsWith('/') ? location.pathname : location.pathname + '/';
  return new WebSocketClient(`ws://${location.host}${base}ws`);
}

export function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function toBase64(bytes: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}
