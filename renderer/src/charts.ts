/**
 * Live charts of one VM's stats with uPlot: MIPS, MMIO exits/s and interrupts/s per device, disk
 * and network throughput, and memory. The last five minutes are kept; a chart is rebuilt when a
 * new series (device) appears. Throughput charts are generic over devices with byte counters
 * (VmStats.bytesPerSec) and only appear when a device of their kind exists. A VM with a balloon
 * gets a chart of its guest RAM, the balloon, the guest's free and available memory (from the
 * stats queue) and the host's resident memory, so inflating shows the host line fall. A VM
 * with the JIT on gets the share of its instructions that ran in translated code.
 */
import uPlot from 'uplot';
import { deviceKind, type VmStats } from '../../main/host/api-types.js';
import { cssVar, onThemeChange } from './theme.js';
import { h } from './dom.js';

export const HISTORY_SECONDS = 300;
const PALETTE = [
  '#4f8cff',
  '#f59e0b',
  '#10b981',
  '#ef4444',
  '#a855f7',
  '#06b6d4',
  '#ec4899',
  '#84cc16',
];

interface ChartSpec {
  id: string;
  title: string;
  unit: string;
  /** Series names present in these samples. */
  keys(samples: VmStats[]): string[];
  /** null: no figure in this sample (a gap in the line). */
  value(s: VmStats, key: string): number | null;
  /** Hidden while it has no series (a device kind the VM does not have). */
  optional?: boolean;
  /** The caption's latest figure, when a sum of the series says nothing. */
  latest?(s: VmStats): string;
}

/** Short series names for byte counters: "virtio-blk0 read", "virtio-net0 rx". */
const COUNTER_LABEL: Record<string, string> = {
  read_bytes: 'read',
  write_bytes: 'write',
  rx_bytes: 'rx',
  tx_bytes: 'tx',
};

/** Bytes/s of every device of one kind that counts bytes, one series per device and counter. */
function throughput(kind: 'disk' | 'net', id: string, title: string): ChartSpec {
  const split = new Map<string, [string, string]>();
  return {
    id,
    title,
    unit: 'B/s',
    optional: true,
    keys: (ss) => {
      const keys = new Set<string>();
      // Every device that exists, busy or idle: an idle disk is worth seeing at 0.
      for (const s of ss) {
        for (const [dev, counters] of Object.entries(s.bytesPerSec ?? {})) {
          if (deviceKind(dev) !== kind) continue;
          for (const c of Object.keys(counters)) {
            const k = `${dev} ${COUNTER_LABEL[c] ?? c.replace(/_bytes$/, '')}`;
            split.set(k, [dev, c]);
            keys.add(k);
          }
        }
      }
      return [...keys].sort();
    },
    value: (s, k) => {
      const [dev, c] = split.get(k) ?? ['', ''];
      return s.bytesPerSec?.[dev]?.[c] ?? 0;
    },
  };
}

const MIB = 1024 * 1024;

/** The balloon chart's series, in MiB, from each snapshot's BalloonInfo and host RSS. */
const BALLOON_SERIES: Record<string, (s: VmStats) => number | undefined> = {
  'guest RAM': (s) => inMiB(s.balloon?.ramBytes),
  balloon: (s) => inMiB(s.balloon?.actualBytes),
  'guest free': (s) => inMiB(s.balloon?.stats.memFree),
  'guest available': (s) => inMiB(s.balloon?.stats.memAvailable),
  'host RSS': (s) => s.hostRssMiB,
};

function inMiB(bytes: number | undefined): number | undefined {
  return bytes === undefined ? undefined : bytes / MIB;
}

