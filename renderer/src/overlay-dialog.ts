/**
 * "Create overlay…" under a disk: asks for the new qcow2 file's path (by default beside the
 * image, named after it and the time, so it does not exist yet) before the disk is switched to
 * it (the host API's diskOverlay, the monitor's snapshot_blkdev).
 */
import { ask } from './ask-dialog.js';
import { h } from './dom.js';

const two = (n: number): string => String(n).padStart(2, '0');

/** `/vm/root.img` → `/vm/root-overlay-20261124-231500.qcow2` (local time). */
export function defaultOverlayPath(image: string, now = new Date()): string {
  const slash = image.lastIndexOf('/');
  const dir = image.slice(0, slash + 1);
  const base = image.slice(slash + 1);
  const dot = base.lastIndexOf('.');
  const stem = dot > 0 ? base.slice(0, dot) : base;
  const stamp =
    `${now.getFullYear()}${two(now.getMonth() + 1)}${two(now.getDate())}-` +
    `${two(now.getHours())}${two(now.getMinutes())}${two(now.getSeconds())}`;
  return `${dir}${stem}-overlay-${stamp}.qcow2`;
}

/** Resolves with the path the user gave, or undefined on cancel. */
export function askOverlayPath(device: string, image: string): Promise<string | undefined> {
  const input = h('input', {
    type: 'text',
    name: 'overlay-path',
    required: true,
    maxlength: 4096,
    spellcheck: false,
    value: defaultOverlayPath(image),
    'aria-label': `${device} overlay file`,
  });
  return ask({
    className: 'overlay-dialog',
    title: `Create an overlay for ${device}`,
    body: [
      h(
        'p',
        { class: 'dialog-note' },
        'A new qcow2 file over ',
        h('code', {}, image),
        '. The guest writes into it from now on; the image stays as it is, read-only. ' +
          "The VM's definition will name the new file.",
      ),
      h('label', { class: 'field' }, h('span', {}, 'New file (absolute path)'), input),
    ],
    submit: { label: 'Create overlay', value: 'create' },
    read: () => input.value.trim() || undefined,
    focus: input,
  });
}
