/** Create / edit a VM definition. The host validates again; its error is shown in the dialog. */
import type { VmConfig } from '../../main/host/api-types.js';
import { h } from './dom.js';

function field(label: string, input: HTMLElement, hint?: string): HTMLElement {
  return h(
    'label',
    { class: 'field' },
    h('span', {}, label),
    input,
    hint ? h('small', {}, hint) : undefined,
  );
}

/** Resolves with the new definition after `save` accepted it, or undefined on cancel. */
export function editVmDialog(
  initial: VmConfig | undefined,
  save: (cfg: Record<string, unknown>) => Promise<void>,
): Promise<void> {
  const v = initial;
  const name = h('input', {
    name: 'name',
    required: true,
    pattern: '[\\w.\\-]{1,64}',
    value: v?.name ?? '',
  });
  const mem = h('input', {
    name: 'memMiB',
    type: 'number',
    min: 16,
    max: 2048,
    step: 16,
    value: v?.memMiB ?? 256,
  });
  const path = (n: string, val?: string) =>
    h('input', { name: n, value: val ?? '', placeholder: 'bundled guest', spellcheck: 'false' });
  const kernel = path('kernel', v?.kernel);
  const initrd = path('initrd', v?.initrd);
  const firmware = path('firmware', v?.firmware);
  const append = h('input', {
    name: 'append',
    value: v?.append ?? '',
    placeholder: 'console=ttyS0',
    spellcheck: 'false',
  });
  const con = h(
    'select',
    { name: 'console' },
    h('option', { value: 'ttyS0' }, 'ttyS0 — 16550A UART'),
    h('option', { value: 'hvc0' }, 'hvc0 — virtio-console'),
  );
  con.value = v?.console ?? 'ttyS0';
  const rng = h('input', { name: 'rng', type: 'checkbox', checked: v?.rng ?? false });
  const error = h('p', { class: 'dialog-error', role: 'alert' });
  const form = h(
    'form',
    { method: 'dialog' },
    h('h2', {}, v ? `Edit ${v.name}` : 'New VM'),
    field('Name', name),
    field('Memory (MiB)', mem, '16 – 2048'),
    field('Kernel', kernel, 'Linux Image, raw or gzip’d; empty = bundled'),
    field('Initrd', initrd),
    field('Firmware', firmware, 'OpenSBI fw_dynamic.bin or fw_jump.bin'),
    field('Kernel command line', append),
    field('Console', con, 'hvc0 adds a virtio-console; firmware output still shows on ttyS0'),
    h(
      'label',
      { class: 'field field-check' },
      rng,
      h('span', {}, 'virtio-rng (entropy from the host)'),
    ),
    error,
    h(
      'div',
      { class: 'dialog-buttons' },
      h(
        'button',
        { type: 'button', class: 'btn', value: 'cancel', 'data-action': 'cancel' },
        'Cancel',
      ),
      h(
        'button',
        { type: 'submit', class: 'btn btn-primary', value: 'save' },
        v ? 'Save' : 'Create',
      ),
    ),
  );
  const dlg = h('dialog', { class: 'vm-dialog' }, form);
  document.body.append(dlg);
  return new Promise((resolve) => {
    const close = () => {
      dlg.close();
      dlg.remove();
      resolve();
    };
    form.querySelector('[data-action=cancel]')!.addEventListener('click', close);
    dlg.addEventListener('cancel', close);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const opt = (i: HTMLInputElement) => (i.value.trim() ? i.value.trim() : undefined);
      const cfg: Record<string, unknown> = {
        ...(v ?? {}),
        name: name.value.trim(),
        memMiB: Number(mem.value),
        kernel: opt(kernel),
        initrd: opt(initrd),
        firmware: opt(firmware),
        append: opt(append),
        console: con.value,
        rng: rng.checked,
      };
      save(cfg).then(close, (err: Error) => (error.textContent = err.message));
    });
    dlg.showModal();
    name.focus();
  });
}
