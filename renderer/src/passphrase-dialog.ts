/**
 * Before a VM with encrypted disks (and no key files) starts: one password field per disk. The
 * passphrases go to the host with the start request and are dropped with the dialog; a wrong one
 * comes back as the VM's exit ("wrong passphrase for …").
 */
import { ask } from './ask-dialog.js';
import { h } from './dom.js';

export interface DiskNeedingKey {
  index: number;
  path: string;
}

/** Resolves with passphrases by disk index (null where none is asked), or undefined on cancel. */
export function askPassphrases(
  vm: string,
  disks: readonly DiskNeedingKey[],
  diskCount: number,
): Promise<(string | null)[] | undefined> {
  const inputs = disks.map((d) =>
    h('input', {
      type: 'password',
      name: `passphrase-${d.index}`,
      autocomplete: 'off',
      required: true,
      'aria-label': `passphrase for ${d.path}`,
    }),
  );
  return ask<(string | null)[]>({
    className: 'passphrase-dialog',
    title: `Start ${vm}`,
    body: [
      h(
        'p',
        { class: 'dialog-note' },
        'These disks are encrypted. Their passphrases are not stored.',
      ),
      ...disks.map((d, i) =>
        h(
          'label',
          { class: 'field' },
          h('span', {}, `Disk ${d.index} `, h('code', {}, d.path)),
          inputs[i],
        ),
      ),
    ],
    submit: { label: 'Start', value: 'start' },
    read: () => {
      const out: (string | null)[] = Array.from({ length: diskCount }, () => null);
      disks.forEach((d, i) => (out[d.index] = inputs[i]!.value));
      return out;
    },
    focus: inputs[0],
    // The passphrases leave the page with the dialog.
    onClose: () => inputs.forEach((i) => (i.value = '')),
  });
}
