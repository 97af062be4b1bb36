/**
 * Asks for the tcp:HOST:PORT of a live migration: where a running VM goes (a `wasmvisor run
 * --incoming`, or a VM of this app waiting with Receive…), or where a stopped VM waits for one.
 */
import { ask } from './ask-dialog.js';
import { h } from './dom.js';

const URI = /^tcp:(\[[^\]]*\]|[^:]*):\d{1,5}$/;

export type MigrationSide = 'send' | 'receive';

export function askMigrationTarget(
  vm: string,
  side: MigrationSide = 'send',
): Promise<string | undefined> {
  const input = h('input', {
    name: 'uri',
    value: 'tcp:127.0.0.1:4444',
    placeholder: 'tcp:HOST:PORT',
    spellcheck: 'false',
  });
  const error = h('p', { class: 'dialog-error' });
  input.addEventListener('input', () => (error.textContent = ''));
  const note =
    side === 'send'
      ? h(
          'p',
          { class: 'dialog-note' },
          'Moves the running VM, live, to a wasmvisor started with ',
          h('code', {}, 'wasmvisor run --incoming tcp:HOST:PORT'),
          ' (or a VM of this app waiting with Receive…) that sees the same disk files. The guest ' +
            'runs on while its memory goes over and pauses only for the last of it; here it ' +
            'then stops. If the other side cannot take it, it runs on here.',
        )
      : h(
          'p',
          { class: 'dialog-note' },
          `Waits for a VM migrating live (Migrate… of a running VM, here or in another wasmvisor) and runs it as ${vm}: `,
          'its memory, devices and disks become this definition. Whoever connects first is taken, ',
          'so listen on 127.0.0.1 unless the other host is on a network you trust. Stop gives up the wait.',
        );
  return ask({
    className: 'migrate-dialog',
    title: side === 'send' ? `Migrate ${vm}` : `Receive a VM into ${vm}`,
    body: [
      note,
      h(
        'label',
        { class: 'field' },
        h('span', {}, side === 'send' ? 'Where it waits' : 'Listen on'),
        input,
      ),
      error,
    ],
    submit:
      side === 'send'
        ? { label: 'Migrate', value: 'migrate' }
        : { label: 'Wait', value: 'receive' },
    read: () => {
      const v = input.value.trim();
      if (URI.test(v)) return v;
      error.textContent = 'give tcp:HOST:PORT, e.g. tcp:127.0.0.1:4444';
      return undefined;
    },
    focus: input,
  });
}
