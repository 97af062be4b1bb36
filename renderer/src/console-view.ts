/**
 * One console of a VM (its UART ttyS0, or its virtio-console hvc0): an xterm.js terminal attached
 * to that stream. Attaching replays the host's scrollback of the stream, so a late attach (or a
 * re-opened tab) shows the boot log.
 */
import { Terminal, type ITheme } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { fromBase64, toBase64, type HostClient } from './client.js';
import type { ConsoleStream } from '../../main/host/api-types.js';
import { currentTheme, onThemeChange, cssVar } from './theme.js';

const encoder = new TextEncoder();

function xtermTheme(): ITheme {
  const dark = currentTheme() === 'dark';
  return {
    background: cssVar('--term-bg'),
    foreground: cssVar('--term-fg'),
    cursor: cssVar('--accent'),
    selectionBackground: dark ? '#3b4a6b' : '#b6cdf5',
  };
}

export class ConsoleView {
  readonly element: HTMLDivElement;
  private readonly term: Terminal;
  private readonly fit = new FitAddon();
  private attached = false;
  private readonly resizeObserver: ResizeObserver;

  constructor(
    readonly name: string,
    readonly stream: ConsoleStream,
    private readonly host: HostClient,
  ) {
    this.element = document.createElement('div');
    this.element.className = 'console';
    this.element.dataset.vm = name;
    this.element.dataset.stream = stream;
    this.term = new Terminal({
      fontFamily: 'ui-monospace, "JetBrains Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      scrollback: 10_000,
      cursorBlink: true,
      convertEol: false,
      allowProposedApi: false,
      theme: xtermTheme(),
    });
    this.term.loadAddon(this.fit);
    this.term.onData((d) => this.send(encoder.encode(d)));
    this.term.onBinary((d) => this.send(Uint8Array.from(d, (c) => c.charCodeAt(0))));
    this.term.attachCustomKeyEventHandler((e) => this.shortcut(e));
    onThemeChange(() => (this.term.options.theme = xtermTheme()));
    this.resizeObserver = new ResizeObserver(() => this.refit());
  }

  /** Puts the terminal into the page (once) and attaches the console stream. */
  async open(parent: HTMLElement): Promise<void> {
    if (!this.element.isConnected) parent.append(this.element);
    if (!this.term.element) {
      this.term.open(this.element);
      this.resizeObserver.observe(this.element);
    }
    this.refit();
    await this.attach();
  }

  async attach(): Promise<void> {
    const { scrollback } = await this.host.call('attachConsole', {
      name: this.name,
      stream: this.stream,
    });
    this.term.reset();
    this.term.write(fromBase64(scrollback));
    this.attached = true;
  }

  /** Console bytes pushed by the host. */
  write(data: string): void {
    if (this.attached) this.term.write(fromBase64(data));
  }

  focus(): void {
    this.term.focus();
  }

  refit(): void {
    if (this.element.offsetParent !== null) this.fit.fit();
  }

  /** Everything in the terminal's buffer as text (tests and "copy all"). */
  text(): string {
    const b = this.term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < b.length; i++) lines.push(b.getLine(i)?.translateToString(true) ?? '');
    return lines.join('\n');
  }

  fontSize(delta: number): void {
    const s = Math.min(24, Math.max(9, (this.term.options.fontSize ?? 13) + delta));
    this.term.options.fontSize = s;
    this.refit();
  }

  async detach(): Promise<void> {
    this.attached = false;
    this.resizeObserver.disconnect();
    await this.host
      .call('detachConsole', { name: this.name, stream: this.stream })
      .catch(() => undefined);
    this.term.dispose();
    this.element.remove();
  }

  private send(bytes: Uint8Array): void {
    this.host
      .call('consoleInput', { name: this.name, stream: this.stream, data: toBase64(bytes) })
      .catch(() => undefined);
  }

  /** Ctrl+Shift+C / V copy and paste (plain Ctrl+C must reach the guest as ^C). */
  private shortcut(e: KeyboardEvent): boolean {
    if (e.type !== 'keydown' || !e.ctrlKey || !e.shiftKey) return true;
    const k = e.key.toLowerCase();
    if (k === 'c') {
      const sel = this.term.getSelection();
      if (sel) void navigator.clipboard?.writeText(sel);
      return false;
    }
    if (k === 'v') {
      void navigator.clipboard?.readText().then((t) => t && this.term.paste(t));
      return false;
    }
    if (k === '+' || k === '=') {
      this.fontSize(1);
      return false;
    }
    if (k === '_' || k === '-') {
      this.fontSize(-1);
      return false;
    }
    return true;
  }
}
