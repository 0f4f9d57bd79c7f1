// The command line on a machine with no GPU adapter (no Vulkan driver found): --help and flag errors answer
// as they do anywhere, and a command that needs the GPU says how to install the software driver.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/** `tsx src/cli/main.ts ARGS` with the Vulkan loader pointed at no driver. */
function withoutAdapter(args: string[]) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    env: { ...process.env, VK_ICD_FILENAMES: '/nonexistent/no-driver.json', VK_DRIVER_FILES: '/nonexistent/no-driver.json' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('sfp-gpu without a GPU adapter', () => {
  it('prints the help of a GPU command', () => {
    const { status, stdout } = withoutAdapter(['train', '--help']);
    expect(status).toBe(0);
    expect(stdout).toContain('Usage: npx tsx src/cli/main.ts train [flags]');
  });

  it('names an unknown flag of a GPU command as such', () => {
    const { status, stderr } = withoutAdapter(['export', '--checkpoint', 'c.safetensors', '--out', 'm.onnx', '--bogus']);
    expect(status).toBe(2);
    expect(stderr).toContain('error: export: unknown flag --bogus');
  });

  it('suggests the command meant by a typo', () => {
    const { status, stderr } = withoutAdapter(['trian', '--epochs', '1']);
    expect(status).toBe(2);
    expect(stderr).toContain("error: unknown command 'trian' (did you mean 'train'?)");
  });

  it('reports a mistake that needs no GPU before the adapter is sought: bench repeats, compact over its own input, train flag pairs', () => {
    for (const [args, message] of [
      [['bench', '--repeats', '3', '--out', '/tmp/sfp-never-written'], 'error: bench: --repeats must be even'],
      [['pipeline', '--repeats', '5', '--out', '/tmp/sfp-never-written'], 'error: pipeline: --repeats must be even'],
      [['compact', '--checkpoint', 'package.json', '--out', 'package.json'], 'it is the --checkpoint being read'],
      [['train', '--sfp-rate', '0.3', '--hard-prune', '--asymptotic'], 'error: train: --asymptotic grows the rate from 0'],
      [['train', '--momentum', '0', '--nesterov'], 'error: train: --nesterov needs --momentum above 0'],
    ] as const) {
      const { status, stderr } = withoutAdapter([...args]);
      expect(status, `${args.join(' ')}: ${stderr}`).toBe(2);
      expect(stderr).toContain(message);
      expect(stderr).not.toContain('no WebGPU adapter');
    }
  });

  it('reads the model file of eval, export, compact and bench, and the --data folder, before the adapter is sought: a missing file or one that is no checkpoint is named', () => {
    for (const [args, message] of [
      [['eval', '--checkpoint', '/tmp/sfp-no-such-file.safetensors'], 'checkpoint not found: /tmp/sfp-no-such-file.safetensors'],
      [['export', '--checkpoint', 'package.json', '--out', '/tmp/sfp-never-written.onnx'], 'package.json: not a valid safetensors file'],
      [['compact', '--checkpoint', 'package.json', '--out', '/tmp/sfp-never-written.safetensors'], 'package.json: not a valid safetensors file'],
      [['bench', '--checkpoint', '/tmp/sfp-no-such-file.safetensors', '--out', '/tmp/sfp-never-written'], 'checkpoint not found: /tmp/sfp-no-such-file.safetensors'],
      // A --data folder without the batches, named before the GPU too.
      [['train', '--data', '/tmp/sfp-no-such-data', '--epochs', '1', '--out', '/tmp/sfp-never-written'], 'CIFAR-10 not found in /tmp/sfp-no-such-data (from --data)'],
      [['pipeline', '--data', '/tmp/sfp-no-such-data', '--out', '/tmp/sfp-never-written'], 'CIFAR-10 not found in /tmp/sfp-no-such-data (from --data)'],
    ] as const) {
      const { status, stderr } = withoutAdapter([...args]);
      expect(status, `${args.join(' ')}: ${stderr}`).toBe(1);
      expect(stderr).toMatch(/^error: /);
      expect(stderr).toContain(message);
      expect(stderr).not.toContain('no WebGPU adapter');
    }
  });

  it('refuses a GPU command with the install instructions', () => {
    const { status, stderr } = withoutAdapter(['demo']);
    expect(status).toBe(1);
    expect(stderr).toContain('error: no WebGPU adapter');
    expect(stderr).toContain('bash scripts/setup-system.sh');
  });
});

describe('sfp-gpu where the native WebGPU module cannot load', () => {
  const run = (args: string[]) =>
    spawnSync(process.execPath, ['--import', './test/support/no-webgpu.mjs', '--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', timeout: 60_000 });

  it('the commands that need no GPU still work, and a GPU command says what failed and what to do', () => {
    for (const args of [['--help'], ['data', '--help'], ['report', '--help'], ['train', '--help']]) {
      const result = run(args);
      expect(result.status, `${args.join(' ')}: ${result.stderr}`).toBe(0);
    }
    const gpuCommand = run(['demo']);
    expect(gpuCommand.status).toBe(1);
    expect(gpuCommand.stderr).toContain('error: the WebGPU module (npm package webgpu) did not load: the webgpu module cannot load here;');
    expect(gpuCommand.stderr).toContain('reinstall it with npm ci');
  });
});
