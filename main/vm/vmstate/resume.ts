/**
 * Resuming a saved VM: the machine built from the file's definition (no boot files loaded),
 * then its state put in. Apart from saved-vm.ts so that reading a file (the CLI's main thread)
 * does not load the machine.
 */
import { VirtMachine, type OpenHooks } from '../machine.js';
import { applySavedVm, checkDisks, type SavedVm } from './saved-vm.js';
import { applyDiskSnapshots } from './vm-snapshots.js';

/**
 * Builds the VM a live migration brought (or the state a failed one left): as openSavedVm, but
 * the disks are not compared with the records, which the source took before it closed them
 * (closing an image may touch it); the migration's own handshake orders the two sides' use.
 */
export async function openMigratedVm(
  saved: SavedVm,
  log?: (msg: string) => void,
  hooks: OpenHooks = {},
): Promise<VirtMachine> {
  const vm = await VirtMachine.open(saved.info.config, log, { ...hooks, restoring: true });
  try {
    applySavedVm(vm, saved);
  } catch (e) {
    await vm.close();
    throw e;
  }
  return vm;
}

/**
 * Builds the VM a saved file describes and puts its state in: checks the disks, reverts the
 * disks of a VM snapshot to their snapshots (vm-snapshots.ts), opens them (`hooks` as for
 * VirtMachine.open), applies the state. Throws StateFileError (or
 * MachineConfigError for a disk that cannot be opened); nothing is left open then.
 */
export async function openSavedVm(
  saved: SavedVm,
  log?: (msg: string) => void,
  hooks: OpenHooks = {},
): Promise<VirtMachine> {
  await checkDisks(saved);
  await applyDiskSnapshots(saved);
  const vm = await VirtMachine.open(saved.info.config, log, { ...hooks, restoring: true });
  try {
    applySavedVm(vm, saved);
  } catch (e) {
    await vm.close();
    throw e;
  }
  return vm;
}