/** Guest RAM, balloon, the guest's free/available memory and host RSS; only with a balloon. */
const balloonChart: ChartSpec = {
  id: 'balloon',
  title: 'Guest memory and balloon (MiB)',
  unit: ' MiB',
  optional: true,
  keys: (ss) => {
    if (!ss.some((s) => s.balloon)) return [];
    // Free/available only once the guest's statistics came (stats queue on).
    return Object.keys(BALLOON_SERIES).filter((k) =>
      ss.some((s) => s.balloon && BALLOON_SERIES[k]!(s) !== undefined),
    );
  },
  value: (s, k) => BALLOON_SERIES[k]?.(s) ?? null,
  latest: (s) => {
    const b = s.balloon;
    if (!b) return '';
    const rss = s.hostRssMiB !== undefined ? `, host RSS ${fmt(s.hostRssMiB)} MiB` : '';
    const back = b.returnedToHost ? '' : ' (memory not returned to host)';
    return `balloon ${fmt(b.actualBytes / MIB)} MiB${rss}${back}`;
  },
};

/** The JIT's share of the instructions retired (last interval); only for a VM with the JIT on. */
function jitChart(): ChartSpec {
  return {
    id: 'jit',
    title: 'JIT: instructions run in translated code',
    unit: '%',
    optional: true,
    keys: (ss) => (ss.some((s) => s.jit) ? ['translated'] : []),
    value: (s) => s.jit?.translatedPercent ?? null,
    latest: (s) =>
      s.jit
        ? `${s.jit.translatedPercent.toFixed(0)}% (${s.jit.translatedTotalPercent.toFixed(0)}% ` +
          `since start), ${s.jit.blocks} blocks`
        : '',
  };
}

/** The VM's MIPS and, with several CPUs, each one's (harts take turns: theirs add up to it). */
const mipsChart: ChartSpec = {
  id: 'mips',
  title: 'MIPS',
  unit: '',
  keys: (ss) => {
    const n = Math.max(0, ...ss.map((s) => s.cpus?.harts.length ?? 0));
    return n > 1 ? ['MIPS', ...Array.from({ length: n }, (_, i) => `CPU${i}`)] : ['MIPS'];
  },
  value: (s, k) => (k === 'MIPS' ? s.mips : (s.cpus?.harts[Number(k.slice(3))]?.mips ?? null)),
  latest: (s) => {
    const harts = s.cpus?.harts ?? [];
    if (harts.length < 2) return fmt(s.mips);
    return `${fmt(s.mips)} (${harts.map((h) => `CPU${h.id} ${fmt(h.mips)}`).join(', ')})`;
  },
};

const SPECS: ChartSpec[] = [
  mipsChart,
  {
    id: 'exits',
    title: 'MMIO exits/s by device',
    unit: '/s',
    keys: (ss) => unionKeys(ss, (s) => s.exitsPerSec),
    value: (s, k) => s.exitsPerSec[k] ?? 0,
  },
  {
    id: 'irqs',
    title: 'Interrupts/s by source',
    unit: '/s',
    keys: (ss) => unionKeys(ss, (s) => s.interruptsPerSec),
    value: (s, k) => s.interruptsPerSec[k] ?? 0,
  },
  throughput('disk', 'disk', 'Disk throughput'),
  throughput('net', 'net', 'Network throughput'),
  {
    id: 'mem',
    title: 'Memory (MiB)',
    unit: ' MiB',
    keys: () => ['guest RAM', 'Wasm memory'],
    value: (s, k) => (k === 'guest RAM' ? s.guestMemMiB : s.wasmMemMiB),
  },
  balloonChart,
  jitChart(),
];

function unionKeys(ss: VmStats[], f: (s: VmStats) => Record<string, number>): string[] {
  const keys = new Set<string>();
  // Only sources that did something in the window: eight idle virtio slots are just noise.
  for (const s of ss) for (const [k, v] of Object.entries(f(s))) if (v > 0) keys.add(k);
  return [...keys].sort();
}

class Chart {
  readonly element: HTMLElement;
  private readonly plotHost: HTMLElement;
  private readonly latest: HTMLElement;
  private plot: uPlot | undefined;
  private keys: string[] = [];

