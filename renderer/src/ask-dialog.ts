/**
 * A small modal that asks for something: a title, the fields, Cancel and a submit button. It
 * resolves with what `read` makes of the fields when submitted (a submit that `read` turns down
 * with undefined keeps the dialog open), or undefined on Cancel or Escape.
 */
import { h } from './dom.js';

export interface AskDialog<T> {
  /** Extra class beside vm-dialog, for styles and tests. */
  className: string;
  title: string;
  body: (Node | undefined)[];
  submit: { label: string; value: string };
  read: () => T | undefined;
  /** The field that gets the focus. */
  focus: HTMLElement | undefined;
  /** Runs when the dialog goes, however it goes (e.g. to clear secrets from the fields). */
  onClose?: () => void;
}

export function ask<T>(d: AskDialog<T>): Promise<T | undefined> {
  const form = h(
    'form',
    { method: 'dialog' },
    h('h2', {}, d.title),
    ...d.body,
    h(
      'div',
      { class: 'dialog-buttons' },
      h('button', { type: 'button', class: 'btn', 'data-action': 'cancel' }, 'Cancel'),
      h(
        'button',
        { type: 'submit', class: 'btn btn-primary', value: d.submit.value },
        d.submit.label,
      ),
    ),
  );
  const dlg = h('dialog', { class: `vm-dialog ${d.className}` }, form);
  document.body.append(dlg);
  return new Promise((resolve) => {
    const done = (v: T | undefined) => {
      d.onClose?.();
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    form.querySelector('[data-action=cancel]')!.addEventListener('click', () => done(undefined));
    dlg.addEventListener('cancel', () => done(undefined));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const v = d.read();
      if (v !== undefined) done(v);
    });
    dlg.showModal();
    d.focus?.focus();
  });
}
