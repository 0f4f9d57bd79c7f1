import { describe, expect, expectTypeOf, it } from 'vitest';
import { ArgsError, commands, HelpRequested, helpText, parseArgs, type CommandName } from '../../src/cli/args.js';

/** The message parseArgs throws for `argv`. */
function errorOf(command: CommandName, argv: string[]): string {
  try {
    parseArgs(command, argv);
  } catch (error) {
    expect(error).toBeInstanceOf(ArgsError);
    return (error as Error).message;
  }
  throw new Error(`parseArgs('${command}', ${JSON.stringify(argv)}) did not throw`);
}

describe('parseArgs', () => {
  it('returns the defaults of the table, with camelCase keys', () => {
    const args = parseArgs('train', []);
    expect(args).toMatchObject({
      model: 'resnet20',
      epochs: 200,
      batchSize: 128,
      lr: 0.1,
      momentum: 0.9,
      nesterov: true,
      weightDecay: 5e-4,
      schedule: 'multistep',
      milestones: [60, 120, 160],
      gamma: 0.2,
      sfpRate: 0,
      pruneEvery: 1,
      criterion: 'l2',
      hardPrune: false,
    });
    expect(args.resume).toBeUndefined();
  });

  it('accepts --flag value, --flag=value, --flag and --no-flag', () => {
    const args = parseArgs('train', [
      '--model', 'resnet56',
      '--lr=0.05',
      '--sfp-rate', '0.3',
      '--milestones', '1, 60,120',
      '--hard-prune',
      '--no-nesterov',
      '--resume=runs/a/ckpt.safetensors',
      '--gamma', '1e-1',
    ]);
    expect(args).toMatchObject({
      model: 'resnet56',
      lr: 0.05,
      sfpRate: 0.3,
      milestones: [1, 60, 120],
      hardPrune: true,
      nesterov: false,
      resume: 'runs/a/ckpt.safetensors',
      gamma: 0.1,
    });
    expect(() => parseArgs('train', ['--milestones='])).toThrow('for a rate that never changes, give --gamma 1');
    expect(parseArgs('train', ['--hard-prune=false'])).toMatchObject({ hardPrune: false });
  });

  it('does not share the default list between results', () => {
    parseArgs('train', []).milestones.push(999);
    expect(parseArgs('train', []).milestones).toEqual([60, 120, 160]);
  });

  it('types the result from the table', () => {
    const args = parseArgs('train', []);
    expectTypeOf(args.model).toEqualTypeOf<'resnet20' | 'resnet32' | 'resnet56' | 'resnet110'>();
    expectTypeOf(args.batchSize).toEqualTypeOf<number>();
    expectTypeOf(args.milestones).toEqualTypeOf<number[]>();
    expectTypeOf(args.hardPrune).toEqualTypeOf<boolean>();
    expectTypeOf(args.resume).toEqualTypeOf<string | undefined>();
    expectTypeOf(parseArgs('eval', ['--checkpoint', 'x']).checkpoint).toEqualTypeOf<string>();
  });

  it('rejects an unknown flag, suggesting the closest and listing the valid ones', () => {
    expect(errorOf('train', ['--lrr', '0.1'])).toBe(
      'train: unknown flag --lrr. Did you mean --lr? Valid flags: --model, --epochs, --batch-size, --lr, --momentum, --nesterov, ' +
        '--weight-decay, --schedule, --milestones, --gamma, --warmup-epochs, --warmup-shape, --seed, --data, --out, --resume, --pretrained, --max-steps, --checkpoint-every, ' +
        '--sfp-rate, --prune-every, --prune-every-steps, --criterion, --hard-prune, --stage-rates, --skip-stem, --skip-last, --coupled, --asymptotic, --bn-recalibrate, --help',
    );
    expect(errorOf('train', ['--batch', '64'])).toContain('Did you mean --batch-size?');
    expect(errorOf('train', ['--sfprate=0.3'])).toContain('Did you mean --sfp-rate?');
    expect(errorOf('eval', ['--checkpoint', 'c', '--zzzzzz'])).toBe(
      'eval: unknown flag --zzzzzz. Valid flags: --checkpoint, --data, --batch-size, --unmasked, --help',
    );
  });

  it('says what is valid when a value is not', () => {
    expect(errorOf('train', ['--sfp-rate', 'abc'])).toBe("train: --sfp-rate must be a number in [0, 1), got 'abc'");
    expect(errorOf('train', ['--sfp-rate', '1'])).toBe("train: --sfp-rate must be a number in [0, 1), got '1'");
    // A rate in percent, a switch given a value, a flag of another schedule.
    expect(errorOf('train', ['--sfp-rate', '30'])).toBe("train: --sfp-rate must be a number in [0, 1), got '30' (a fraction: 0.3 for 30 %)");
    expect(errorOf('train', ['--nesterov', 'false'])).toBe(
      "train: unexpected argument 'false' (--nesterov is a switch: write --nesterov or --no-nesterov). Run 'npx tsx src/cli/main.ts train --help' for the flags.",
    );
    expect(errorOf('train', ['--schedule', 'onecycle', '--milestones', '10,20'])).toBe(
      'train: --milestones applies only with --schedule multistep, and --schedule is onecycle; leave it out',
    );
    expect(errorOf('train', ['--schedule', 'onecycle', '--warmup-epochs', '0'])).toBe(
      'train: --warmup-epochs applies only with --schedule multistep or cosine, and --schedule is onecycle; leave it out',
    );
    expect(() => parseArgs('train', ['--schedule', 'cosine', '--warmup-epochs', '0', '--warmup-shape', 'linear'])).not.toThrow();
    expect(() => parseArgs('train', ['--milestones', '10,20', '--gamma', '0.5'])).not.toThrow();
    expect(errorOf('train', ['--lr', '0'])).toBe("train: --lr must be a number in (0, inf), got '0'");
    expect(errorOf('train', ['--epochs', '2.5'])).toBe("train: --epochs must be an integer in [1, inf), got '2.5'");
    expect(errorOf('train', ['--epochs', ''])).toBe("train: --epochs must be an integer in [1, inf), got ''");
    expect(errorOf('train', ['--epochs', '0x10'])).toBe("train: --epochs must be an integer in [1, inf), got '0x10'");
    expect(errorOf('train', ['--model', 'resnet18'])).toBe(
      "train: --model must be one of resnet20, resnet32, resnet56, resnet110, got 'resnet18' (did you mean 'resnet20'?)",
    );
    expect(errorOf('train', ['--milestones', '60,x'])).toBe(
      "train: --milestones must be a comma-separated list of increasing numbers in [0, inf), got '60,x' (item 2: 'x')",
    );
    expect(errorOf('train', ['--milestones', '60,50'])).toContain('(item 2: 50 does not increase on 60)');
    expect(errorOf('train', ['--hard-prune=yes'])).toBe("train: --hard-prune is a switch: use --hard-prune or --no-hard-prune, got 'yes'");
  });

  it('takes a negative number as a value, but not a following flag', () => {
    expect(errorOf('train', ['--momentum', '-0.5'])).toBe("train: --momentum must be a number in [0, 1), got '-0.5'");
    expect(errorOf('train', ['--epochs', '--lr', '0.1'])).toBe('train: --epochs needs a value: an integer in [1, inf)');
    expect(errorOf('train', ['--epochs'])).toBe('train: --epochs needs a value: an integer in [1, inf)');
  });

  it('rejects repeated flags, --no- on a non-boolean, stray arguments and missing required flags', () => {
    expect(errorOf('train', ['--lr', '0.1', '--lr=0.2'])).toBe('train: --lr was given more than once');
    expect(errorOf('train', ['--no-epochs'])).toBe(
      'train: --no-epochs: only boolean flags take a --no- form, and --epochs is an integer in [1, inf)',
    );
    expect(errorOf('train', ['resnet20'])).toBe("train: unexpected argument 'resnet20'. Run 'npx tsx src/cli/main.ts train --help' for the flags.");
    expect(errorOf('train', ['-lr', '1'])).toContain("unexpected argument '-lr' (flags start with two dashes: --lr)");
    expect(errorOf('eval', [])).toBe("eval: missing required --checkpoint (a non-empty string). Run 'npx tsx src/cli/main.ts eval --help' for the flags.");
  });
});