  constructor(private readonly spec: ChartSpec) {
    this.latest = h('span', { class: 'chart-latest' });
    this.plotHost = h('div', { class: 'chart-plot' });
    this.element = h(
      'figure',
      { class: 'chart', 'data-chart': spec.id, 'data-points': 0 },
      h('figcaption', {}, h('span', {}, spec.title), this.latest),
      this.plotHost,
    );
  }

  update(samples: VmStats[], force = false): void {
    const keys = this.spec.keys(samples);
    this.element.hidden = this.spec.optional === true && keys.length === 0;
    if (this.element.hidden) return;
    const width = Math.max(200, this.plotHost.clientWidth || 360);
    if (force || !this.plot || keys.join('\0') !== this.keys.join('\0')) this.build(keys, width);
    const xs = samples.map((s) => s.t / 1000);
    const data: uPlot.AlignedData = [
      xs,
      ...keys.map((k) => samples.map((s) => this.spec.value(s, k))),
    ];
    this.plot!.setData(data);
    this.element.dataset.points = String(samples.length);
    this.element.dataset.series = keys.join(',');
    const last = samples.at(-1);
    const v = (k: string): number => (last && this.spec.value(last, k)) ?? 0;
    this.latest.textContent = !last
      ? ''
      : this.spec.latest
        ? this.spec.latest(last)
        : keys.length === 1
          ? fmt(v(keys[0]!)) + this.spec.unit
          : `${fmt(keys.reduce((a, k) => a + v(k), 0))}${this.spec.unit} total`;
  }

  resize(): void {
    if (this.plot)
      this.plot.setSize({ width: Math.max(200, this.plotHost.clientWidth), height: 96 });
  }

  private build(keys: string[], width: number): void {
    this.plot?.destroy();
    this.keys = keys;
    const axis = {
      stroke: cssVar('--muted'),
      grid: { stroke: cssVar('--grid'), width: 1 },
      ticks: { show: false },
    };
    this.plot = new uPlot(
      {
        width,
        height: 96,
        legend: { show: keys.length > 1, live: false },
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: { time: true },
          y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
        },
        axes: [
          // One row of mm:ss labels: uPlot's default adds a date row that takes a third of the height.
          { ...axis, space: 60, size: 24, values: (_u: uPlot, v: number[]) => v.map(clockLabel) },
          { ...axis, size: 46, values: (_u, v) => v.map(fmt) },
        ],
        series: [
          {},
          ...keys.map((k, i) => ({
            label: k,
            stroke: PALETTE[i % PALETTE.length],
            width: 1.5,
            fill: keys.length === 1 ? PALETTE[0] + '22' : undefined,
            points: { show: false },
          })),
        ],
      },
      [[], ...keys.map(() => [])],
      this.plotHost,
    );
  }
}

function clockLabel(sec: number): string {
  const d = new Date(sec * 1000);
  return `${String(d.getMinutes()).padStart(2, '0')}:${String(d.getSeconds()).padStart(2, '0')}`;
}

function fmt(v: number): string {
  if (v >= 1e9) return (v / 1e9).toFixed(1) + 'G';
  if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (v >= 1e4) return (v / 1e3).toFixed(0) + 'k';
  if (v >= 100 || Number.isInteger(v)) return v.toFixed(0); // an axis's 0, not "0.0"
  return v.toFixed(1);
}

export class StatsCharts {
  readonly element: HTMLElement;
  private readonly charts = SPECS.map((s) => new Chart(s));
  private samples: VmStats[] = [];

  constructor() {
    this.element = h('div', { class: 'charts' }, ...this.charts.map((c) => c.element));
    onThemeChange(() => this.redraw(true));
    new ResizeObserver(() => this.charts.forEach((c) => c.resize())).observe(this.element);
  }

  show(samples: VmStats[]): void {
    this.samples = samples;
    this.redraw(false);
  }

  redraw(force: boolean): void {
    if (!this.element.isConnected) return;
    for (const c of this.charts) c.update(this.samples, force);
  }
}
