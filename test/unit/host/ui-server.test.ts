/**
 * Web mode's guard: the server listens on loopback only, and every HTTP and WebSocket request
 * without the per-launch token (or with a wrong one, or from another origin) is refused.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { HostApi } from '../../../main/host/host-api.js';
import { startUiServer, type UiServer } from '../../../main/server/ui-server.js';
import { tokenMatches } from '../../../main/server/token.js';

let server: UiServer;
let host: HostApi;
const dataDir = mkdtempSync(join(tmpdir(), 'wasmvisor-srv-'));
const rendererDir = mkdtempSync(join(tmpdir(), 'wasmvisor-renderer-'));

beforeAll(async () => {
  writeFileSync(join(rendererDir, 'index.html'), '<!doctype html><title>wasmvisor</title>');
  writeFileSync(join(rendererDir, 'app.js'), 'export {};');
  host = new HostApi({ dataDir });
  server = await startUiServer({ host, rendererDir });
});
afterAll(async () => {
  await server.close();
  await host.shutdown();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(rendererDir, { recursive: true, force: true });
});

function get(path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens a WebSocket; resolves 'open' or the HTTP status of the refused upgrade. */
function openWs(path: string, origin?: string): Promise<WebSocket | number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}${path}`, origin ? { origin } : {});
    ws.on('open', () => resolve(ws));
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('error', () => resolve(-1));
  });
}

function rpc(ws: WebSocket, method: string, params?: unknown): Promise<unknown> {
  return new Promise((resolve) => {
    const id = Math.floor(Math.random() * 1e9);
    const onMsg = (d: WebSocket.RawData) => {
      const m = JSON.parse(d.toString());
      if (m.id === id) {
        ws.off('message', onMsg);
        resolve(m);
      }
    };
    ws.on('message', onMsg);
    ws.send(JSON.stringify({ id, method, params }));
  });
}

describe('UI server token check', () => {
  it('listens on 127.0.0.1 only and prints a URL that carries the token', () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/${server.token}/`);
    expect(server.token.length).toBeGreaterThanOrEqual(32);
  });

  it('serves the renderer with the token and refuses HTTP without or with a wrong one', async () => {
    const t = server.token;
    expect(await get(`/${t}/`)).toBe(200);
    expect(await get(`/${t}/app.js`)).toBe(200);
    expect(await get('/')).toBe(403);
    expect(await get('/index.html')).toBe(403);
    const wrongLast = t.slice(0, -1) + (t.endsWith('x') ? 'y' : 'x'); // one character off
    expect(await get(`/${wrongLast}/`)).toBe(403);
    expect(await get(`/${t}x/`)).toBe(403);
    expect(await get(`/x/${t}/`)).toBe(403);
    expect(await get(`/${t}/../../etc/passwd`)).not.toBe(200);
    expect(await get(`/${t}/%2e%2e%2fpackage.json`)).toBe(404);
    // A DNS-rebinding page reaches 127.0.0.1 under another Host name.
    expect(await get(`/${t}/`, { host: `evil.example:${server.port}` })).toBe(403);
  });

  it('refuses WebSockets without the token, with a wrong one, or from another origin', async () => {
    const t = server.token;
    expect(await openWs('/ws')).toBe(403);
    expect(await openWs(`/${'A'.repeat(t.length)}/ws`)).toBe(403);
    expect(await openWs(`/${t}/ws`, 'http://evil.example')).toBe(403);
    const ws = await openWs(`/${t}/ws`, `http://127.0.0.1:${server.port}`);
    expect(ws).toBeInstanceOf(WebSocket);
    const sock = ws as WebSocket;
    const list = (await rpc(sock, 'listVms')) as { result: { config: { name: string } }[] };
    expect(list.result.map((v) => v.config.name)).toEqual(['bundled']);
    // Untrusted input gets an error, not a crash.
    expect(await rpc(sock, 'startVm', { name: 42 })).toMatchObject({ error: /"name"/ });
    expect(await rpc(sock, 'nope')).toMatchObject({ error: /unknown method/ });
    for (const passphrases of ['x', [1], new Array(65).fill(null), ['x'.repeat(4097)]]) {
      expect(await rpc(sock, 'startVm', { name: 'bundled', passphrases })).toMatchObject({
        error: /"passphrases"/,
      });
    }
    expect(await rpc(sock, 'diskKeysNeeded', { name: 'bundled' })).toMatchObject({ result: [] });
    expect(await rpc(sock, 'createVm', { config: { name: 'x', memMiB: -1 } })).toMatchObject({
      error: /memMiB/,
    });
    sock.close();
  });

  it('compares tokens in constant time over equal-length digests', () => {
    expect(tokenMatches('abc', 'abc')).toBe(true);
    expect(tokenMatches('abc', 'abd')).toBe(false);
    expect(tokenMatches('abc', 'abcd')).toBe(false);
    expect(tokenMatches('abc', undefined)).toBe(false);
  });
});
