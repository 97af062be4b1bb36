/**
 * The host API as JSON messages, for any transport (WebSocket, Electron IPC). One RpcSession per
 * connected client: it validates each untrusted request, calls HostApi, and forwards host events
 * plus the console bytes of the consoles this client attached.
 */
import {
  DISK_SNAPSHOT_ACTIONS,
  VM_SNAPSHOT_ACTIONS,
  type VmSnapshotAction,
  type ClientEvent,
  type ConsoleStream,
  type DiskSnapshotAction,
  type HostMethodName,
  type RpcResponse,
} from './api-types.js';
import { HostApi, HostError } from './host-api.js';

export class RpcError extends Error {}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function str(p: Record<string, unknown>, k: string): string {
  const v = p[k];
  if (typeof v !== 'string' || v.length === 0 || v.length > 256) {
    throw new RpcError(`"${k}" must be a non-empty string`);
  }
  return v;
}

const STREAMS: readonly ConsoleStream[] = ['ttyS0', 'hvc0'];

/** An optional console stream name; the host then checks that the VM has it. */
/** `passphrases`: absent, or an array (one per disk at most) of strings or nulls. */
function passphrases(p: Record<string, unknown>): (string | null)[] | undefined {
  const v = p.passphrases;
  if (v === undefined) return undefined;
  if (
    !Array.isArray(v) ||
    v.length > 64 ||
    !v.every((x) => x === null || (typeof x === 'string' && x.length <= 4096))
  ) {
    throw new RpcError('"passphrases" must be an array of strings (or nulls), one per disk');
  }
  return v as (string | null)[];
}

function stream(p: Record<string, unknown>): ConsoleStream | undefined {
  const v = p.stream;
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !STREAMS.includes(v as ConsoleStream)) {
    throw new RpcError(`"stream" must be one of ${STREAMS.join(', ')}`);
  }
  return v as ConsoleStream;
}

/** Keyboard input is small; anything larger is refused rather than buffered. */
const MAX_INPUT_BYTES = 64 * 1024;

const toB64 = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.length).toString('base64');

