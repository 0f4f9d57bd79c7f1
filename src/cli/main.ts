/** The command line: `sfp-gpu <command> [flags]`. */
import { runDemo } from './demo.js';
import { checkTrainArgs, runTrain } from './train.js';
import { runCompact } from './compact.js';
import { checkEvalArgs, runEval } from './eval.js';
import { runExport } from './export.js';
import { checkBenchArgs, runBench } from './bench.js';
import { checkPipelineArgs, runPipeline } from './pipeline.js';
import { checkCompactArgs } from './compact.js';
import { checkExportArgs } from './export.js';
import { runReport } from './report.js';
import { ArgsError, HelpRequested, closest, parseArgs, type CommandName } from './args.js';
import { downloadCifar10 } from '../data/download.js';
import { checkDataSplits, type LoadDataOptions } from '../data/node-files.js';

/**
 * Each command: its one-line help, whether it needs the GPU, and its body. A GPU command's `check` (its flags,
 * and the files they name) runs before the adapter is sought, so a mistake is reported without starting the GPU,
 * and on a machine without one; what it settles (train: the checkpoint it resumes) is handed to `run`.
 */
interface Command<Checked = unknown> {
  help: string;
  gpu: boolean;
  check?: (argv: string[]) => Promise<Checked>;
  run: (argv: string[], checked?: Checked) => Promise<unknown>;
}

/** A command whose `run` takes what its own `check` returns: typed together here, kept side by side in COMMANDS. */
function command<Checked>(spec: Command<Checked>): Command {
  return spec as unknown as Command;
}

/** A command's own checks, then its --data folder (whose batches the run reads later): all before the GPU starts. */
async function withDataChecked<A extends { data?: string }, Checked>(
  args: A,
  check: (args: A) => Promise<Checked>,
  options: Pick<LoadDataOptions, 'allowSynthetic' | 'testOnly'> = {},
): Promise<Checked> {
  const checked = await check(args);
  await checkDataSplits({ data: args.data, ...options });
  return checked;
}

const COMMANDS: Record<CommandName, Command> = {
  train: command({
    help: 'train a CIFAR ResNet, optionally with Soft Filter Pruning (--sfp-rate) or hard pruning',
    gpu: true,
    check: (argv) => withDataChecked(parseArgs('train', argv), checkTrainArgs),
    run: runTrain,
  }),
  eval: command({
    help: "the CIFAR-10 test accuracy and loss of a training checkpoint or a compact model",
    gpu: true,
    check: (argv) => withDataChecked(parseArgs('eval', argv), checkEvalArgs, { allowSynthetic: false, testOnly: true }),
    run: runEval,
  }),
  export: command({
    help: 'write a checkpoint or a compact model as an ONNX model',
    gpu: true,
    check: (argv) => checkExportArgs(parseArgs('export', argv)),
    run: runExport,
  }),
  data: {
    help: 'download CIFAR-10 into data/cifar-10-batches-bin',
    gpu: false,
    async run(argv) {
      const args = parseArgs('data', argv);
      const result = await downloadCifar10(args.dir, { force: args.force, log: (line) => console.log(line) });
      console.log(`CIFAR-10 is in ${result.dir}`);
    },
  },
  compact: command({
    help: 'remove the zeroed filters of a pruned checkpoint; writes the smaller dense model once its logits match',
    gpu: true,
    check: (argv) => withDataChecked(parseArgs('compact', argv), checkCompactArgs, { testOnly: true }),
    run: runCompact,
  }),
  bench: command({
    help: 'time a model and its compact version per layer and end to end: real vs theoretical speedup (JSON, Markdown, SVG)',
    gpu: true,
    check: (argv) => checkBenchArgs(parseArgs('bench', argv)),
    run: runBench,
  }),
  pipeline: {
    help: 'short SFP training, compaction with the equivalence check, speedup table and chart (npm start)',
    gpu: true,
    check: (argv) => withDataChecked(parseArgs('pipeline', argv), checkPipelineArgs),
    run: runPipeline,
  },
  report: {
    help: "training results as Markdown and SVG: report.md and accuracy.svg per run, the pruning comparison beside the paper's numbers, the README's blocks",
    gpu: false,
    run: runReport,
  },
  demo: {
    help: 'train a small MLP on a synthetic spiral and print the loss going down',
    gpu: true,
    run: (argv) => runDemo(parseArgs('demo', argv).steps),
  },
};

function usage(): string {
  return 'usage: npx tsx src/cli/main.ts <command> [flags]\n\ncommands:\n' + Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(10)} ${c.help}`).join('\n');
}

let gpuHost: typeof import('../node.js') | null = null;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h') {
    console.log(usage());
    return command ? 0 : 2;
  }
  const entry = Object.hasOwn(COMMANDS, command) ? COMMANDS[command as CommandName] : undefined;
  if (!entry) {
    const near = closest(command, Object.keys(COMMANDS));
    console.error(`error: unknown command '${command}'${near ? ` (did you mean '${near}'?)` : ''}\n\n${usage()}`);
    return 2;
  }
  let checked: unknown;
  try {
    if (entry.gpu) {
      // --help and flag errors answer without a GPU adapter.
      if (entry.check) checked = await entry.check(rest);
      else parseArgs(command as CommandName, rest);
      // Loaded here: the native WebGPU module is not needed by help, data or report, and they work without it.
      gpuHost = await import('../node.js').catch((error: unknown) => {
        const machine = `${process.platform}-${process.arch}`;
        const shipped = ['linux-x64', 'linux-arm64', 'win32-x64', 'win32-arm64', 'darwin-x64', 'darwin-arm64'].includes(machine);
        throw new Error(
          `the WebGPU module (npm package webgpu) did not load: ${error instanceof Error ? error.message : String(error)}; ` +
            (shipped
              ? 'reinstall it with npm ci, and on Debian/Ubuntu install the system packages it needs with bash scripts/setup-system.sh'
              : `it ships Dawn for Linux and Windows on x64 and arm64 and for macOS, and this is ${machine}: run it on one of those`),
        );
      });
      await gpuHost.init();
    }
    await entry.run(rest, checked);
    return 0;
  } catch (error) {
    if (error instanceof HelpRequested) {
      console.log(error.text);
      return 0;
    }
    if (error instanceof ArgsError) {
      console.error(`error: ${error.message}`);
      return 2;
    }
    console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
    if (process.env.SFP_DEBUG) console.error(error);
    return 1;
  } finally {
    gpuHost?.shutdown();
  }
}

process.exitCode = await main(process.argv.slice(2));