describe('help', () => {
  it('is generated from the table: every flag, its values, range and default', () => {
    const text = helpText('train');
    expect(text.startsWith('Usage: npx tsx src/cli/main.ts train [flags]\n')).toBe(true);
    for (const name of Object.keys(commands.train.flags)) expect(text).toMatch(new RegExp(`  --(\\[no-\\])?${name} `));
    expect(text).toMatch(/--model resnet20\|resnet32\|resnet56\|resnet110 +CIFAR ResNet depth.*\(default: resnet20\)/);
    expect(text).toMatch(/--sfp-rate <number> +fraction of filters .*\(in \[0, 1\); default: 0\)/);
    expect(text).toMatch(/--milestones <n,n,...> +.*default: 60,120,160\)/);
    expect(text).toMatch(/--\[no-\]hard-prune +.*\(default: false\)/);
    expect(helpText('eval')).toMatch(/--checkpoint <file> +checkpoint to read, \.safetensors \(required\)/);
    // demo trains its MLP for --steps and takes nothing else (it once listed training flags it ignored).
    expect(Object.keys(commands.demo.flags)).toEqual(['steps']);
    expect(helpText('demo')).toMatch(/MLP on a synthetic spiral/);
  });

  it('is what --help and -h throw, even after other flags', () => {
    for (const argv of [['--help'], ['--lr', '0.1', '-h'], ['--bogus', '--help']]) {
      let thrown: unknown;
      try {
        parseArgs('train', argv);
      } catch (error) {
        thrown = error;
      }
      if (argv[0] === '--bogus') {
        expect(thrown).toBeInstanceOf(ArgsError);
      } else {
        expect(thrown).toBeInstanceOf(HelpRequested);
        expect((thrown as HelpRequested).text).toBe(helpText('train'));
      }
    }
  });

  it('exists for every command, whose defaults all parse', () => {
    for (const command of Object.keys(commands) as CommandName[]) {
      expect(helpText(command)).toContain(`Usage: npx tsx src/cli/main.ts ${command} [flags]`);
      const required = Object.entries(commands[command].flags).filter(([, flag]) => 'required' in flag && flag.required);
      const argv = required.flatMap(([name]) => [`--${name}`, 'x']);
      expect(() => parseArgs(command, argv)).not.toThrow();
    }
  });
});

