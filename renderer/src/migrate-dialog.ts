/**
 * Asks where to migrate a running VM: the tcp:HOST:PORT a `wasmvisor run --incoming` waits on
 * (in a terminal on this machine, or on one that sees the same disk files).
 */
import { ask } from './ask-dialog.js';
import { h } from './dom.js';

const URI = /^tcp:(\[[^\]]*\]|[^:]*):\d{1,5}$/;

export function askMigrationTarget(vm: string): Promise<string | undefined> {
  const input = h('input', {
    name: 'uri',
    value: 'tcp:127.0.0.1:4444',
    placeholder: 'tcp:HOST:PORT',
    spellcheck: 'false',
  });
  const error = h('p', { class: 'dialog-error' });
  input.addEventListener('input', () => (error.textContent = ''));
  return ask({
    className: 'migrate-dialog',
    title: `Migrate ${vm}`,
    body: [
      h(
        'p',
        { class: 'dialog-note' },
        'Moves the running VM, live, to a wasmvisor started with ',
        h('code', {}, 'wasmvisor run --incoming tcp:HOST:PORT'),
        ' that sees the same disk files. The guest runs on while its memory goes over and ' +
          'pauses only for the last of it; here it then stops. If the other side cannot ' +
          'take it, it runs on here.',
      ),
      h('label', { class: 'field' }, h('span', {}, 'Where it waits'), input),
      error,
    ],
    submit: { label: 'Migrate', value: 'migrate' },
    read: () => {
      const v = input.value.trim();
      if (URI.test(v)) return v;
      error.textContent = 'give tcp:HOST:PORT, e.g. tcp:127.0.0.1:4444';
      return undefined;
    },
    focus: input,
  });
}
