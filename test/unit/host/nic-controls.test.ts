/**
 * A NIC's live controls (link, back end, capture) as the worker offers them, on a machine built
 * in-process with one e1000 and one virtio-net: the rows, the checks on values, what each change
 * does to the port, and the monitor's `set_link NIC on|off` going through the same controls.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtMachine } from '../../../main/vm/machine.js';
import { defaultVmConfig, parseNicSpec, type VmConfig } from '../../../main/vm/config.js';
import { applyControl, withControls } from '../../../main/worker/device-controls.js';
import { pciNicRows, virtioRows, withNicBackends } from '../../../main/worker/device-rows.js';
import { captureFileName } from '../../../main/worker/controls/nic-controls.js';
import { runMonitorCommand, type MonitorTarget } from '../../../main/cli/monitor.js';
import { VIRT } from '../../../devices/platform/memory-map.js';
import type { DeviceRow } from '../../../main/host/api-types.js';

const open: VirtMachine[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((m) => m.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function machine() {
  const dataDir = mkdtempSync(join(tmpdir(), 'wasmvisor-nic-'));
  dirs.push(dataDir);
  const config: VmConfig = {
    ...defaultVmConfig('nicvm'),
    nics: [
      { model: 'e1000', net: 'switch:nic-ctl-a', mac: '52:54:00:00:00:01' },
      { model: 'virtio', net: 'none', mac: '52:54:00:00:00:02' },
    ],
  };
  const vm = await VirtMachine.open(config);
  open.push(vm);
  const ctx = { machine: vm, config, dataDir };
  const rows = (): DeviceRow[] =>
    withControls(
      withNicBackends(
        [...virtioRows(vm.virtio, VIRT.virtio), ...pciNicRows(vm.pci.functions(), vm.nics)],
        vm.nics,
      ),
      ctx,
    );
  const set = (d: string, c: string, v: string) => applyControl(d, c, v, ctx);
  return { vm, config, ctx, rows, set, dataDir };
}

const control = (rows: DeviceRow[], dev: string, id: string) =>
  rows.find((r) => r.name === dev)?.controls?.find((c) => c.id === id);

describe('NIC controls', () => {
  it('a virtio-pci NIC is a PCI row whose state follows its driver, with the same controls', async () => {
    expect(parseNicSpec('virtio-pci,net=user')).toMatchObject({ model: 'virtio-pci', net: 'user' });
    const dataDir = mkdtempSync(join(tmpdir(), 'wasmvisor-nic-'));
    dirs.push(dataDir);
    const config: VmConfig = {
      ...defaultVmConfig('vpcivm'),
      nics: [
        { model: 'e1000', net: 'none', mac: '52:54:00:00:00:01' },
        { model: 'virtio-pci', net: 'none', mac: '52:54:00:00:00:03' },
      ],
    };
    const vm = await VirtMachine.open(config);
    open.push(vm);
    const ctx = { machine: vm, config, dataDir };
    const rows = (): DeviceRow[] =>
      withControls(withNicBackends(pciNicRows(vm.pci.functions(), vm.nics), vm.nics), ctx);
    const r = rows().find((x) => x.name === 'virtio-net0')!;
    expect(r.model).toBe('pci 00:02.0 virtio-pci (virtio-net 1af4:1041)');
    expect(r.irq).toBe(34); // slot 2, INTA → PLIC 32 + 2
    expect(r.state).toBe('no driver yet');
    expect(r.controls?.map((c) => c.id)).toEqual(['link', 'backend', 'capture']);
    await expect(applyControl('virtio-net0', 'backend', 'switch:vpci', ctx)).resolves.toBe(
      'virtio-net0: network switch:vpci',
    );
    await expect(applyControl('virtio-net0', 'link', 'off', ctx)).resolves.toBe(
      'virtio-net0: link down',
    );
    expect(vm.nic('virtio-net0').port.carrier).toBe(false);
    expect(rows().find((x) => x.name === 'virtio-net0')!.backend).toMatch(
      /^switch:vpci \(link down/,
    );
    // Its transport's counters are in the machine's virtio stats, as a virtio-mmio device's.
    expect(vm.stats().virtio['virtio-net0']).toMatchObject({ needs_reset: 0, resets: 0 });
  });

  it('lists both NICs with link, network and capture, and what they are plugged into', async () => {
    const { rows } = await machine();
    const r = rows();
    const e = r.find((x) => x.name === 'e1000-0')!;
    expect(e.model).toMatch(/^pci 00:01\.0 e1000/);
    expect(e.irq).toBe(33); // slot 1, INTA → PLIC 32 + 1
    expect(e.backend).toBe('switch:nic-ctl-a (link up, mac 52:54:00:00:00:01)');
    expect(e.controls?.map((c) => `${c.id}=${c.value}`)).toEqual([
      'link=on',
      'backend=switch:nic-ctl-a',
      'capture=off',
    ]);
    const v = r.find((x) => x.name === 'virtio-net0')!;
    expect(v.backend).toBe('none (no carrier, mac 52:54:00:00:00:02)');
    expect(control(r, 'virtio-net0', 'link')!.note).toMatch(/no carrier: back end none/);
  });

  it('pulls and plugs the cable: the port and the row follow', async () => {
    const { vm, rows, set } = await machine();
    await expect(set('e1000-0', 'link', 'off')).resolves.toBe('e1000-0: link down');
    expect(vm.nic('e1000-0').port.carrier).toBe(false);
    expect(control(rows(), 'e1000-0', 'link')!.value).toBe('off');
    expect(rows().find((x) => x.name === 'e1000-0')!.backend).toMatch(/link down/);
    await expect(set('e1000-0', 'link', 'on')).resolves.toBe('e1000-0: link up');
    expect(vm.nic('e1000-0').port.carrier).toBe(true);
    expect(vm.nic('e1000-0').stats().net_link_changes).toBe(2);
    await expect(set('e1000-0', 'link', 'maybe')).rejects.toThrow(/Link must be one of on, off/);
  });

  it('moves a NIC to another switch (any name) and records it for a reset; refuses junk', async () => {
    const { vm, config, set, rows } = await machine();
    await expect(set('virtio-net0', 'backend', 'switch:elsewhere')).resolves.toBe(
      'virtio-net0: network switch:elsewhere',
    );
    expect(vm.nic('virtio-net0').port.backendSpec).toBe('switch:elsewhere');
    expect(vm.nic('virtio-net0').port.carrier).toBe(true);
    expect(config.nics[1].net).toBe('switch:elsewhere');
    expect(control(rows(), 'virtio-net0', 'backend')!.options.map((o) => o.value)).toEqual([
      'none',
      'user',
      'switch:elsewhere',
      'switch:nic-ctl-a',
    ]);
    await expect(set('virtio-net0', 'backend', 'none')).resolves.toMatch(/none \(no carrier\)/);
    await expect(set('virtio-net0', 'backend', 'user')).resolves.toBe('virtio-net0: network user');
    expect(config.nics[1].net).toBe('user');
    await expect(set('virtio-net0', 'backend', 'user,bogus=1')).rejects.toThrow(
      /Network must be one of .*, or switch:NAME or user/,
    );
    await expect(set('virtio-net0', 'backend', 'user,hostfwd=tcp::0-:80')).rejects.toThrow(
      /host port "0" is not 1\.\.65535/,
    );
    await expect(set('virtio-net0', 'backend', 'switch:a/b')).rejects.toThrow(/switch:NAME/);
  });

  it('a link pulled at run time stays down across a network change, in the rows and stats', async () => {
    const { vm, set, rows } = await machine();
    await set('e1000-0', 'link', 'off');
    await expect(set('e1000-0', 'backend', 'switch:other')).resolves.toBe(
      'e1000-0: network switch:other (link down)',
    );
    expect(control(rows(), 'e1000-0', 'link')!.value).toBe('off');
    expect(rows().find((x) => x.name === 'e1000-0')!.backend).toBe(
      'switch:other (link down, mac 52:54:00:00:00:01)',
    );
    expect(vm.nic('e1000-0').stats()).toMatchObject({ net_link_up: 0, net_carrier: 0 });
    await set('e1000-0', 'link', 'on');
    expect(rows().find((x) => x.name === 'e1000-0')!.backend).toMatch(/^switch:other \(link up/);
    expect(vm.nic('e1000-0').stats()).toMatchObject({ net_link_up: 1, net_carrier: 1 });
  });

  it('captures to a new file under the data dir or to a given path, and stops', async () => {
    const { vm, set, rows, dataDir } = await machine();
    const out = await set('e1000-0', 'capture', 'on');
    const m = /capturing to (.*)$/.exec(out)!;
    expect(m[1].startsWith(join(dataDir, 'captures', 'nicvm-e1000-0-'))).toBe(true);
    expect(control(rows(), 'e1000-0', 'capture')!.value).toBe(m[1]);
    await expect(set('e1000-0', 'capture', m[1])).resolves.toMatch(/already capturing/);
    const given = join(dataDir, 'given.pcap');
    await expect(set('e1000-0', 'capture', given)).resolves.toBe(`e1000-0: capturing to ${given}`);
    expect(statSync(m[1]).size).toBe(24); // the first file was completed (pcap header)
    await expect(set('e1000-0', 'capture', 'off')).resolves.toMatch(/capture stopped/);
    expect(vm.nic('e1000-0').port.capturePath).toBeUndefined();
    await expect(set('e1000-0', 'capture', 'relative.pcap')).rejects.toThrow(/absolute path/);
    await expect(set('e1000-0', 'capture', '/no/such/dir/x.pcap')).rejects.toThrow(
      /cannot capture to \/no\/such\/dir\/x\.pcap/,
    );
    expect(captureFileName('a b', 'e1000-0', new Date(0))).toBe(
      'a_b-e1000-0-1970-01-01T00-00-00-000Z.pcap',
    );
  });

  it("the monitor's set_link NIC on|off goes through the link control", async () => {
    const { vm, ctx, rows } = await machine();
    const t = {
      state: 'running',
      devices: rows,
      stats: () => undefined,
      setDeviceControl: (d: string, c: string, v: string) => applyControl(d, c, v, ctx),
    } as unknown as MonitorTarget;
    expect((await runMonitorCommand(t, 'set_link virtio-net0 off')).output).toBe(
      'virtio-net0: link down',
    );
    expect(vm.nic('virtio-net0').port.linkUp).toBe(false);
    expect((await runMonitorCommand(t, 'set_link virtio-net0 on')).output).toBe(
      'virtio-net0: link up',
    );
    expect((await runMonitorCommand(t, 'set_link eth9 on')).output).toBe('no such NIC: eth9');
    expect((await runMonitorCommand(t, 'set_link e1000-0')).output).toMatch(/usage/);
  });
});
