/**
 * End to end: `wasmvisor ui` (web mode) driven by Debian's chromium through playwright-core.
 * Starts the bundled VM, waits for the shell prompt in the xterm buffer, runs `uname -m`, checks
 * the device list and that the MIPS chart updates, stops the VM. Then a VM with a disk and
 * console=hvc0: its ttyS0 and hvc0 tabs each show their own output, and the disk's scheduler is
 * switched live from the device table; that VM has a balloon, so its memory chart (guest RAM,
 * balloon, guest free/available, host RSS) appears and follows a target set from the device
 * table (the VM without a balloon has no such chart). Screenshots go to test-artifacts/; the
 * README's docs/screenshot.png is refreshed when WASMVISOR_SCREENSHOT=1. A new VM has the JIT
 * checkbox checked (the default), shows the share of its instructions run in translated code,
 * and keeps the interpreter once the box is unchecked. A VM snapshot is taken from the Snapshots card while the VM runs, listed,
 * reverted to (the shell's variable comes back in the same console tab), reverted to again once
 * the VM is stopped (it starts from it), and deleted. A VM set to deterministic time with an
 * RTC start date keeps both in its definition and its guest reads that date after a long sleep.
 * The disk VM's raw disk is switched to a qcow2 overlay with "Create overlay…" while it runs
 * (its definition then names the overlay), and the overlay, paused, takes an internal snapshot
 * from the disk's panel; the encrypted disk offers no overlay. A VM made in the dialog with
 * Debian's U-Boot as its kernel (offered by the Kernel field) boots the kernel its disk holds.
 * A shared folder added in the dialog (path, tag, read-only) is kept in the definition and shown
 * when it is edited; a bad or doubled tag, or an empty path, is refused before anything is saved.
 * A running VM's shared folder is a row of the device table (folder, tag) with an Access control:
 * the guest mounts it and writes a file the host sees; switched read-only there, the guest's next
 * change fails with "Read-only file system", and switched back it goes through.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { createLuks } from '../../devices/block/luks/create.js';
import { freePort } from '../free-port.js';
import { UBOOT, makeExtlinuxDisk } from '../integration/uboot-disk.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const root = join(import.meta.dirname, '..', '..');
const artifacts = join(root, 'test-artifacts');
const haveChromium = existsSync(CHROMIUM);
const PASS = 'e2e passphrase ☂';
if (!haveChromium) {
  console.warn(`e2e: skipped — ${CHROMIUM} not found (Debian: apt-get install chromium)`);
}

describe.skipIf(!haveChromium)('web UI in chromium', () => {
  let server: ChildProcess;
  let url = '';
  let browser: BrowserContext;
  let page: Page;
  const dataDir = mkdtempSync(join(tmpdir(), 'wasmvisor-e2e-'));
  const profile = mkdtempSync(join(tmpdir(), 'wasmvisor-chromium-'));
  /** The host folder the sharelive VM shares with its guest (tag src). */
  const liveShare = mkdtempSync(join(tmpdir(), 'wasmvisor-e2e-live-share-'));
  /** Uncaught exceptions in the page: any fails the test. */
  const pageErrors: string[] = [];

  beforeAll(async () => {
    mkdirSync(artifacts, { recursive: true });
    // The bundled guest (as a first launch writes it) and a VM with a disk and a virtio-console.
    const vmsDir = join(dataDir, 'vms');
    mkdirSync(vmsDir);
    const img = join(dataDir, 'scratch.img');
    writeFileSync(img, Buffer.alloc(4 * 1024 * 1024));
    const def = (name: string, more: object) =>
      writeFileSync(
        join(vmsDir, `${name}.json`),
        JSON.stringify({ name, memMiB: 256, disks: [], console: 'ttyS0', rng: false, ...more }),
      );
    def('bundled', {});
    def('hvcdisk', {
      memMiB: 128,
      console: 'hvc0',
      disks: [{ path: img, sched: 'noop' }],
      balloon: { enabled: true, freePageReporting: true, deflateOnOom: false, statsPeriodS: 1 },
    });
    // An encrypted disk with no key file: its passphrase is asked when the VM starts.
    const luks = join(dataDir, 'secret.luks');
    await createLuks(luks, 1 << 20, { passphrase: new TextEncoder().encode(PASS), iterTimeMs: 10 });
    def('secret', { memMiB: 128, disks: [{ path: luks, format: 'luks' }] });
    def('sharelive', { memMiB: 128, shares: [{ path: liveShare, tag: 'src' }] });
    server = spawn(process.execPath, [join(root, 'bin', 'wasmvisor.mjs'), 'ui'], {
      env: { ...process.env, WASMVISOR_DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    url = await new Promise<string>((resolve, reject) => {
      let out = '';
      server.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /UI at (http:\/\/127\.0\.0\.1:\d+\/\S+\/)/.exec(out);
        if (m) resolve(m[1]!);
      });
      server.once('exit', (c) => reject(new Error(`wasmvisor ui exited (${c}): ${out}`)));
    });
    // A fresh profile per run (playwright takes it as launchPersistentContext's first argument).
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      viewport: { width: 1360, height: 800 },
      colorScheme: 'dark',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on('pageerror', (e) => pageErrors.push(e.message));
  });

  afterAll(async () => {
    await browser?.close();
    server?.kill('SIGINT');
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(profile, { recursive: true, force: true });
    rmSync(liveShare, { recursive: true, force: true });
  });

  const consoleText = (vm = 'bundled', stream?: string) =>
    page.evaluate(
      ([vm, stream]) =>
        (
          window as unknown as { wasmvisorDebug: { consoleText(n: string, s?: string): string } }
        ).wasmvisorDebug.consoleText(vm!, stream),
      [vm, stream] as const,
    );

  it('boots the bundled VM, runs a command, shows devices and live stats, stops', async () => {
    await page.goto(url);
    const item = page.locator('.vm-item[data-vm=bundled]');
    await item.waitFor();
    await item.locator('[data-action=start]').click();
    await page.locator('.vm-item[data-vm=bundled][data-state=running]').waitFor();

    await expect.poll(() => consoleText(), { timeout: 60_000 }).toMatch(/:~# /);
    await page.locator('.console[data-vm=bundled] .xterm').click();
    await page.keyboard.type('uname -m\n');
    await expect.poll(() => consoleText(), { timeout: 10_000 }).toMatch(/^riscv64\s*$/m);

    const uart = page.locator('#devices tr[data-device=uart0]');
    await expect.poll(() => uart.innerText()).toMatch(/ns16550a[\s\S]*0x10000000[\s\S]*10/);
    await expect.poll(() => page.locator('#devices tbody tr').count()).toBeGreaterThanOrEqual(5);

    const mips = page.locator('.chart[data-chart=mips]');
    const points = async () => Number(await mips.getAttribute('data-points'));
    const before = await points();
    await expect.poll(points, { timeout: 5_000 }).toBeGreaterThan(before);
    // No balloon, no balloon chart.
    expect(await page.locator('.chart[data-chart=balloon]').isHidden()).toBe(true);
    await page.keyboard.type('echo wasmvisor e2e; cat /proc/cpuinfo | head -5\n');
    await page.waitForTimeout(1500);
    await page.screenshot({ path: join(artifacts, 'ui-running-dark.png') });
    await page.locator('#theme-toggle').click();
    await page.screenshot({ path: join(artifacts, 'ui-running-light.png') });

    await page.locator('#toolbar [data-action=stop]').click();
    await page
      .locator('.vm-item[data-vm=bundled][data-state=stopped]')
      .waitFor({ timeout: 10_000 });
    await expect.poll(() => page.locator('#toolbar .pill').innerText()).toBe('Stopped');
    await page.screenshot({ path: join(artifacts, 'ui-stopped.png') });

    // A new definition through the dialog, refused first with the host's validation message.
    expect(pageErrors).toEqual([]);
    await page.locator('#new-vm').click();
    const dialog = page.locator('dialog.vm-dialog');
    await dialog.locator('[name=name]').fill('bundled');
    await dialog.locator('[name=memMiB]').fill('128');
    await dialog.locator('button[type=submit]').click();
    await expect.poll(() => dialog.locator('.dialog-error').innerText()).toMatch(/already exists/);
    await dialog.locator('[name=name]').fill('e2e-small');
    await dialog.getByText('+ Add disk').click();
    await dialog.locator('.disk-row [name=path]').fill('/tmp/e2e-does-not-matter.img');
    await page.screenshot({ path: join(artifacts, 'ui-new-vm-dialog.png') });
    await dialog.locator('.disk-row').getByRole('button', { name: 'remove disk' }).click(); // remove the disk again
    await dialog.locator('button[type=submit]').click();
    await page.locator('.vm-item[data-vm=e2e-small]').waitFor();
    expect(await page.locator('.vm-item[data-vm=e2e-small] .vm-item-meta').innerText()).toMatch(
      /128 MiB/,
    );
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it('shows hvc0 and ttyS0 in their own tabs and switches a disk scheduler live', async () => {
    await page.locator('#theme-toggle').click(); // back to dark for the README screenshot
    const item = page.locator('.vm-item[data-vm=hvcdisk]');
    await item.locator('[data-action=start]').click();
    await page.locator('.vm-item[data-vm=hvcdisk][data-state=running]').waitFor();
    const tabs = page.locator('#tabs .tab[data-vm=hvcdisk]');
    await expect
      .poll(() => tabs.allTextContents())
      .toEqual([expect.stringMatching(/hvcdisk · hvc0/), expect.stringMatching(/hvcdisk · ttyS0/)]);

    // The kernel's console is hvc0: the prompt is there; OpenSBI printed on the UART.
    await expect.poll(() => consoleText('hvcdisk', 'hvc0'), { timeout: 60_000 }).toMatch(/:~# /);
    await page.locator('.console[data-vm=hvcdisk][data-stream=hvc0] .xterm').click();
    await page.keyboard.type('echo only-on-$((1+1))-hvc\n');
    await expect.poll(() => consoleText('hvcdisk', 'hvc0')).toMatch(/^only-on-2-hvc/m);
    await page.locator('#tabs .tab[data-stream=ttyS0][data-vm=hvcdisk]').click();
    await expect.poll(() => consoleText('hvcdisk', 'ttyS0')).toMatch(/OpenSBI/);
    expect(await consoleText('hvcdisk', 'ttyS0')).not.toMatch(/only-on-2-hvc|:~# /);
    expect(await consoleText('hvcdisk', 'hvc0')).not.toMatch(/OpenSBI/);
    await page.locator('#tabs .tab[data-stream=hvc0][data-vm=hvcdisk]').click();

    // The disk's scheduler, from the device table; the device reports the new policy.
    const sched = page.locator('#devices tr[data-controls-for=virtio-blk0] [data-control=sched]');
    await expect.poll(() => sched.inputValue()).toBe('noop');
    await sched.selectOption('deadline');
    await expect
      .poll(() =>
        page.locator('#devices tr[data-controls-for=virtio-blk0] .control-outcome').innerText(),
      )
      .toMatch(/scheduler deadline/);
    await expect
      .poll(() => page.locator('#devices tr[data-device=virtio-blk0] .dev-backend').innerText())
      .toMatch(/sched=deadline/);
    await expect.poll(() => sched.inputValue()).toBe('deadline');
    // Under it, the disk's image: format, path, virtual and on-disk sizes (raw: no snapshots).
    const facts = page.locator('#devices [data-disk=virtio-blk0] .disk-facts');
    await expect
      .poll(() => facts.innerText())
      .toMatch(/^raw .*scratch\.img · virtual 4 MiB · on disk /);
    expect(await page.locator('#devices [data-disk=virtio-blk0] .snapshots').count()).toBe(0);

    // The balloon chart: guest RAM, balloon, the guest's free/available memory, host RSS; the
    // balloon's target from the device table shows up in it.
    const balloon = page.locator('.chart[data-chart=balloon]');
    await balloon.waitFor();
    await expect
      .poll(() => balloon.locator('.u-legend').innerText(), { timeout: 10_000 })
      .toMatch(/guest RAM[\s\S]*balloon[\s\S]*guest free[\s\S]*guest available[\s\S]*host RSS/);
    const target = page.locator(
      '#devices tr[data-controls-for=virtio-balloon0] [data-control=target]',
    );
    await expect.poll(() => target.inputValue()).toBe('128');
    await target.selectOption('64');
    await expect
      .poll(() => balloon.locator('.chart-latest').innerText(), { timeout: 20_000 })
      .toMatch(/^balloon 64 MiB, host RSS \d+/);
    await balloon.scrollIntoViewIfNeeded();
    await balloon.screenshot({ path: join(artifacts, 'ui-balloon-chart.png') });

    // Disk throughput is charted once the guest reads the disk.
    await page.locator('.console[data-vm=hvcdisk][data-stream=hvc0] .xterm').click();
    await page.keyboard.type('dd if=/dev/vda of=/dev/null bs=64k; uname -a\n');
    const disk = page.locator('.chart[data-chart=disk]');
    await disk.waitFor();
    // …and the disk's panel says what its I/O was: the whole 4 MiB read, mostly at once from the
    // host's page cache (the image was just written).
    const io = page.locator('#devices [data-disk=virtio-blk0] .disk-io');
    await expect
      .poll(() => io.innerText(), { timeout: 20_000 })
      .toMatch(
        /^I\/O: \d+ reads \(4(\.\d+)? MiB\) · \d+ writes .* · \d+ host reads, (\d+)% at once from the page cache · latency p50 /,
      );
    const pct = Number(/(\d+)% at once/.exec(await io.innerText())![1]);
    expect(pct).toBeGreaterThan(50);
    await page.waitForTimeout(1500);
    await page.screenshot({ path: join(artifacts, 'ui-hvc0-disk-controls.png') });

    // Create overlay…: the raw disk moves to a new qcow2 beside it while the guest runs.
    const panel = page.locator('#devices [data-disk=virtio-blk0]');
    await panel.locator('[data-disk-action=overlay]').click();
    const ovDialog = page.locator('dialog.overlay-dialog');
    const ovPath = ovDialog.locator('input[name=overlay-path]');
    expect(await ovPath.inputValue()).toMatch(
      new RegExp(`^${dataDir}/scratch-overlay-\\d{8}-\\d{6}\\.qcow2$`),
    );
    const ov = join(dataDir, 'scratch-ov.qcow2');
    await ovPath.fill(ov);
    await ovDialog.locator('button[type=submit]').click();
    const outcome = page.locator('#devices tr[data-controls-for=virtio-blk0] .control-outcome');
    await expect
      .poll(() => outcome.innerText(), { timeout: 30_000 })
      .toMatch(
        new RegExp(
          `^virtio-blk0: switched to ${ov} \\(qcow2, backing file .*scratch\\.img, raw\\)`,
        ),
      );
    await expect
      .poll(() => panel.locator('.disk-facts').innerText(), { timeout: 10_000 })
      .toMatch(/^qcow2 .*scratch-ov\.qcow2 · .* · backing: .*scratch\.img/);
    const def = JSON.parse(readFileSync(join(dataDir, 'vms', 'hvcdisk.json'), 'utf8'));
    expect(def.disks[0]).toMatchObject({ path: ov, format: 'qcow2' });
    // Once more to the same file: refused with its line, the VM runs on.
    await panel.locator('[data-disk-action=overlay]').click();
    await ovPath.fill(ov);
    await ovDialog.locator('button[type=submit]').click();
    await expect
      .poll(() => outcome.innerText(), { timeout: 30_000 })
      .toMatch(/cannot create .*scratch-ov\.qcow2: the file exists/);
    await page.locator('.console[data-vm=hvcdisk][data-stream=hvc0] .xterm').click();
    await page.keyboard.type('echo still-$((8*8))\n');
    await expect.poll(() => consoleText('hvcdisk', 'hvc0')).toMatch(/^still-64/m);
    // The overlay is qcow2: paused, the disk takes an internal snapshot from its panel.
    await page.locator('#toolbar [data-action=pause]').click();
    await page.locator('.vm-item[data-vm=hvcdisk][data-state=paused]').waitFor();
    await panel.locator('input[placeholder="snapshot name"]').fill('ui-snap');
    await panel.locator('button[data-snapshot-action=create]').click();
    await expect
      .poll(() => outcome.innerText(), { timeout: 30_000 })
      .toMatch(/snapshot 1 "ui-snap" created/);
    await expect.poll(() => panel.locator('table.snapshots').innerText()).toContain('ui-snap');
    await page.locator('#toolbar [data-action=resume]').click();
    await page.locator('.vm-item[data-vm=hvcdisk][data-state=running]').waitFor();
    await page.screenshot({ path: join(artifacts, 'ui-disk-overlay.png') });
    if (process.env.WASMVISOR_SCREENSHOT) {
      const shot = join(root, 'docs', 'screenshot.png');
      await page.screenshot({ path: shot });
      expect(statSync(shot).size).toBeLessThan(300 * 1024);
    }
    await page.locator('#toolbar [data-action=stop]').click();
    await page.locator('.vm-item[data-vm=hvcdisk][data-state=stopped]').waitFor();
    expect(pageErrors).toEqual([]);
  }, 120_000);
  it('asks for the passphrase of an encrypted disk at start; a wrong one is the exit reason', async () => {
    const item = page.locator('.vm-item[data-vm=secret]');
    const dialog = page.locator('dialog.passphrase-dialog');
    const field = dialog.locator('input[name=passphrase-0]');
    // Cancel: nothing starts.
    await item.locator('[data-action=start]').click();
    await dialog.waitFor();
    expect(await field.getAttribute('type')).toBe('password');
    expect(await dialog.innerText()).toContain('secret.luks');
    await page.screenshot({ path: join(artifacts, 'ui-passphrase-dialog.png') });
    await dialog.locator('[data-action=cancel]').click();
    await dialog.waitFor({ state: 'detached' });
    expect(await item.getAttribute('data-state')).toBe('stopped');
    // A wrong passphrase: the VM stops again and says why.
    await item.locator('[data-action=start]').click();
    await field.fill('not it');
    await dialog.locator('button[type=submit]').click();
    await expect
      .poll(
        () =>
          item
            .locator('.vm-item-exit')
            .innerText()
            .catch(() => ''),
        { timeout: 20_000 },
      )
      .toMatch(/wrong passphrase for .*secret\.luks/);
    // The right one: the guest boots with the disk.
    await item.locator('[data-action=start]').click();
    await field.fill(PASS);
    await dialog.locator('button[type=submit]').click();
    await page.locator('.vm-item[data-vm=secret][data-state=running]').waitFor();
    await expect.poll(() => consoleText('secret'), { timeout: 60_000 }).toMatch(/:~# /);
    const disk = page.locator('#devices tr[data-device=virtio-blk0]');
    await expect.poll(() => disk.innerText(), { timeout: 10_000 }).toMatch(/secret\.luks/);
    // An encrypted disk offers no overlay (it would hold the guest's writes in the clear).
    const facts = page.locator('#devices [data-disk=virtio-blk0] .disk-facts');
    await expect.poll(() => facts.innerText(), { timeout: 10_000 }).toMatch(/encrypted/);
    expect(await page.locator('#devices [data-disk-action=overlay]').count()).toBe(0);
    expect(await page.content()).not.toContain(PASS);
    await page.locator('#toolbar [data-action=stop]').click();
    await page.locator('.vm-item[data-vm=secret][data-state=stopped]').waitFor();
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it('saves a running VM with Save and brings the same shell back with Resume saved', async () => {
    await page.goto(url);
    const item = page.locator('.vm-item[data-vm=bundled]');
    await item.locator('[data-action=start]').click();
    await page.locator('.vm-item[data-vm=bundled][data-state=running]').waitFor();
    await expect.poll(() => consoleText(), { timeout: 60_000 }).toMatch(/:~# /);
    await page.locator('.console[data-vm=bundled] .xterm').click();
    await page.keyboard.type('S=kept-$((7*6)); echo set-$S\n');
    await expect.poll(() => consoleText(), { timeout: 10_000 }).toMatch(/set-kept-42/);
    await page.locator('#toolbar [data-action=save]').click();
    await page
      .locator('.vm-item[data-vm=bundled][data-state=stopped]')
      .waitFor({ timeout: 30_000 });
    await expect
      .poll(() =>
        item
          .locator('.vm-item-exit')
          .innerText()
          .catch(() => ''),
      )
      .toMatch(/saved to .*bundled\.vm/);
    await item.locator('[data-action=resume-saved]').click();
    await page.locator('.vm-item[data-vm=bundled][data-state=running]').waitFor();
    await page.locator('.console[data-vm=bundled] .xterm').click();
    await page.keyboard.type('echo got-$S\n');
    await expect.poll(() => consoleText(), { timeout: 20_000 }).toMatch(/got-kept-42/);
    // Used up once resumed: only Start is offered after the VM stops.
    await page.locator('#toolbar [data-action=stop]').click();
    await page.locator('.vm-item[data-vm=bundled][data-state=stopped]').waitFor();
    expect(await item.locator('[data-action=resume-saved]').count()).toBe(0);
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it('takes a VM snapshot from the Snapshots section, lists it, reverts to it (running and stopped), deletes it', async () => {
    await page.goto(url);
    const item = page.locator('.vm-item[data-vm=bundled]');
    await item.locator('[data-action=start]').click();
    await page.locator('.vm-item[data-vm=bundled][data-state=running]').waitFor();
    await expect.poll(() => consoleText(), { timeout: 60_000 }).toMatch(/:~# /);
    await page.locator('.console[data-vm=bundled] .xterm').click();
    await page.keyboard.type('P=snap-$((5*9)); echo set-$P\n');
    await expect.poll(() => consoleText(), { timeout: 10_000 }).toMatch(/set-snap-45/);
    const card = page.locator('#vm-snapshots');
    await card.locator('input').fill('first');
    await card.locator('[data-vm-snapshot-action=take]').click();
    const row = card.locator('tr[data-vm-snapshot=first]');
    await row.waitFor({ timeout: 30_000 });
    expect(await row.innerText()).toMatch(/first[\s\S]*MiB[\s\S]*state only \(no disks\)/);
    await expect
      .poll(() => card.locator('.control-outcome').innerText())
      .toMatch(/^snapshot "first" taken in [\d.]+ s/);
    await page.screenshot({ path: join(artifacts, 'ui-snapshots.png') });
    // The VM ran on: its shell answers and changes the variable; Revert brings the old one back.
    await page.locator('.console[data-vm=bundled] .xterm').click();
    await page.keyboard.type('P=changed; echo now-$P\n');
    await expect.poll(() => consoleText(), { timeout: 10_000 }).toMatch(/now-changed/);
    await row.locator('[data-vm-snapshot-action=revert]').click();
    await expect
      .poll(() => card.locator('.control-outcome').innerText(), { timeout: 30_000 })
      .toMatch(/reverted to snapshot "first"/);
    await page.locator('.console[data-vm=bundled] .xterm').click();
    await page.keyboard.type('echo back-$P\n');
    await expect.poll(() => consoleText(), { timeout: 20_000 }).toMatch(/back-snap-45/);
    // On a stopped VM, Revert starts it from the snapshot.
    await page.locator('#toolbar [data-action=stop]').click();
    await page.locator('.vm-item[data-vm=bundled][data-state=stopped]').waitFor();
    await row.locator('[data-vm-snapshot-action=revert]').click();
    await page.locator('.vm-item[data-vm=bundled][data-state=running]').waitFor();
    await page.locator('.console[data-vm=bundled] .xterm').click();
    await page.keyboard.type('echo again-$P\n');
    await expect.poll(() => consoleText(), { timeout: 20_000 }).toMatch(/again-snap-45/);
    page.once('dialog', (d) => void d.accept());
    await row.locator('[data-vm-snapshot-action=delete]').click();
    await card.locator('tr[data-vm-snapshot=first]').waitFor({ state: 'detached' });
    await page.locator('#toolbar [data-action=stop]').click();
    await page.locator('.vm-item[data-vm=bundled][data-state=stopped]').waitFor();
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it('a new VM translates hot code (the JIT box is checked), shows its share live, and keeps the interpreter when unchecked', async () => {
    await page.locator('#new-vm').click();
    const dialog = page.locator('dialog.vm-dialog');
    await dialog.locator('[name=name]').fill('jitvm');
    await dialog.locator('[name=memMiB]').fill('128');
    expect(await dialog.locator('[name=jit]').isChecked()).toBe(true);
    await dialog.locator('button[type=submit]').click();
    const item = page.locator('.vm-item[data-vm=jitvm]');
    await item.waitFor();
    const file = join(dataDir, 'vms', 'jitvm.json');
    // The default is not written down (a definition says what differs from it).
    expect('jit' in JSON.parse(readFileSync(file, 'utf8'))).toBe(false);
    expect(await item.locator('.vm-item-meta').innerText()).not.toMatch(/interpreter/);

    await item.locator('[data-action=start]').click();
    await page.locator('.vm-item[data-vm=jitvm][data-state=running]').waitFor();
    await expect.poll(() => consoleText('jitvm'), { timeout: 60_000 }).toMatch(/:~# /);
    await page.locator('.console[data-vm=jitvm] .xterm').click();
    await page.keyboard.type('i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo n=$i\n');
    // The JIT chart: a nonzero share of instructions in translated code, and its blocks.
    const chart = page.locator('.chart[data-chart=jit]');
    await chart.waitFor();
    await expect
      .poll(() => chart.locator('.chart-latest').innerText(), { timeout: 20_000 })
      .toMatch(/^[1-9]\d*% \(\d+% since start\), [1-9]\d* blocks$/);
    await expect
      .poll(() => page.locator('#toolbar').innerText())
      .toMatch(/JIT [1-9]\d*% translated/);
    await chart.scrollIntoViewIfNeeded();
    await chart.screenshot({ path: join(artifacts, 'ui-jit-chart.png') });
    await page.locator('#toolbar [data-action=stop]').click();
    await page.locator('.vm-item[data-vm=jitvm][data-state=stopped]').waitFor();

    // Unchecked: the definition keeps the choice, the list says so, and the VM runs without
    // translations (no JIT chart, no share in the toolbar).
    await page.locator('#toolbar [data-action=edit]').click();
    await dialog.locator('[name=jit]').uncheck();
    await dialog.locator('button[type=submit]').click();
    await dialog.waitFor({ state: 'detached' });
    expect(JSON.parse(readFileSync(file, 'utf8')).jit).toBe(false);
    await expect.poll(() => item.locator('.vm-item-meta').innerText()).toMatch(/· interpreter$/);
    await page.locator('#toolbar [data-action=edit]').click();
    expect(await dialog.locator('[name=jit]').isChecked()).toBe(false);
    await dialog.locator('[data-action=cancel]').click();
    await dialog.waitFor({ state: 'detached' });
    await item.locator('[data-action=start]').click();
    await page.locator('.vm-item[data-vm=jitvm][data-state=running]').waitFor();
    await page.locator('.console[data-vm=jitvm] .xterm').click();
    await expect
      .poll(
        async () => {
          await page.keyboard.type('echo interp-$((6*7))\n');
          return consoleText('jitvm');
        },
        { timeout: 60_000, interval: 2000 },
      )
      .toMatch(/^interp-42\s*$/m);
    await expect
      .poll(() => page.locator('#toolbar').innerText())
      .toMatch(/MIPS(?![\s\S]*translated)/);
    await page.locator('#toolbar [data-action=stop]').click();
    await page.locator('.vm-item[data-vm=jitvm][data-state=stopped]').waitFor();
    expect(pageErrors).toEqual([]);
  }, 150_000);

  it('a VM on deterministic time with a set RTC date keeps both, and its guest sees that date', async () => {
    await page.locator('#new-vm').click();
    const dialog = page.locator('dialog.vm-dialog');
    await dialog.locator('[name=name]').fill('clockvm');
    await dialog.locator('[name=memMiB]').fill('128');
    await dialog.locator('[name=clock]').selectOption('icount-nosleep');
    await dialog.locator('[name=rtcBase]').fill('2020-01-02T03:04:05');
    await dialog.locator('button[type=submit]').click();
    await dialog.waitFor({ state: 'detached' });
    const item = page.locator('.vm-item[data-vm=clockvm]');
    await expect.poll(() => item.locator('.vm-item-meta').innerText()).toMatch(/· icount$/);
    const file = join(dataDir, 'vms', 'clockvm.json');
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(saved.icount).toEqual({ shift: 4, sleep: false });
    expect(saved.rtcBase).toBe('2020-01-02T03:04:05Z');

    await item.locator('[data-action=start]').click();
    await page.locator('.vm-item[data-vm=clockvm][data-state=running]').waitFor();
    await expect.poll(() => consoleText('clockvm'), { timeout: 60_000 }).toMatch(/:~# /);
    await page.locator('.console[data-vm=clockvm] .xterm').click();
    // 30 s of guest sleep pass at once on instruction time, from the date the RTC was set to.
    await page.keyboard.type('sleep 30; date -u +day=%F\n');
    await expect.poll(() => consoleText('clockvm'), { timeout: 15_000 }).toMatch(/day=2020-01-02/);
    // The toolbar shows the guest's own clock beside the host's uptime.
    await expect
      .poll(() => page.locator('#toolbar').innerText())
      .toMatch(/guest clock (3\d|[4-9]\d|\d{3,}) s/);
    await page.locator('#toolbar [data-action=stop]').click();
    await page.locator('.vm-item[data-vm=clockvm][data-state=stopped]').waitFor();

    // Back to host time and no date: the definition drops both.
    await page.locator('#toolbar [data-action=edit]').click();
    expect(await dialog.locator('[name=clock]').inputValue()).toBe('icount-nosleep');
    expect(await dialog.locator('[name=rtcBase]').inputValue()).toBe('2020-01-02T03:04:05');
    await dialog.locator('[name=clock]').selectOption('host');
    await dialog.locator('[name=rtcBase]').fill('');
    await dialog.locator('button[type=submit]').click();
    await dialog.waitFor({ state: 'detached' });
    const after = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect('icount' in after || 'rtcBase' in after).toBe(false);
    await expect.poll(() => item.locator('.vm-item-meta').innerText()).not.toMatch(/icount/);
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it('a VM created with 2 CPUs keeps them, shows them in the list and the dialog, and its guest has 2', async () => {
    await page.locator('#new-vm').click();
    const dialog = page.locator('dialog.vm-dialog');
    await dialog.locator('[name=name]').fill('smpvm');
    await dialog.locator('[name=memMiB]').fill('128');
    expect(await dialog.locator('[name=cpus]').inputValue()).toBe('1');
    // Without the input's max the browser lets 9 through: the host refuses it, naming the field.
    await dialog.locator('[name=cpus]').evaluate((el) => el.removeAttribute('max'));
    await dialog.locator('[name=cpus]').fill('9');
    await dialog.locator('button[type=submit]').click();
    await expect.poll(() => dialog.locator('.dialog-error').innerText()).toMatch(/"cpus"/);
    await dialog.locator('[name=cpus]').fill('2');
    await dialog.locator('button[type=submit]').click();
    await dialog.waitFor({ state: 'detached' });
    const item = page.locator('.vm-item[data-vm=smpvm]');
    await expect.poll(() => item.locator('.vm-item-meta').innerText()).toMatch(/· 2 CPUs$/);
    const file = join(dataDir, 'vms', 'smpvm.json');
    expect(JSON.parse(readFileSync(file, 'utf8')).cpus).toBe(2);
    // One-CPU VMs say nothing about CPUs.
    const bundledMeta = page.locator('.vm-item[data-vm=bundled] .vm-item-meta');
    expect(await bundledMeta.innerText()).not.toMatch(/CPU|disk|NIC/);
    // Disks and NICs are counted on the line, before the CPUs.
    expect(await page.locator('.vm-item[data-vm=hvcdisk] .vm-item-meta').innerText()).toMatch(
      /· hvc0 · 1 disk$/,
    );

    // The guest (the bundled kernel is SMP) brings both harts up.
    await item.locator('[data-action=start]').click();
    await page.locator('.vm-item[data-vm=smpvm][data-state=running]').waitFor();
    await expect.poll(() => consoleText('smpvm'), { timeout: 60_000 }).toMatch(/:~# /);
    await page.locator('.console[data-vm=smpvm] .xterm').click();
    await page.keyboard.type('echo cpus=$(nproc) online=$(cat /sys/devices/system/cpu/online)\n');
    await expect.poll(() => consoleText('smpvm'), { timeout: 20_000 }).toMatch(/cpus=2 online=0-1/);
    // The MIPS chart draws each CPU beside the total, and its caption names both.
    const mips = page.locator('.chart[data-chart=mips]');
    await expect.poll(() => mips.getAttribute('data-series')).toBe('MIPS,CPU0,CPU1');
    expect(await mips.locator('.chart-latest').innerText()).toMatch(
      /\(CPU0 [\d.]+, CPU1 [\d.]+\)$/,
    );
    await page.locator('#toolbar [data-action=stop]').click();
    await page.locator('.vm-item[data-vm=smpvm][data-state=stopped]').waitFor();

    await page.locator('#toolbar [data-action=edit]').click();
    expect(await dialog.locator('[name=cpus]').inputValue()).toBe('2');
    await dialog.locator('[name=cpus]').fill('1');
    await dialog.locator('button[type=submit]').click();
    await dialog.waitFor({ state: 'detached' });
    expect('cpus' in JSON.parse(readFileSync(file, 'utf8'))).toBe(false);
    await expect.poll(() => item.locator('.vm-item-meta').innerText()).not.toMatch(/CPU/);
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it.skipIf(!existsSync(UBOOT))(
    'a VM whose kernel is U-Boot (offered by the dialog) boots the kernel its disk holds',
    async () => {
      // In the data directory, which goes when the suite ends.
      const disk = makeExtlinuxDisk(
        mkdtempSync(join(dataDir, 'uboot-')),
        'console=ttyS0 root=/dev/vda1 rw from-the-disk',
      );
      await page.locator('#new-vm').click();
      const dialog = page.locator('dialog.vm-dialog');
      // 256 MiB, the default: U-Boot's load addresses for QEMU's virt lie up to ~200 MiB in.
      await dialog.locator('[name=name]').fill('ubootvm');
      // The Kernel field suggests Debian's U-Boot.
      const offered = await dialog
        .locator('input[name=kernel]')
        .evaluate((el) =>
          Array.from((el as HTMLInputElement).list?.options ?? []).map((o) => o.value),
        );
      expect(offered).toContain(UBOOT);
      await dialog.locator('[name=kernel]').fill(UBOOT);
      await dialog.getByText('+ Add disk').click();
      await dialog.locator('.disk-row [name=path]').fill(disk);
      await dialog.locator('button[type=submit]').click();
      await dialog.waitFor({ state: 'detached' });
      const item = page.locator('.vm-item[data-vm=ubootvm]');
      await expect
        .poll(() => item.locator('.vm-item-meta').innerText())
        .toMatch(/256 MiB · U-Boot · ttyS0 · 1 disk/);
      await item.locator('[data-action=start]').click();
      await expect
        .poll(() => consoleText('ubootvm'), { timeout: 60_000 })
        .toMatch(/Retrieving file: \/boot\/extlinux\/extlinux\.conf/);
      await expect.poll(() => consoleText('ubootvm'), { timeout: 90_000 }).toMatch(/:~# /);
      await page.locator('.console[data-vm=ubootvm] .xterm').click();
      await page.keyboard.type('cat /proc/cmdline\n');
      await expect
        .poll(() => consoleText('ubootvm'), { timeout: 20_000 })
        .toMatch(/root=\/dev\/vda1 rw from-the-disk/);
      await page.locator('#toolbar [data-action=stop]').click();
      await page.locator('.vm-item[data-vm=ubootvm][data-state=stopped]').waitFor();
      expect(pageErrors).toEqual([]);
    },
    150_000,
  );

  it('a VM created with a new disk image, network cards, a balloon and a fw_cfg file keeps them; its guest sees them', async () => {
    await page.locator('#new-vm').click();
    const dialog = page.locator('dialog.vm-dialog');
    await dialog.locator('[name=name]').fill('netvm');
    await dialog.locator('[name=memMiB]').fill('128');
    await dialog.getByRole('button', { name: '+ Add network card' }).click();
    await dialog.getByRole('button', { name: '+ Add network card' }).click();
    const cards = dialog.locator('.nic-row');
    await cards.nth(0).locator('[name=model]').selectOption('e1000');
    // A switch needs its name: the form will not go without it.
    await cards.nth(1).locator('[name=model]').selectOption('virtio-pci');
    await cards.nth(1).locator('[name=net]').selectOption('switch');
    expect(await cards.nth(1).locator('[name=netDetail]').getAttribute('placeholder')).toBe(
      'switch name',
    );
    await cards.nth(1).locator('[name=netDetail]').fill('e2e-lab');
    await cards.nth(1).locator('[name=mac]').fill('52:54:00:AB:CD:EF');
    // Packed virtqueues on every virtio device: the virtio card's box follows; an e1000's is
    // disabled (a virtio matter).
    await dialog.locator('[name=virtioPacked]').check();
    expect(await cards.nth(1).locator('[name=packed]').isChecked()).toBe(true);
    expect(await cards.nth(0).locator('[name=packed]').isDisabled()).toBe(true);
    await dialog.locator('[name=balloon]').check();
    await dialog.locator('[name=deflateOnOom]').check();
    await dialog.locator('[name=statsPeriodS]').fill('5');
    // A new blank disk, made from the dialog in the data folder (the row's path is empty).
    await dialog.getByRole('button', { name: '+ Add disk' }).click();
    await dialog.locator('.disk-row').first().getByRole('button', { name: 'New image…' }).click();
    const sizeDialog = page.locator('dialog.new-image-dialog');
    await sizeDialog.locator('[name=size]').fill('64M');
    await sizeDialog.locator('button[type=submit]').click();
    await sizeDialog.waitFor({ state: 'detached' });
    const newDisk = join(dataDir, 'images', 'netvm-disk-0.img');
    await expect
      .poll(() => dialog.locator('.disk-row [name=path]').first().inputValue())
      .toBe(newDisk);
    expect(await dialog.locator('.disk-note').innerText()).toBe(`created ${newDisk} (raw, 64 MiB)`);
    // This disk keeps split rings: its own box, set apart from the VM's.
    const diskPacked = dialog.locator('.disk-row [name=packed]').first();
    expect(await diskPacked.isChecked()).toBe(true);
    await diskPacked.uncheck();
    // A file for the guest through fw_cfg: a name outside opt/ is refused, naming the rule.
    await dialog.getByRole('button', { name: '+ Add file' }).click();
    const fwRow = dialog.locator('.fwcfg-row');
    await fwRow.locator('[name=fwName]').fill('etc/note');
    await fwRow.locator('[name=kind]').selectOption('string');
    await fwRow.locator('[name=value]').fill('hello, guest');
    await cards.nth(1).scrollIntoViewIfNeeded();
    await dialog.screenshot({ path: join(artifacts, 'ui-vm-dialog-nics.png') });
    await dialog.locator('button[type=submit]').click();
    await expect.poll(() => dialog.locator('.dialog-error').innerText()).toMatch(/under "opt\/"/);
    await fwRow.locator('[name=fwName]').fill('opt/org.example/note');
    await dialog.locator('button[type=submit]').click();
    await dialog.waitFor({ state: 'detached' });
    const file = join(dataDir, 'vms', 'netvm.json');
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(saved.nics).toEqual([
      { model: 'e1000', net: 'user' },
      { model: 'virtio-pci', net: 'switch:e2e-lab', mac: '52:54:00:ab:cd:ef' },
    ]);
    expect(saved.balloon).toEqual({
      enabled: true,
      freePageReporting: true,
      deflateOnOom: true,
      statsPeriodS: 5,
    });
    expect(saved.fwCfg).toEqual([{ name: 'opt/org.example/note', string: 'hello, guest' }]);
    expect(saved.virtioPacked).toBe(true);
    expect(saved.disks).toMatchObject([{ path: newDisk, packed: false }]);

    const item = page.locator('.vm-item[data-vm=netvm]');
    await item.locator('[data-action=start]').click();
    await page.locator('.vm-item[data-vm=netvm][data-state=running]').waitFor();
    await expect.poll(() => consoleText('netvm'), { timeout: 60_000 }).toMatch(/:~# /);
    for (const dev of ['e1000-0', 'virtio-net0', 'virtio-balloon0']) {
      await page.locator(`#devices tr[data-device=${dev}]`).waitFor();
    }
    await expect
      .poll(() => page.locator('#devices tr[data-device=fw-cfg] .dev-backend').innerText())
      .toBe('opt/org.example/note');
    // Linux's drivers took the packed rings offered, and split ones where they were not.
    const state = (dev: string) =>
      page.locator(`#devices tr[data-device=${dev}] .pill`).innerText();
    await expect.poll(() => state('virtio-net0'), { timeout: 20_000 }).toBe('active, packed rings');
    await expect.poll(() => state('virtio-balloon0')).toBe('active, packed rings');
    await expect.poll(() => state('virtio-blk0')).toBe('active');
    expect(
      await page.locator('#devices tr[data-device=virtio-net0] .pill').getAttribute('class'),
    ).toBe('pill pill-active');
    // The NAT's DHCP answers on the e1000 (the switch has no server): one lease, the usual one.
    // The new disk is /dev/vda, 64 MiB (131072 sectors).
    await page.locator('.console[data-vm=netvm] .xterm').click();
    await page.keyboard.type('echo vda=$(cat /sys/block/vda/size)\n');
    await expect.poll(() => consoleText('netvm'), { timeout: 20_000 }).toMatch(/vda=131072/);
    await page.keyboard.type(
      'for i in /sys/class/net/eth*; do n=${i##*/}; ip link set $n up; ' +
        'udhcpc -i $n -s /bin/true -q -n -t 3 -T 1 2>&1 | grep -o "lease of [0-9.]*"; done; echo dhcp-$((40+2))\n',
    );
    await expect
      .poll(() => consoleText('netvm'), { timeout: 60_000 })
      .toMatch(/lease of 10\.0\.2\.15\s+dhcp-42/);
    // Each card's traffic and what it cost the guest, under its controls: both sent DHCP
    // requests; only the e1000's NAT answered (nothing serves DHCP on the switch).
    const nicIo = (nic: string) => page.locator(`#devices .nic-io[data-nic-io=${nic}]`).innerText();
    await expect
      .poll(() => nicIo('e1000-0'), { timeout: 10_000 })
      .toMatch(
        /^I\/O: tx [\d.]+ \w*B \([1-9][\d,]* frames\) · rx [\d.]+ \w*B \([1-9][\d,]* frames\) · [1-9][\d,]* exits, [1-9][\d,]* interrupts/,
      );
    await expect
      .poll(() => nicIo('virtio-net0'), { timeout: 10_000 })
      .toMatch(
        /^I\/O: tx [\d.]+ \w*B \([1-9][\d,]* frames\) · rx 0 B \(0 frames\) · [1-9][\d,]* exits, [1-9][\d,]* interrupts/,
      );
    await page.locator('#toolbar [data-action=stop]').click();
    await page.locator('.vm-item[data-vm=netvm][data-state=stopped]').waitFor();

    // The dialog shows the cards as saved; removing one and the balloon drops them.
    await page.locator('#toolbar [data-action=edit]').click();
    expect(await cards.nth(1).locator('[name=net]').inputValue()).toBe('switch');
    expect(await cards.nth(1).locator('[name=netDetail]').inputValue()).toBe('e2e-lab');
    expect(await dialog.locator('[name=balloon]').isChecked()).toBe(true);
    expect(await dialog.locator('[name=deflateOnOom]').isChecked()).toBe(true);
    expect(await dialog.locator('[name=statsPeriodS]').inputValue()).toBe('5');
    await cards.nth(1).getByRole('button', { name: 'remove network card' }).click();
    await dialog.locator('[name=balloon]').uncheck();
    expect(await fwRow.locator('[name=value]').inputValue()).toBe('hello, guest');
    await fwRow.getByRole('button', { name: 'remove fw_cfg file' }).click();
    await dialog.locator('button[type=submit]').click();
    await dialog.waitFor({ state: 'detached' });
    const after = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(after.nics).toEqual([{ model: 'e1000', net: 'user' }]);
    expect(after.disks).toMatchObject([{ path: newDisk, format: 'raw' }]);
    expect('balloon' in after || 'fwCfg' in after).toBe(false);
    expect(pageErrors).toEqual([]);
  }, 150_000);

  it('a VM with a shared folder keeps it (tag, read-only); a bad or doubled tag is refused in the dialog', async () => {
    if (page.url() !== url) await page.goto(url); // when this case runs alone (-t)
    const folder = mkdtempSync(join(tmpdir(), 'wasmvisor-e2e-share-'));
    const file = join(dataDir, 'vms', 'sharevm.json');
    try {
      await page.locator('#new-vm').click();
      const dialog = page.locator('dialog.vm-dialog');
      await dialog.locator('[name=name]').fill('sharevm');
      await dialog.locator('[name=memMiB]').fill('128');
      const hint = dialog.locator('.share-hint');
      expect(await hint.innerText()).toBe('in the guest: mount -t 9p -o trans=virtio TAG /mnt');
      // A new row's tag is hostN by its place; "+ Add" stops at 4 and comes back after a removal.
      const add = dialog.getByRole('button', { name: '+ Add shared folder' });
      for (let i = 0; i < 4; i++) await add.click();
      const rows = dialog.locator('.share-row');
      expect(
        await rows
          .locator('[name=tag]')
          .evaluateAll((l) => l.map((e) => (e as HTMLInputElement).value)),
      ).toEqual(['host0', 'host1', 'host2', 'host3']);
      expect(await add.isDisabled()).toBe(true);
      expect(await hint.innerText()).toBe('in the guest: mount -t 9p -o trans=virtio host0 /mnt');
      for (let i = 3; i > 0; i--) {
        await rows.nth(i).getByRole('button', { name: 'remove shared folder' }).click();
      }
      expect(await rows.count()).toBe(1);
      expect(await add.isDisabled()).toBe(false);

      // A tag with a space: the form does not go, the error line names the row and the rule.
      const row = rows.first();
      await row.locator('[name=path]').fill(folder);
      await row.locator('[name=tag]').fill('a b');
      await row.locator('[name=readOnly]').check();
      await dialog.locator('button[type=submit]').click();
      await expect
        .poll(() => dialog.locator('.dialog-error').innerText())
        .toBe('Shared folder 1: the tag has a space, a comma or a NUL');
      expect(
        await row.locator('[name=tag]').evaluate((e) => (e as HTMLInputElement).validationMessage),
      ).toMatch(/space/);
      // A second folder with the same tag, and one with no path: refused too.
      await row.locator('[name=tag]').fill('src');
      expect(await dialog.locator('.dialog-error').innerText()).toBe('');
      expect(await hint.innerText()).toBe('in the guest: mount -t 9p -o trans=virtio src /mnt');
      await add.click();
      await dialog.locator('button[type=submit]').click();
      await expect
        .poll(() => dialog.locator('.dialog-error').innerText())
        .toBe('Shared folder 2: give the host folder’s path');
      await rows.nth(1).locator('[name=path]').fill(folder);
      await rows.nth(1).locator('[name=tag]').fill('src');
      await dialog.locator('button[type=submit]').click();
      await expect
        .poll(() => dialog.locator('.dialog-error').innerText())
        .toBe('Shared folder 2: tag "src" is given twice');
      expect(existsSync(file)).toBe(false);
      await rows.nth(1).getByRole('button', { name: 'remove shared folder' }).click();
      expect(await dialog.locator('.dialog-error').innerText()).toBe('');
      await dialog.screenshot({ path: join(artifacts, 'ui-vm-dialog-shares.png') });
      await dialog.locator('button[type=submit]').click();
      await dialog.waitFor({ state: 'detached' });
      const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      expect(saved.shares).toEqual([{ path: folder, tag: 'src', readOnly: true }]);

      // Edited: the dialog shows the share as saved; without it the field leaves the file.
      const item = page.locator('.vm-item[data-vm=sharevm]');
      await item.locator('.vm-item-head').click();
      await page.locator('.vm-item[data-vm=sharevm].selected').waitFor();
      await page.locator('#toolbar [data-action=edit]').click();
      expect(await rows.count()).toBe(1);
      expect(await row.locator('[name=path]').inputValue()).toBe(folder);
      expect(await row.locator('[name=tag]').inputValue()).toBe('src');
      expect(await row.locator('[name=readOnly]').isChecked()).toBe(true);
      expect(await hint.innerText()).toBe('in the guest: mount -t 9p -o trans=virtio src /mnt');
      await row.getByRole('button', { name: 'remove shared folder' }).click();
      await dialog.locator('button[type=submit]').click();
      await dialog.waitFor({ state: 'detached' });
      expect('shares' in JSON.parse(readFileSync(file, 'utf8'))).toBe(false);
      expect(pageErrors).toEqual([]);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  }, 60_000);

  it('a running VM shows its shared folder in the devices; Access switches it read-only and back live', async () => {
    if (page.url() !== url) await page.goto(url); // when this case runs alone (-t)
    const item = page.locator('.vm-item[data-vm=sharelive]');
    await item.locator('.vm-item-head').click();
    await item.locator('[data-action=start]').click();
    await page.locator('.vm-item[data-vm=sharelive][data-state=running]').waitFor();
    await expect.poll(() => consoleText('sharelive'), { timeout: 60_000 }).toMatch(/:~# /);
    expect(await item.locator('.vm-item-meta').innerText()).toMatch(/· ttyS0 · 1 shared folder$/);

    // The share's row: its model, host folder and tag; under it the Access control, read-write.
    const row = page.locator('#devices tr[data-device=virtio-9p0]');
    await expect
      .poll(() => row.innerText(), { timeout: 10_000 })
      .toMatch(/^virtio-9p0\s+virtio-mmio 9p \(shared folder\)\s/);
    expect(await row.locator('.dev-backend').innerText()).toBe(
      `host folder ${liveShare} (tag src)`,
    );
    const controls = page.locator('#devices tr[data-controls-for=virtio-9p0]');
    const access = controls.locator('[data-control=access]');
    expect(await controls.locator('.control-label').innerText()).toBe('Access');
    expect(await access.inputValue()).toBe('rw');
    expect(await access.locator('option:checked').innerText()).toBe('read-write');
    expect(await access.locator('option').allInnerTexts()).toEqual(['read-write', 'read-only']);
    expect(await controls.locator('.control-note').count()).toBe(0);
    await expect
      .poll(() => row.locator('.pill').innerText(), { timeout: 10_000 })
      .toBe('active, not mounted');

    // The guest mounts it and writes a file: the host has it.
    const term = page.locator('.console[data-vm=sharelive] .xterm');
    await term.click();
    await page.keyboard.type(
      'mkdir -p /mnt/s && mount -t 9p -o trans=virtio src /mnt/s && echo hi > /mnt/s/a.txt && echo wrote-$((6*7))\n',
    );
    await expect.poll(() => consoleText('sharelive'), { timeout: 20_000 }).toMatch(/^wrote-42/m);
    expect(readFileSync(join(liveShare, 'a.txt'), 'utf8')).toBe('hi\n');
    await expect
      .poll(() => row.locator('.pill').innerText(), { timeout: 10_000 })
      .toBe('active, mounted');

    // Read-only from the device table: the guest's next change is refused, the host unchanged.
    const outcome = controls.locator('.control-outcome');
    await access.selectOption('ro');
    await expect
      .poll(() => outcome.innerText(), { timeout: 10_000 })
      .toBe(`virtio-9p0: ${liveShare} is read-only for the guest`);
    await expect.poll(() => access.inputValue()).toBe('ro');
    await expect
      .poll(() => row.locator('.dev-backend').innerText())
      .toBe(`host folder ${liveShare} (tag src, read-only)`);
    await term.click();
    await page.keyboard.type('touch /mnt/s/b 2>&1; echo ro-$((6*7))\n');
    await expect
      .poll(() => consoleText('sharelive'), { timeout: 20_000 })
      .toMatch(/Read-only file system\s+ro-42/);
    expect(existsSync(join(liveShare, 'b'))).toBe(false);
    await controls.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(artifacts, 'ui-share-row.png') });

    // Back to read-write: the same command works.
    await access.selectOption('rw');
    await expect
      .poll(() => outcome.innerText(), { timeout: 10_000 })
      .toBe(`virtio-9p0: ${liveShare} is read-write for the guest`);
    await expect.poll(() => access.inputValue()).toBe('rw');
    await expect
      .poll(() => row.locator('.dev-backend').innerText())
      .toBe(`host folder ${liveShare} (tag src)`);
    await term.click();
    await page.keyboard.type('touch /mnt/s/b && echo rw-$((6*7))\n');
    await expect.poll(() => consoleText('sharelive'), { timeout: 20_000 }).toMatch(/^rw-42/m);
    expect(existsSync(join(liveShare, 'b'))).toBe(true);

    await page.locator('#toolbar [data-action=stop]').click();
    await page.locator('.vm-item[data-vm=sharelive][data-state=stopped]').waitFor();
    expect(pageErrors).toEqual([]);
  }, 120_000);

  /** tcp:127.0.0.1:PORT with a port that was free a moment ago. */
  const freeMigrationUri = async (): Promise<string> => `tcp:127.0.0.1:${await freePort()}`;

  /** Starts the bundled VM from its list item, types `line` at its prompt and waits for `done`. */
  async function startBundledWith(line: string, done: RegExp) {
    const item = page.locator('.vm-item[data-vm=bundled]');
    await item.click();
    await item.locator('[data-action=start]').click();
    await page.locator('.vm-item[data-vm=bundled][data-state=running]').waitFor();
    await expect.poll(() => consoleText(), { timeout: 60_000 }).toMatch(/:~# $/);
    await page.locator('.console[data-vm=bundled] .xterm').click();
    await page.keyboard.type(`${line}\n`);
    await expect.poll(() => consoleText(), { timeout: 10_000 }).toMatch(done);
    return item;
  }

  it('Migrate… moves the running bundled VM live to a wasmvisor waiting in a terminal', async () => {
    // The destination: `wasmvisor run --incoming` in a terminal of its own.
    const uri = await freeMigrationUri();
    const dst = spawn(
      process.execPath,
      [join(root, 'bin', 'wasmvisor.mjs'), 'run', '--incoming', uri],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let dstOut = '';
    let dstErr = '';
    dst.stdout!.on('data', (d: Buffer) => (dstOut += d.toString('latin1')));
    dst.stderr!.on('data', (d: Buffer) => (dstErr += d.toString('latin1')));
    try {
      await expect.poll(() => dstErr, { timeout: 30_000 }).toMatch(/waiting for a migrating VM/);
      const item = await startBundledWith('MOVED=yes-$((6*7)); echo set', /^set\s*$/m);
      await page.locator('#toolbar [data-action=migrate]').click();
      const dialog = page.locator('dialog.migrate-dialog');
      await dialog.locator('[name=uri]').fill('somewhere');
      await dialog.locator('button[type=submit]').click();
      expect(await dialog.locator('.dialog-error').innerText()).toMatch(/tcp:HOST:PORT/);
      await dialog.locator('[name=uri]').fill(uri);
      await dialog.screenshot({ path: join(artifacts, 'ui-migrate-dialog.png') });
      await dialog.locator('button[type=submit]').click();
      await expect
        .poll(() => page.locator('#toasts').innerText(), { timeout: 60_000 })
        .toMatch(/migrated to tcp:127\.0\.0\.1:\d+ in [\d.]+ s: .*it runs there now/);
      await page.locator('.vm-item[data-vm=bundled][data-state=stopped]').waitFor();
      expect(await item.innerText()).toMatch(/migrated to tcp:127\.0\.0\.1/);
      // The guest runs on in the terminal's wasmvisor, the same shell.
      dst.stdin!.write('echo got-$MOVED\r');
      await expect.poll(() => dstOut, { timeout: 30_000 }).toMatch(/got-yes-42/);
      dst.stdin!.write('poweroff -f\r');
      await new Promise((r) => dst.once('exit', r));
      expect(pageErrors).toEqual([]);
    } finally {
      dst.kill();
    }
  }, 150_000);

  it('Receive… makes a VM of the app wait, and Migrate… moves the bundled VM into it', async () => {
    const uri = await freeMigrationUri();
    // smpvm (2 CPUs, 128 MiB, made above) waits.
    const dest = page.locator('.vm-item[data-vm=smpvm]');
    await dest.locator('.vm-item-head').click();
    await dest.locator('[data-action=receive]').click();
    const ask = page.locator('dialog.migrate-dialog');
    expect(await ask.locator('h2').innerText()).toMatch(/Receive a VM into smpvm/);
    await ask.locator('[name=uri]').fill(uri);
    await ask.screenshot({ path: join(artifacts, 'ui-receive-dialog.png') });
    await ask.locator('button[type=submit]').click();
    await page.locator('.vm-item[data-vm=smpvm][data-state=starting]').waitFor();
    // It says what it waits for, not that it is starting.
    expect(await dest.locator('.vm-state').innerText()).toBe('Waiting');
    expect(await page.locator('#toolbar .toolbar-meta').innerText()).toBe(
      `waiting on ${uri} for a VM migrating here`,
    );

    await startBundledWith('INAPP=yes-$((6*7)); echo set-in-app', /^set-in-app\s*$/m);
    await page.locator('#toolbar [data-action=migrate]').click();
    const dialog = page.locator('dialog.migrate-dialog');
    await dialog.locator('[name=uri]').fill(uri);
    await dialog.locator('button[type=submit]').click();
    await page
      .locator('.vm-item[data-vm=bundled][data-state=stopped]')
      .waitFor({ timeout: 60_000 });
    await page.locator('.vm-item[data-vm=smpvm][data-state=running]').waitFor();
    // The same shell runs on as smpvm, whose definition is now the one that came (one CPU).
    await dest.locator('.vm-item-head').click(); // not the middle: a button is there now
    await page.locator('.console[data-vm=smpvm] .xterm').click();
    await page.keyboard.type('echo got-$INAPP\n');
    await expect.poll(() => consoleText('smpvm'), { timeout: 30_000 }).toMatch(/got-yes-42/);
    await expect.poll(() => dest.locator('.vm-item-meta').innerText()).not.toMatch(/CPUs/);
    expect(JSON.parse(readFileSync(join(dataDir, 'vms', 'smpvm.json'), 'utf8')).memMiB).toBe(256);
    await page.locator('#toolbar [data-action=stop]').click();
    await page.locator('.vm-item[data-vm=smpvm][data-state=stopped]').waitFor();
    expect(pageErrors).toEqual([]);
  }, 150_000);
});