export class RpcSession {
  private readonly detachers = new Map<string, () => void>();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly host: HostApi,
    private readonly send: (e: ClientEvent) => void,
  ) {
    this.unsubscribe = host.subscribe((e) => send(e));
  }

  /**
   * Handles one raw message; always answers a well-formed id. Most methods answer at once; the
   * ones that wait for the VM's worker (device controls) answer with a promise.
   */
  handle(raw: unknown): RpcResponse | Promise<RpcResponse> | undefined {
    if (!isObj(raw) || typeof raw.id !== 'number' || !Number.isSafeInteger(raw.id))
      return undefined;
    const id = raw.id;
    const fail = (e: unknown): RpcResponse => {
      if (e instanceof RpcError || e instanceof HostError) return { id, error: e.message };
      return { id, error: `internal error: ${(e as Error).message}` };
    };
    try {
      if (typeof raw.method !== 'string') throw new RpcError('"method" must be a string');
      const params = raw.params === undefined ? {} : raw.params;
      if (!isObj(params)) throw new RpcError('"params" must be an object');
      const result = this.call(raw.method as HostMethodName, params);
      if (result instanceof Promise) {
        return result.then((r: unknown) => ({ id, result: r ?? null }), fail);
      }
      return { id, result: result ?? null };
    } catch (e) {
      return fail(e);
    }
  }

  private call(method: HostMethodName, p: Record<string, unknown>): unknown {
    const h = this.host;
    switch (method) {
      case 'listVms':
        return h.listVms();
      case 'definitionErrors':
        return h.definitionErrors();
      case 'createVm':
        return h.createVm(p.config);
      case 'updateVm':
        return h.updateVm(str(p, 'name'), p.config);
      case 'deleteVm':
        return h.deleteVm(str(p, 'name'));
      case 'diskKeysNeeded':
        return h.diskKeysNeeded(str(p, 'name'));
      case 'startVm':
        if (p.resume !== undefined && typeof p.resume !== 'boolean') {
          throw new RpcError('"resume" must be true or false');
        }
        return h.startVm(str(p, 'name'), passphrases(p), {
          resume: p.resume === true,
          ...(p.snapshot !== undefined ? { snapshot: str(p, 'snapshot') } : {}),
          ...(p.incoming !== undefined ? { incoming: str(p, 'incoming') } : {}),
        });
      case 'saveVm':
        return h.saveVm(str(p, 'name')).then((message) => ({ message }));
      case 'migrateVm':
        return h.migrateVm(str(p, 'name'), str(p, 'uri')).then((message) => ({ message }));
      case 'stopVm':
        return h.stopVm(str(p, 'name'), p.force === true);
      case 'pauseVm':
        return h.pauseVm(str(p, 'name'));
      case 'resumeVm':
        return h.resumeVm(str(p, 'name'));
      case 'resetVm':
        return h.resetVm(str(p, 'name'));
      case 'listDevices':
        return h.listDevices(str(p, 'name'));
      case 'statsHistory':
        return h.statsHistory(str(p, 'name'));
      case 'attachConsole': {
        const name = str(p, 'name');
        const s = h.consoleStream(name, stream(p));
        const key = `${name}\0${s}`;
        this.detachers.get(key)?.();
        const a = h.attachConsole(
          name,
          (b) => this.send({ type: 'console', name, stream: s, data: toB64(b) }),
          s,
        );
        this.detachers.set(key, a.detach);
        return { scrollback: toB64(a.scrollback) };
      }
      case 'detachConsole': {
        const name = str(p, 'name');
        const key = `${name}\0${h.consoleStream(name, stream(p))}`;
        this.detachers.get(key)?.();
        this.detachers.delete(key);
        return undefined;
      }
      case 'setDeviceControl': {
        const [name, device, control, value] = ['name', 'device', 'control', 'value'].map((k) =>
          str(p, k),
        ) as [string, string, string, string];
        return h.setDeviceControl(name, device, control, value).then((message) => ({ message }));
      }
      case 'diskSnapshot': {
        const [name, device, action, snapshot] = ['name', 'device', 'action', 'snapshot'].map((k) =>
          str(p, k),
        ) as [string, string, string, string];
        if (!DISK_SNAPSHOT_ACTIONS.includes(action as DiskSnapshotAction)) {
          throw new RpcError(`"action" must be one of ${DISK_SNAPSHOT_ACTIONS.join(', ')}`);
        }
        return h
          .diskSnapshot(name, device, action as DiskSnapshotAction, snapshot)
          .then((message) => ({ message }));
      }
      case 'diskOverlay': {
        const [name, device] = ['name', 'device'].map((k) => str(p, k)) as [string, string];
        const file = p.file;
        // A path, not a name: up to PATH_MAX, and no NUL (which the file system would cut at).
        if (typeof file !== 'string' || !file || file.length > 4096 || file.includes('\0')) {
          throw new RpcError('"file" must be a path of 1 to 4096 characters');
        }
        return h.diskOverlay(name, device, file).then((message) => ({ message }));
      }
      case 'createDiskImage': {
        const { path, vm, format, size } = p as Record<string, unknown>;
        if (
          path !== undefined &&
          (typeof path !== 'string' || !path || path.length > 4096 || path.includes('\0'))
        ) {
          throw new RpcError('"path" must be a path of 1 to 4096 characters');
        }
        if (vm !== undefined && typeof vm !== 'string') throw new RpcError('"vm" must be a name');
        if (format !== 'raw' && format !== 'qcow2')
          throw new RpcError('"format" must be raw or qcow2');
        if (typeof size !== 'number' || !Number.isSafeInteger(size)) {
          throw new RpcError('"size" must be a whole number of bytes');
        }
        return h.createDiskImage({
          ...(path !== undefined ? { path } : {}),
          ...(vm !== undefined ? { vm } : {}),
          format,
          size,
        });
      }
      case 'listSnapshots':
        return h.listSnapshots(str(p, 'name'));
      case 'vmSnapshot': {
        const [name, action, snapshot] = ['name', 'action', 'snapshot'].map((k) => str(p, k)) as [
          string,
          string,
          string,
        ];
        if (!VM_SNAPSHOT_ACTIONS.includes(action as VmSnapshotAction)) {
          throw new RpcError(`"action" must be one of ${VM_SNAPSHOT_ACTIONS.join(', ')}`);
        }
        return h
          .vmSnapshot(name, action as VmSnapshotAction, snapshot)
          .then((message) => ({ message }));
      }
      case 'consoleInput': {
        const name = str(p, 'name');
        if (typeof p.data !== 'string' || p.data.length > (MAX_INPUT_BYTES * 4) / 3 + 4) {
          throw new RpcError('"data" must be base64 text of at most 64 KiB');
        }
        h.consoleInput(name, new Uint8Array(Buffer.from(p.data, 'base64')), stream(p));
        return undefined;
      }
      default:
        throw new RpcError(`unknown method "${String(method)}"`);
    }
  }

  /** The client went away: stop forwarding anything to it. */
  close(): void {
    this.unsubscribe();
    for (const d of this.detachers.values()) d();
    this.detachers.clear();
  }
}