describe('bench and pipeline repeats', () => {
  it('must be even, since repeats alternate which model goes first; refused before any timing', async () => {
    const { runBench, evenRepeats } = await import('../../src/cli/bench.js');
    expect(evenRepeats('bench', 'repeats', 4)).toBe(4);
    await expect(runBench(['--repeats', '3', '--out', '/tmp/sfp-bench-never-written'])).rejects.toThrow(
      'bench: --repeats must be even (each model goes first in half the repeats), got 3',
    );
    await expect(runBench(['--imagenet', '--imagenet-repeats', '1', '--out', '/tmp/sfp-bench-never-written'])).rejects.toThrow('bench: --imagenet-repeats must be even');
    // A rate the run would not use, even the default value written out.
    for (const rate of ['0.5', '0.3']) {
      await expect(runBench(['--checkpoint', 'c.safetensors', '--sfp-rate', rate, '--out', '/tmp/sfp-bench-never-written'])).rejects.toThrow(
        `bench: --sfp-rate ${rate} has no effect here: a --checkpoint brings its own masks`,
      );
    }
    // A model the run would not time.
    await expect(runBench(['--checkpoint', 'c.safetensors', '--model', 'resnet56', '--out', '/tmp/sfp-bench-never-written'])).rejects.toThrow(
      'bench: --model has no effect with --checkpoint',
    );
  });

  it('ImageNet flags without --imagenet, and batch sizes that are not whole numbers, are refused by the parser', () => {
    expect(() => parseArgs('bench', ['--imagenet-batch-sizes', '1,2'])).toThrow('bench: --imagenet-batch-sizes applies only with --imagenet; give --imagenet or leave --imagenet-batch-sizes out');
    expect(() => parseArgs('bench', ['--imagenet-repeats', '2'])).toThrow('applies only with --imagenet');
    expect(parseArgs('bench', ['--imagenet', '--imagenet-batch-sizes', '2,4']).imagenetBatchSizes).toEqual([2, 4]);
    expect(() => parseArgs('bench', ['--batch-sizes', '1,1.5'])).toThrow("bench: --batch-sizes must be a comma-separated list of increasing integers in [1, inf), got '1,1.5' (item 2: '1.5')");
    expect(() => parseArgs('pipeline', ['--batch-sizes', ''])).toThrow('an empty list means nothing here');
    // An empty shell variable would otherwise keep the rate constant for all 200 epochs.
    expect(() => parseArgs('train', ['--milestones', ''])).toThrow("train: --milestones must be a comma-separated list of increasing numbers in [0, inf), got '' (for a rate that never changes, give --gamma 1)");
  });
});
