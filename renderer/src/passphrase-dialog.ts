/**
 * Before a VM with encrypted disks (and no key files) starts: one password field per disk. The
 * passphrases go to the host with the start request and are dropped with the dialog; a wrong one
 * comes back as the VM's exit ("wrong passphrase for …").
 */
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
  const form = h(
    'form',
    { method: 'dialog' },
    h('h2', {}, `Start ${vm}`),
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
    h(
      'div',
      { class: 'dialog-buttons' },
      h('button', { type: 'button', class: 'btn', 'data-action': 'cancel' }, 'Cancel'),
      h('button', { type: 'submit', class: 'btn btn-primary', value: 'start' }, 'Start'),
    ),
  );
  const dlg = h('dialog', { class: 'vm-dialog passphrase-dialog' }, form);
  document.body.append(dlg);
  return new Promise((resolve) => {
    const done = (v: (string | null)[] | undefined) => {
      for (const i of inputs) i.value = '';
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    form.querySelector('[data-action=cancel]')!.addEventListener('click', () => done(undefined));
    dlg.addEventListener('cancel', () => done(undefined));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const out: (string | null)[] = Array.from({ length: diskCount }, () => null);
      disks.forEach((d, i) => (out[d.index] = inputs[i]!.value));
      done(out);
    });
    dlg.showModal();
    inputs[0]?.focus();
  });
}
