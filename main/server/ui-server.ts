/**
 * Web mode: the renderer and the host API (JSON over WebSocket) on 127.0.0.1 only. Every request
 * must carry the per-launch token as the first path segment (http://127.0.0.1:PORT/TOKEN/), so
 * that other local users' processes and web pages cannot drive the VMs; the Host and Origin
 * headers are checked too, against DNS rebinding and cross-site WebSockets.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { HostApi } from '../host/host-api.js';
import { RpcSession } from '../host/rpc.js';
import type { ServerMessage } from '../host/api-types.js';
import { newToken, tokenMatches } from './token.js';
import { readStatic, rendererDir } from './static-files.js';

export const LOOPBACK = '127.0.0.1';
/** A client that stops reading is cut off rather than buffered without bound. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

export interface UiServerOptions {
  host: HostApi;
  /** 0 (default): any free port. */
  port?: number;
  token?: string;
  rendererDir?: string;
}

export interface UiServer {
  url: string;
  port: number;
  token: string;
  close(): Promise<void>;
}

function securityHeaders(port: number): Record<string, string> {
  return {
    'Content-Security-Policy': [
      "default-src 'none'",
      "script-src 'self'",
      // xterm.js and uPlot set inline styles from script.
      "style-src 'self' 'unsafe-inline'",
      "img-src 'self' data:",
      "font-src 'self'",
      `connect-src ws://${LOOPBACK}:${port} ws://localhost:${port}`,
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; '),
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
  };
}

export async function startUiServer(opts: UiServerOptions): Promise<UiServer> {
  const token = opts.token ?? newToken();
  const dir = opts.rendererDir ?? rendererDir();
  let port = 0;
  const hostOk = (req: IncomingMessage) =>
    req.headers.host === `${LOOPBACK}:${port}` || req.headers.host === `localhost:${port}`;

  /** The path after a valid token, or undefined when the token is missing or wrong. */
  const authorized = (req: IncomingMessage): string | undefined => {
    if (!hostOk(req)) return undefined;
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const m = /^\/([^/]+)(\/.*)?$/.exec(path);
    if (!m || !tokenMatches(token, m[1])) return undefined;
    return m[2] ?? '';
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const rest = authorized(req);
    if (rest === undefined) {
      res
        .writeHead(403, { 'Content-Type': 'text/plain' })
        .end('forbidden: open the URL wasmvisor printed\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (rest === '') {
      res.writeHead(308, { Location: `/${token}/` }).end();
      return;
    }
    const file = readStatic(dir, rest === '/' ? 'index.html' : rest.slice(1));
    if (!file) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'Content-Type': file.type, ...securityHeaders(port) });
    res.end(req.method === 'HEAD' ? undefined : file.body);
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const rest = authorized(req);
    const origin = req.headers.origin;
    const originOk =
      origin === undefined ||
      origin === `http://${LOOPBACK}:${port}` ||
      origin === `http://localhost:${port}`;
    if (rest !== '/ws' || !originOk) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => serveClient(ws, opts.host));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, LOOPBACK, () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://${LOOPBACK}:${port}/${token}/`,
    port,
    token,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function serveClient(ws: WebSocket, host: HostApi): void {
  const send = (m: ServerMessage): void => {
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      ws.terminate();
      return;
    }
    ws.send(JSON.stringify(m));
  };
  const session = new RpcSession(host, (event) => send({ event }));
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    let msg: unknown;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      ws.close(1003, 'expected JSON');
      return;
    }
    const res = session.handle(msg);
    if (res instanceof Promise) void res.then(send);
    else if (res) send(res);
  });
  ws.on('close', () => session.close());
}
