/**
 * VM definitions persisted as one JSON file per VM in `<data dir>/vms/`. Every file is validated
 * on load; a broken one is reported (file + problem) and skipped, never fatal. On first launch
 * (no vms/ folder yet) the bundled guest is written as a ready-made definition.
 */
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { join } from 'node:path';
import { ConfigError, defaultVmConfig, validateVmConfig, type VmConfig } from '../vm/config.js';
import type { DefinitionError } from './api-types.js';

export class DefinitionStore {
  readonly dir: string;
  private readonly vms = new Map<string, VmConfig>();
  private errors: DefinitionError[] = [];

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'vms');
    this.load();
  }

  private fileOf(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  private load(): void {
    if (!existsSync(this.dir)) {
      mkdirSync(this.dir, { recursive: true });
      this.write(defaultVmConfig('bundled'));
    }
    this.vms.clear();
    this.errors = [];
    for (const f of readdirSync(this.dir)
      .filter((f) => f.endsWith('.json'))
      .sort()) {
      const file = join(this.dir, f);
      try {
        let json: unknown;
        try {
          json = JSON.parse(readFileSync(file, 'utf8'));
        } catch (e) {
          throw new ConfigError(`${file}: not valid JSON (${(e as Error).message})`);
        }
        const cfg = validateVmConfig(json, file);
        if (`${cfg.name}.json` !== f) {
          throw new ConfigError(`${file}: "name" is "${cfg.name}" but the file is named ${f}`);
        }
        this.vms.set(cfg.name, cfg);
      } catch (e) {
        this.errors.push({ file, message: (e as Error).message });
      }
    }
  }

  list(): VmConfig[] {
    return [...this.vms.values()];
  }

  get(name: string): VmConfig | undefined {
    return this.vms.get(name);
  }

  loadErrors(): DefinitionError[] {
    return [...this.errors];
  }

  create(input: unknown): VmConfig {
    const cfg = validateVmConfig(input, 'new VM');
    if (this.vms.has(cfg.name)) throw new ConfigError(`a VM named "${cfg.name}" already exists`);
    this.write(cfg);
    this.vms.set(cfg.name, cfg);
    return cfg;
  }

  /** Replaces a definition; a new name renames it (the old file goes). */
  update(name: string, input: unknown): VmConfig {
    if (!this.vms.has(name)) throw new ConfigError(`no VM named "${name}"`);
    const cfg = validateVmConfig(input, `VM "${name}"`);
    if (cfg.name !== name && this.vms.has(cfg.name)) {
      throw new ConfigError(`a VM named "${cfg.name}" already exists`);
    }
    this.write(cfg);
    if (cfg.name !== name) {
      rmSync(this.fileOf(name), { force: true });
      this.vms.delete(name);
    }
    this.vms.set(cfg.name, cfg);
    return cfg;
  }

  delete(name: string): void {
    if (!this.vms.delete(name)) throw new ConfigError(`no VM named "${name}"`);
    rmSync(this.fileOf(name), { force: true });
  }

  /** Writes through a temporary file and a rename, so a crash never leaves half a definition. */
  private write(cfg: VmConfig): void {
    const file = this.fileOf(cfg.name);
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(cfg, null, 2) + '\n');
    renameSync(tmp, file);
  }
}
