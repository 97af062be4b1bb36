/**
 * `wasmvisor` command line entry. `run` starts its VM's worker thread first, so that the
 * worker's start (~30 ms of thread and module loading) overlaps the main thread loading the
 * commands (commands.ts); the worker waits for the VM's definition.
 */
import { startVmWorkerAhead } from '../host/worker-spawn.js';
import { vmWorkerPath } from '../host/worker-path.js';
import { startupMark } from '../host/startup-trace.js';

export async function main(argv: string[]): Promise<number> {
  startupMark('process start', 0);
  startupMark('cli loaded');
  // A speculative start: if `run`'s options turn out wrong, the unused worker does not keep the
  // process alive. Without a build there is no worker to start; the command says so later.
  if (argv[0] === 'run') {
    try {
      startVmWorkerAhead(vmWorkerPath());
    } catch {
      // the command reports the missing build when it needs the worker
    }
  }
  const { runCommand } = await import('./commands.js');
  return runCommand(argv);
}
