/** CPU time of other processes, read from Linux's /proc (benchmarks that run QEMU or our CLI). */
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU seconds a child process has used, summed over its live threads (Linux
 * /proc/PID/task/TID/schedstat, nanoseconds), or undefined where /proc is not there.
 */
export function childCpuSeconds(pid: number | undefined): number | undefined {
  try {
    let ns = 0;
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    }
    return ns / 1e9;
  } catch {
    return undefined;
  }
}
