// Builds the optional host-helper addon (native/wasmvisor-native.c) into
// dist/native/wasmvisor-native.node against N-API (so the same binary loads in Electron): with
// node-gyp (npm's own copy, native/binding.gyp) where it works, else with the system C compiler
// and Node's headers directly.
//
// This script never fails the install: when there is no compiler, no headers, an unsupported
// platform, or the result does not load, it says so on one line and exits 0. Everything that
// uses the addon falls back without it (e.g. discard writes zeros; stats say `sparse: false`;
// the balloon keeps the guest's pages resident and says "memory not returned to host").
// Set WASMVISOR_NO_NATIVE=1 to skip the build.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { homedir, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'native', 'wasmvisor-native.c');
const outDir = join(root, 'dist', 'native');
const out = join(outDir, 'wasmvisor-native.node');

function say(msg) {
  console.log(`native: ${msg}`);
}

/** Directories that may hold node_api.h for the running Node. */
function headerDirs() {
  const dirs = [];
  const nodedir = process.env.npm_config_nodedir;
  if (nodedir) dirs.push(join(nodedir, 'include', 'node'));
  dirs.push(join(dirname(process.execPath), '..', 'include', 'node'));
  const version = process.versions.node;
  dirs.push(join(homedir(), '.cache', 'node-gyp', version, 'include', 'node'));
  dirs.push('/usr/include/node', '/usr/local/include/node');
  return dirs.filter((d) => existsSync(join(d, 'node_api.h')));
}

function findCompiler() {
  const candidates = [process.env.CC, 'cc', 'gcc', 'clang'].filter(Boolean);
  for (const cc of candidates) {
    try {
      execFileSync(cc, ['--version'], { stdio: 'ignore' });
      return cc;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

/** npm's bundled node-gyp: next to the npm running this script, or next to the npm on PATH. */
function findNodeGyp() {
  const candidates = [];
  const npmCli = process.env.npm_execpath;
  if (npmCli)
    candidates.push(join(dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  );
  return candidates.find((c) => existsSync(c));
}

/** Checks a built addon in a fresh process, then moves it into place. */
function install(built) {
  // Load it in a fresh process: a broken binary must not be left where loaders look.
  execFileSync(
    process.execPath,
    [
      '-e',
      `const m=require(${JSON.stringify(built)});if(typeof m.punchHole!=='function'||typeof m.madviseDontNeed!=='function')throw 1`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  mkdirSync(outDir, { recursive: true });
  copyFileSync(built, out);
}

/** Returns true when node-gyp built and installed the addon. */
function buildWithNodeGyp() {
  const gyp = findNodeGyp();
  if (!gyp) return false;
  try {
    execFileSync(process.execPath, [gyp, 'rebuild', '--directory', join(root, 'native')], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 120_000,
    });
    install(join(root, 'native', 'build', 'Release', 'wasmvisor_native.node'));
    say(`built ${out.slice(root.length + 1)} (node-gyp)`);
    return true;
  } catch (e) {
    const detail = e && e.stderr ? String(e.stderr).trim().split('\n').slice(-2).join(' | ') : '';
    say(`node-gyp did not build it (${detail || (e && e.message) || e}); trying the C compiler`);
    return false;
  }
}

function build() {
  if (process.env.WASMVISOR_NO_NATIVE) return say('skipped (WASMVISOR_NO_NATIVE is set)');
  if (buildWithNodeGyp()) return;
  const os = platform();
  if (os !== 'linux' && os !== 'darwin') {
    return say(`not built on ${os}: the helpers fall back (discard writes zeros)`);
  }
  const [include] = headerDirs();
  if (!include) return say("not built: Node's headers (node_api.h) not found; helpers fall back");
  const cc = findCompiler();
  if (!cc) return say('not built: no C compiler (cc, gcc, clang); helpers fall back');
  mkdirSync(outDir, { recursive: true });
  const tmp = join(outDir, `wasmvisor-native.tmp-${process.pid}.node`);
  // Addons resolve N-API symbols from the host process at load time, hence no -lnode.
  const link = os === 'darwin' ? ['-bundle', '-undefined', 'dynamic_lookup'] : ['-shared'];
  try {
    execFileSync(
      cc,
      ['-O2', '-fPIC', '-Wall', '-std=gnu11', `-I${include}`, ...link, '-o', tmp, source],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    install(tmp);
    rmSync(tmp, { force: true });
    say(`built ${out.slice(root.length + 1)} (${cc})`);
  } catch (e) {
    rmSync(tmp, { force: true });
    const detail = e && e.stderr ? String(e.stderr).trim().split('\n').slice(-3).join(' | ') : '';
    say(`not built (${detail || (e && e.message) || e}); helpers fall back`);
  }
}

try {
  build();
} catch (e) {
  say(`not built (${e && e.message ? e.message : e}); helpers fall back`);
}
process.exitCode = 0;
