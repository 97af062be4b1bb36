/**
 * Live migration, the receiving side (QEMU's `-incoming tcp:HOST:PORT`): listens for one
 * connection, takes the VM's definition, its RAM page by page as the source's rounds send it,
 * and the final state; says READY once that state reads as a saved VM, then waits for the
 * source to release the disks. The caller then builds the machine from it (openMigratedVm),
 * and says RUNNING, or ERROR if it could not start, so the source resumes the VM itself.
 */
import { createServer, type Socket } from 'node:net';
import { MAX_MEM_MIB, validateVmConfig, ConfigError, type VmConfig } from '../config.js';
import { StateFileError } from '../vmstate/file-format.js';
import { parseSavedVm, type SavedVm } from '../vmstate/saved-vm.js';
import {
  applyPages,
  MessageReader,
  MessageWriter,
  MIGRATION_MAGIC,
  MIGRATION_VERSION,
  MigrationError,
  MSG,
  PAGE_BYTES,
  parseJson,
  parseMigrationUri,
  withTimeout,
} from './protocol.js';

export interface IncomingMigration {
  /** The VM to build: definition, state and RAM (SavedVm.ram). */
  saved: SavedVm;
  /** Where it came from ("127.0.0.1:51234"). */
  peer: string;
  /** Tells the source the VM runs here; the connection then ends. */
  running(): Promise<void>;
  /** Tells the source it could not start here (the source resumes the VM); ends the connection. */
  failed(message: string): Promise<void>;
}

export interface IncomingOptions {
  /** Called once listening (with the port: 0 in the URI picks a free one). */
  onListening?(port: number): void;
  /** Gives up waiting for each message after this long once connected (default 120 s). */
  timeoutMs?: number;
  log?: (message: string) => void;
  /** Aborted before a source connected: stop listening and throw MigrationError. */
  signal?: AbortSignal;
  /**
   * Called once the definition came (HELLO): zeroed memory of `ramBytes` to receive the RAM
   * pages into (the destination's core, Core.unbound), so that building the machine later
   * neither makes nor fills its RAM while the VM is paused. Absent or undefined: a buffer.
   */
  ramFor?(config: VmConfig, ramBytes: number): Uint8Array | undefined;
}

/**
 * Waits on `uri` ("tcp:HOST:PORT") for a migrating VM and receives it. Throws MigrationError
 * (the stream broke, or what came is not a VM this build can run); the source then resumes it.
 */
export async function receiveMigration(
  uri: string,
  o: IncomingOptions = {},
): Promise<IncomingMigration> {
  const { host, port: listenPort } = parseMigrationUri(uri, true);
  const server = createServer();
  const socket = await new Promise<Socket>((resolve, reject) => {
    server.once('error', (e) =>
      reject(new MigrationError(`cannot listen on ${host}:${listenPort}: ${e.message}`)),
    );
    const abort = (): void => reject(new MigrationError('stopped before a VM came'));
    if (o.signal?.aborted) abort();
    o.signal?.addEventListener('abort', abort, { once: true });
    server.once('connection', (s) => resolve(s));
    server.listen(listenPort, host, () => {
      o.onListening?.((server.address() as { port: number }).port);
    });
  }).finally(() => server.close());
  socket.setNoDelay(true);
  const peer = `${socket.remoteAddress}:${socket.remotePort}`;
  const w = new MessageWriter(socket);
  const r = new MessageReader(socket);
  const timeout = o.timeoutMs ?? 120_000;
  const next = <T>(p: Promise<T>, what: string): Promise<T> => withTimeout(p, timeout, what);
  try {
    const hello = parseJson(await next(r.expect(MSG.hello), 'no VM came'), 'HELLO');
    if (hello.magic !== MIGRATION_MAGIC || hello.version !== MIGRATION_VERSION) {
      throw new MigrationError(
        `${peer} is not a wasmvisor migration this build speaks (version ${String(hello.version)})`,
      );
    }
    let config;
    try {
      config = validateVmConfig(hello.config, 'the migrating VM');
    } catch (e) {
      if (e instanceof ConfigError) throw new MigrationError(e.message);
      throw e;
    }
    const ramBytes = hello.ramBytes;
    if (
      typeof ramBytes !== 'number' ||
      ramBytes !== config.memMiB * 2 ** 20 ||
      ramBytes > MAX_MEM_MIB * 2 ** 20
    ) {
      throw new MigrationError(
        `RAM of ${String(ramBytes)} bytes does not fit the VM's ${config.memMiB} MiB`,
      );
    }
    const given = o.ramFor?.(config, ramBytes);
    const ram = given?.length === ramBytes ? given : new Uint8Array(ramBytes);
    const present = new Uint8Array(Math.ceil(ramBytes / PAGE_BYTES / 8));
    let pages = 0;
    let state: Uint8Array | undefined;
    while (!state) {
      const m = await next(r.next(), 'the migration stalled');
      if (m.type === MSG.pages) pages += applyPages(m.data, ram, present);
      else if (m.type === MSG.final) state = m.data;
      else if (m.type === MSG.error) {
        throw new MigrationError(
          `the source gave up: ${String(parseJson(m.data, 'ERROR').message)}`,
        );
      } else throw new MigrationError(`unexpected message ${m.type} during the transfer`);
    }
    let saved: SavedVm;
    try {
      saved = parseSavedVm(state, `the VM from ${peer}`);
    } catch (e) {
      if (e instanceof StateFileError) throw new MigrationError(e.message);
      throw e;
    }
    if (saved.sections.some((s) => s.name === 'ram')) {
      throw new MigrationError('the final state carries RAM: not a migration stream');
    }
    saved.ram = ram;
    saved.ramPresent = present;
    await w.send(MSG.ready);
    await next(r.expect(MSG.released), 'the source did not release the disks');
    o.log?.(`received ${saved.info.config.name} from ${peer}: ${pages} pages`);
    return {
      saved,
      peer,
      running: async () => {
        await w.send(MSG.running).catch(() => {});
        socket.end();
      },
      failed: async (message: string) => {
        await w.sendJson(MSG.error, { message }).catch(() => {});
        socket.end();
      },
    };
  } catch (e) {
    const message = (e as Error).message;
    await w.sendJson(MSG.error, { message }).catch(() => {});
    socket.destroy();
    if (e instanceof MigrationError) throw e;
    throw new MigrationError(`incoming migration failed: ${message}`);
  }
}
