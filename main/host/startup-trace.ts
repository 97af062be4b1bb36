/**
 * Start-up marks for bench/startup.ts. With WASMVISOR_STARTUP_TRACE=1 each mark prints
 * `wasmvisor-startup NAME MS` on stderr, MS in wall-clock milliseconds (timeOrigin + now), so
 * the marks of the CLI's thread and of the VM worker (each with its own time origin) line up
 * with the time the bench spawned the process. Off, a mark costs one comparison.
 */
const tracing = process.env.WASMVISOR_STARTUP_TRACE === '1';

/** Records `name` at `at` (this thread's performance.now(); default: now). */
export function startupMark(name: string, at = performance.now()): void {
  if (!tracing) return;
  process.stderr.write(`wasmvisor-startup ${name} ${(performance.timeOrigin + at).toFixed(1)}\n`);
}
