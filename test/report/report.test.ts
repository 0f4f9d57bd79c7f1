// `report`: training results into Markdown, SVG and the README's generated blocks. Fixtures are small fake run
// folders; every expected number is computed here from the fixture's records, not copied from the output.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { argvOf, ArgsError, parseArgs } from '../../src/cli/args.js';
import { buildReport } from '../../src/cli/report.js';
import { configOf, recordRun } from '../../src/cli/train.js';
import { encodeCheckpoint } from '../../src/io/checkpoint.js';
import { paperConvFlops } from '../../src/prune/flops.js';
import { convRatesOf } from '../../src/prune/criteria.js';
import { markers } from '../../src/report/readme.js';
import { parseMetrics } from '../../src/report/runs.js';
import type { EpochRecord } from '../../src/train/trainer.js';

const epochs = 7;
/** Deterministic, non-monotonic accuracies, so "best" and "final" differ; the resumed epoch 4 has a short time. */
function records(pruned: boolean, offset: number): EpochRecord[] {
  return Array.from({ length: epochs }, (_, i) => ({
    epoch: i + 1,
    lr: 0.1,
    trainLoss: 2 - i * 0.2,
    trainAccuracy: 0.3 + i * 0.08,
    testLoss: 2 - i * 0.1,
    testAccuracy: 0.25 + offset + 0.07 * i - (i === epochs - 1 ? 0.15 : 0),
    seconds: i === 3 ? 120.5 : 900 + 7 * i,
    imagesPerSecond: i === 3 ? 58.1 : 55 - i,
    ...(pruned ? { regrown: 10 - i, testAccuracyMasked: 0.24 + offset + 0.07 * i, flops: 2.5e7, flopsReduction: 0.4 } : {}),
  }));
}

/** A run's config as train keeps it in run.json and the checkpoint. */
const config = (...argv: string[]) => configOf(parseArgs('train', ['--epochs', String(epochs), ...argv]));
const jsonl = (rs: EpochRecord[]) => rs.map((r) => JSON.stringify(r)).join('\n') + '\n';
const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

let root: string;
const dir = (name: string) => join(root, 'results', name);
const fixtures = { base: records(false, 0.05), sfp: records(true, 0.03), hard: records(true, 0) };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sfp-report-'));
  for (const [name, rs] of Object.entries(fixtures)) {
    await mkdir(dir(name), { recursive: true });
    await writeFile(join(dir(name), 'metrics.jsonl'), jsonl(rs));
  }
  const record = (c: object) => JSON.stringify({ command: 'npx tsx src/cli/main.ts train --sfp-rate 0.3', config: c, data: 'synthetic', startedAt: '2024-01-01T00:00:00.000Z' });
  await writeFile(join(dir('base'), 'run.json'), record(config()));
  await writeFile(join(dir('sfp'), 'run.json'), record(config('--sfp-rate', '0.3')));
  // No run.json: the config comes from the checkpoint, as for runs started before run.json existed.
  await writeFile(join(dir('hard'), 'checkpoint.safetensors'), encodeCheckpoint({ model: new Map(), meta: { config: config('--sfp-rate', '0.3', '--hard-prune') } }));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const report = (argv: string[]) => buildReport(parseArgs('report', argv));

/** Tags balance (a tiny XML check); returns each polyline's point count. */
function polylinePoints(svg: string): number[] {
  const stack: string[] = [];
  const points: number[] = [];
  for (const [tag, close, name, attributes, selfClosing] of svg.matchAll(/<(\/?)([a-zA-Z]+)([^>]*?)(\/?)>/g)) {
    if (close) expect(stack.pop(), `${tag} closes nothing open`).toBe(name);
    else if (!selfClosing) stack.push(name);
    if (name === 'polyline' && !close) points.push(/points="([^"]*)"/.exec(attributes)![1].trim().split(/\s+/).length);
  }
  expect(stack).toEqual([]);
  expect(svg.replace(/<[^>]*>/g, '')).not.toMatch(/[<>]/);
  return points;
}

describe('report of one run', () => {
  it("the Markdown's accuracies, median throughput and total time are those of metrics.jsonl", async () => {
    const { files } = await report(['--run', dir('sfp')]);
    const md = files.get(join(dir('sfp'), 'report.md'))!;
    const rs = fixtures.sfp;
    const last = rs[rs.length - 1];
    const best = rs.reduce((a, b) => (b.testAccuracy > a.testAccuracy ? b : a));
    const pct = (v: number) => `${(100 * v).toFixed(2)} %`;
    expect(best.epoch).not.toBe(last.epoch);
    // A pruned run leads with the accuracy of the model it leaves (after masking), then the unmasked one, labelled as such.
    const rows = md.split('\n').filter((l) => l.startsWith('| final test accuracy') || l.startsWith('| best test accuracy'));
    expect(rows[0]).toBe(`| final test accuracy after masking (epoch ${last.epoch}) | ${pct(last.testAccuracyMasked as number)} |`);
    expect(rows).toContain(`| final test accuracy before masking (epoch ${last.epoch}) | ${pct(last.testAccuracy)} |`);
    expect(rows).toContain(`| best test accuracy before masking (epoch ${best.epoch}) | ${pct(best.testAccuracy)} |`);
    expect(rows).toHaveLength(4);
    expect(md).toContain(`| images/s (median over epochs) | ${median(rs.map((r) => r.imagesPerSecond)).toFixed(1)} |`);
    expect(md).toContain(`| time per epoch (median) | ${(median(rs.map((r) => r.seconds)) / 60).toFixed(1)} min |`);
    expect(md).toContain(`| total time (sum over epochs) | ${(rs.reduce((s, r) => s + r.seconds, 0) / 3600).toFixed(2)} h |`);
    expect(md).toContain('npx tsx src/cli/main.ts train --sfp-rate 0.3');
    expect(md).toContain('![train and test accuracy per epoch](accuracy.svg)');
    // One row per epoch with its test accuracy, accuracy after masking and throughput.
    for (const r of rs) {
      expect(md).toContain(`| ${pct(r.testAccuracy)} | ${pct(r.testAccuracyMasked as number)} | ${r.imagesPerSecond.toFixed(1)} | ${(r.seconds / 60).toFixed(1)} |`);
    }
  });

  it('an unpruned run has no masking, so its accuracies carry no before/after label', async () => {
    const md = (await report(['--run', dir('base')])).files.get(join(dir('base'), 'report.md'))!;
    const last = fixtures.base[fixtures.base.length - 1];
    expect(md).toContain(`| final test accuracy (epoch ${last.epoch}) | ${(100 * last.testAccuracy).toFixed(2)} % |`);
    expect(md).not.toContain('masking');
  });

  it('a run with --bn-recalibrate shows the masked accuracy with the old and the recalibrated BN statistics', async () => {
    const rs: EpochRecord[] = fixtures.sfp.map((r, i) => ({ ...r, testAccuracyMaskedStaleBN: 0.11 + 0.01 * i }));
    await mkdir(dir('recal'), { recursive: true });
    await writeFile(join(dir('recal'), 'metrics.jsonl'), jsonl(rs));
    const c = config('--sfp-rate', '0.3', '--bn-recalibrate', '50');
    await writeFile(join(dir('recal'), 'run.json'), JSON.stringify({ command: 'train', config: c, data: 'synthetic', startedAt: '2024-01-01T00:00:00.000Z' }));
    const { files } = await report(['--run', dir('recal')]);
    const md = files.get(join(dir('recal'), 'report.md'))!;
    const pct = (v: number) => `${(100 * v).toFixed(2)} %`;
    expect(md).toContain('| after masking, old BN statistics | after masking, BN recalibrated |');
    expect(md).toContain('pruning: soft (SFP) 30 % (l2, BN recalibrated on 50 batches);');
    for (const r of rs) expect(md).toContain(`| ${pct(r.testAccuracy)} | ${pct(r.testAccuracyMaskedStaleBN as number)} | ${pct(r.testAccuracyMasked as number)} |`);
  });

  it('the pruning description names the options that change what is pruned and when', async () => {
    const c = config('--sfp-rate', '0.3', '--criterion', 'fpgm', '--asymptotic', '--coupled', '--prune-every-steps', '20', '--bn-recalibrate', '50', '--pretrained', 'base.safetensors');
    await mkdir(dir('options'), { recursive: true });
    await writeFile(join(dir('options'), 'metrics.jsonl'), jsonl(fixtures.sfp));
    await writeFile(join(dir('options'), 'run.json'), JSON.stringify({ command: 'train', config: c, data: 'synthetic', startedAt: '2024-01-01T00:00:00.000Z' }));
    const { files } = await report(['--run', dir('options')]);
    expect(files.get(join(dir('options'), 'report.md'))).toContain(
      'pruning: soft (SFP) 30 % (fpgm, ASFP, coupled, masks also every 20 steps, BN recalibrated on 50 batches, from pretrained);',
    );
  });

  it('a run made by another framework (run.json names its engine) says so', async () => {
    const c = { ...config('--sfp-rate', '0.3', '--hard-prune'), engine: 'PyTorch 1.13 on the CPU' };
    await mkdir(dir('engine'), { recursive: true });
    await writeFile(join(dir('engine'), 'metrics.jsonl'), jsonl(fixtures.hard));
    await writeFile(join(dir('engine'), 'run.json'), JSON.stringify({ command: 'python3 x.py', config: c, data: 'synthetic', startedAt: null }));
    const { compare } = await report(['--compare', `baseline=${dir('base')},torch=${dir('engine')}`]);
    const row = compare!.split('\n').find((r) => r.startsWith('| torch |'))!;
    expect(row.split(' | ')[1]).toBe('hard 30 % (l2, run in PyTorch 1.13 on the CPU)');
  });

  it('without run.json the command is rebuilt from the checkpoint config, and parses back to that config', async () => {
    const { files } = await report(['--run', dir('hard')]);
    const md = files.get(join(dir('hard'), 'report.md'))!;
    const command = /```sh\n(.*)\n```/.exec(md)![1];
    expect(command.startsWith('npx tsx src/cli/main.ts train ')).toBe(true);
    const argv = command.split(' ').slice(4);
    expect(parseArgs('train', argv)).toMatchObject({ ...config('--sfp-rate', '0.3', '--hard-prune'), out: dir('hard') });
    expect(argvOf('train', parseArgs('train', argv))).toEqual(argv);
    // A setting without effect in its run (warm-up epochs of a one-cycle run, recorded before such flags were
    // refused) is left out of the rebuilt command, which parseArgs would otherwise refuse.
    const oneCycle = { ...parseArgs('train', ['--schedule', 'onecycle']), warmupEpochs: 0, milestones: [5] };
    const rebuilt = argvOf('train', oneCycle);
    expect(rebuilt).toEqual(['--schedule', 'onecycle']);
    expect(() => parseArgs('train', rebuilt)).not.toThrow();
  });

  it('the chart is well-formed SVG with one polyline per series and one point per epoch, the same bytes every time', async () => {
    const first = await report(['--run', dir('base'), '--run', dir('sfp')]);
    const again = await report(['--run', dir('base'), '--run', dir('sfp')]);
    const base = first.files.get(join(dir('base'), 'accuracy.svg'))!;
    const sfp = first.files.get(join(dir('sfp'), 'accuracy.svg'))!;
    expect(polylinePoints(base)).toEqual([epochs, epochs]); // train, test
    expect(polylinePoints(sfp)).toEqual([epochs, epochs, epochs]); // and test after masking
    expect(base).toContain('>epoch</text>');
    expect(base).toContain('>accuracy (%)</text>');
    expect(again.files).toEqual(first.files);
  });

  it('a repeated epoch keeps its later record, and a bad line is named by file and line', () => {
    const rs = fixtures.base;
    const redo = { ...rs[2], testAccuracy: 0.99 };
    const parsed = parseMetrics(jsonl([...rs.slice(0, 3), redo, ...rs.slice(3)]));
    expect(parsed.map((r) => r.testAccuracy)).toEqual(rs.map((r) => (r.epoch === 3 ? 0.99 : r.testAccuracy)));
    expect(() => parseMetrics('{"epoch":1}\n', 'm.jsonl')).toThrow('m.jsonl:1: "trainAccuracy" is missing');
  });
});

const readme = () => join(root, 'README.md');

describe('README blocks', () => {
  const text = (names: string[]) =>
    ['# title', '', 'typed by hand', ...names.flatMap((n) => [markers(n).start, 'stale', markers(n).end, `after ${n}`]), ''].join('\n');

  it('replaces only the text between the markers, with image links relative to the README, and is idempotent', async () => {
    const original = text(['sfp', 'compare-base']);
    await writeFile(readme(), original);
    const argv = ['--run', dir('sfp'), '--compare', `baseline=${dir('base')},sfp=${dir('sfp')}`, '--readme', readme()];
    const { files, compare } = await report(argv);
    const out = files.get(readme())!;
    const outside = (t: string) => t.replace(/(<!-- report:([\w-]+) -->)[\s\S]*?(<!-- \/report:\2 -->)/g, '$1$3');
    expect(outside(out)).toBe(outside(original));
    expect(out).not.toContain('stale');
    expect(out).toContain('![train and test accuracy per epoch](results/sfp/accuracy.svg)');
    expect(out).toContain(`${markers('compare-base').start}\n${compare!.trimEnd()}\n${markers('compare-base').end}`);
    await writeFile(readme(), out);
    expect((await report(argv)).files.get(readme())).toBe(out);
  });

  it('a missing marker fails with a message naming it, before any file is written', async () => {
    await writeFile(readme(), text(['sfp']));
    await expect(report(['--run', dir('sfp'), '--run', dir('base'), '--readme', readme()])).rejects.toThrow('<!-- report:base -->');
    await writeFile(readme(), text(['sfp']).replace(markers('sfp').end, ''));
    await expect(report(['--run', dir('sfp'), '--readme', readme()])).rejects.toThrow('<!-- /report:sfp -->');
  });
});

describe('report --bench', () => {
  it("puts a bench folder's conditions, end-to-end summary and chart into its block, not the per-layer tables", async () => {
    const bench = join(root, 'results', 'bench-r20');
    await mkdir(bench, { recursive: true });
    const summaryRow = '| resnet20 | 128 | 436 | 313 | 1.67× | 1.40× (1.40–1.42) | compacted by prune/compact.ts |';
    await writeFile(join(bench, 'speedup.md'), [
      '# Real vs theoretical speedup of the compact models', '', 'measured on the test machine', '', 'Method: ...', '',
      '## Summary (end to end)', '', '| model | batch |', '|---|--:|', summaryRow, '', '## resnet20', '', '| layer 1 row |', '',
    ].join('\n'));
    await writeFile(readme(), `intro\n${markers('bench-bench-r20').start}\nold\n${markers('bench-bench-r20').end}\n`);
    const out = (await report(['--bench', bench, '--readme', readme()])).files.get(readme())!;
    expect(out).toContain(summaryRow);
    expect(out).toContain('measured on the test machine');
    expect(out).toContain('](results/bench-r20/speedup.svg)');
    expect(out).not.toContain('layer 1 row');
    expect(out).not.toContain('old');
    await expect(report(['--bench', bench])).rejects.toThrow(/needs --readme/);
  });
});

describe('comparison with the paper', () => {
  it("ResNet-20 at rate 0.3 cuts the paper's conv FLOPs by 42.2 %, and drops are measured from the baseline", async () => {
    const { compare } = await report(['--compare', `baseline=${dir('base')},sfp=${dir('sfp')},hard=${dir('hard')}`, '--paper', 'resnet20-30']);
    const rows = compare!.split('\n').filter((l) => l.startsWith('| '));
    const cells = (name: string) => rows.find((r) => r.startsWith(`| ${name} |`))!.split(' | ');
    const last = (name: keyof typeof fixtures) => fixtures[name][epochs - 1];
    const baseAccuracy = last('base').testAccuracy;
    for (const name of ['sfp', 'hard'] as const) {
      const [, , , accuracy, drop, flops, reduction] = cells(name);
      const masked = last(name).testAccuracyMasked as number;
      expect(accuracy).toBe(`${(100 * masked).toFixed(2)} %`);
      expect(drop).toBe((100 * (baseAccuracy - masked)).toFixed(2));
      expect(Number(flops.replace('E', 'e'))).toBeCloseTo(paperConvFlops(20, 0.3), -4);
      expect(reduction).toBe('42.2 %');
    }
    expect(cells('baseline')[6]).toBe('0.0 %');
    // The paper's columns: its baseline and SFP rows; it has no hard-pruning row.
    expect(cells('baseline').slice(8)).toEqual(['92.20 %', '–', '4.055E7', '0.0 % |']);
    expect(cells('sfp').slice(8)).toEqual(['90.83 %', '1.37', '2.43E7', '42.2 % |']);
    expect(cells('hard').slice(8)).toEqual(['n/r', 'n/r', 'n/r', 'n/r |']);
  });

  it("names the fine-tuned runs that did not start from the baseline's checkpoint, and only those", async () => {
    const write = async (name: string, pretrained: string, pretrainedSha256?: string) => {
      await mkdir(dir(name), { recursive: true });
      await writeFile(join(dir(name), 'metrics.jsonl'), jsonl(fixtures.sfp));
      const c = config('--sfp-rate', '0.3', '--pretrained', pretrained);
      const record = { command: 'train', config: c, data: 'synthetic', startedAt: '2024-01-01T00:00:00.000Z', pretrainedSha256 };
      await writeFile(join(dir(name), 'run.json'), JSON.stringify(record));
    };
    // Without hashes (runs recorded before them): one by a path relative to the working folder (as train records it), one absolute, one from elsewhere.
    await write('ft-relative', relative(process.cwd(), join(dir('base'), 'checkpoint.safetensors')));
    await write('ft-absolute', join(dir('base'), 'checkpoint.safetensors'));
    await write('ft-other', join(dir('sfp'), 'checkpoint.safetensors'));
    const from = (names: string[], baseline = dir('base')) => report(['--compare', [`baseline=${baseline}`, ...names.map((n) => `${n}=${dir(n)}`)].join(',')]);
    const noteOf = (compare: string) => compare.split('\n').find((l) => l.startsWith("Not fine-tuned from the baseline's checkpoint"));
    const clean = (await from(['ft-relative', 'ft-absolute', 'sfp'])).compare!;
    expect(noteOf(clean)).toBeUndefined();
    expect(noteOf((await from(['ft-relative', 'ft-other'])).compare!)).toBe(
      `Not fine-tuned from the baseline's checkpoint, so their drops are measured from a model they did not start from: ft-other (from ${join(dir('sfp'), 'checkpoint.safetensors')}).`,
    );

    // With a hash and the baseline's checkpoint at hand, the bytes decide, not the path: a path relative to another
    // working folder is the baseline's if the hash matches, and the baseline's own path is not if the file changed since.
    const baseline = join(root, 'hashed-base');
    await mkdir(baseline, { recursive: true });
    await writeFile(join(baseline, 'metrics.jsonl'), jsonl(fixtures.base));
    await writeFile(join(baseline, 'run.json'), JSON.stringify({ command: 'train', config: config(), data: 'synthetic', startedAt: '2024-01-01T00:00:00.000Z' }));
    const bytes = encodeCheckpoint({ model: new Map(), meta: { epoch: 3 } });
    await writeFile(join(baseline, 'checkpoint.safetensors'), bytes);
    const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
    await write('ft-moved', 'elsewhere/checkpoint.safetensors', sha256(bytes));
    await write('ft-changed', join(baseline, 'checkpoint.safetensors'), sha256(encodeCheckpoint({ model: new Map(), meta: { epoch: 2 } })));
    expect(noteOf((await from(['ft-moved', 'ft-changed'], baseline)).compare!)).toBe(
      `Not fine-tuned from the baseline's checkpoint, so their drops are measured from a model they did not start from: ft-changed (from ${join(baseline, 'checkpoint.safetensors')}).`,
    );
  });

  it('a run with unpruned convs or a rate per stage gets the FLOPs of the convs it pruned, and says which', async () => {
    const write = async (name: string, c: object) => {
      await mkdir(dir(name), { recursive: true });
      await writeFile(join(dir(name), 'metrics.jsonl'), jsonl(fixtures.sfp));
      await writeFile(join(dir(name), 'run.json'), JSON.stringify({ command: 'train', config: c, data: 'synthetic', startedAt: '2024-01-01T00:00:00.000Z' }));
    };
    await write('skiplast', config('--sfp-rate', '0.3', '--skip-last'));
    await write('stages', config('--stage-rates', '0.1,0.2,0.4', '--skip-stem'));
    const { compare } = await report(['--compare', `baseline=${dir('base')},skiplast=${dir('skiplast')},stages=${dir('stages')}`]);
    // The paper has no row that leaves convs unpruned (a rate per stage is refused by --paper, which checks the rate).
    const withPaper = await report(['--compare', `baseline=${dir('base')},skiplast=${dir('skiplast')}`, '--paper', 'resnet20-30']);
    expect(withPaper.compare!.split('\n').find((r) => r.startsWith('| skiplast |'))!.split(' | ').slice(8)).toEqual(['n/r', 'n/r', 'n/r', 'n/r |']);
    const cells = (name: string) => compare!.split('\n').find((r) => r.startsWith(`| ${name} |`))!.split(' | ');
    const base = paperConvFlops(20, 0);
    for (const [name, options] of [
      ['skiplast', { rate: 0.3, skipLast: true }],
      ['stages', { rate: [0.1, 0.2, 0.4], skipStem: true }],
    ] as const) {
      const flops = paperConvFlops(20, convRatesOf(options, 3));
      const [, , , , , shown, reduction] = cells(name);
      expect(Number(shown.replace('E', 'e'))).toBeCloseTo(flops, -4);
      expect(reduction).toBe(`${(100 * (1 - flops / base)).toFixed(1)} %`);
    }
    expect(cells('skiplast')[1]).toBe("soft (SFP) 30 % (l2, blocks' last convs unpruned)");
    expect(cells('stages')[1]).toBe('soft (SFP) 10 / 20 / 40 % by stage (l2, stem unpruned)');
  });

  it("--paper auto finds the paper's row from the runs' model and rate, and says when the paper has none", async () => {
    const named = await report(['--compare', `baseline=${dir('base')},sfp=${dir('sfp')},hard=${dir('hard')}`, '--paper', 'resnet20-30']);
    const auto = await report(['--compare', `baseline=${dir('base')},sfp=${dir('sfp')},hard=${dir('hard')}`, '--paper', 'auto']);
    expect(auto.compare).toBe(named.compare);
    await mkdir(dir('sfp20'), { recursive: true });
    await writeFile(join(dir('sfp20'), 'metrics.jsonl'), jsonl(fixtures.sfp));
    await writeFile(join(dir('sfp20'), 'run.json'), JSON.stringify({ command: 'train', config: config('--sfp-rate', '0.2'), data: 'synthetic', startedAt: '2024-01-01T00:00:00.000Z' }));
    const none = (await report(['--compare', `baseline=${dir('base')},sfp20=${dir('sfp20')}`, '--paper', 'auto'])).compare!;
    expect(none).not.toContain('paper: test accuracy');
    expect(none).toContain("the paper's Table 1 has none for ResNet-20 at 20 %");
    // Two rates in one table: no single paper row fits.
    const mixed = (await report(['--compare', `baseline=${dir('base')},sfp=${dir('sfp')},sfp20=${dir('sfp20')}`, '--paper', 'auto'])).compare!;
    expect(mixed).not.toContain('paper: test accuracy');
    expect(mixed).toContain('ResNet-20 at 30 % and 20 %');
  });

  it('shows no paper numbers beside runs the paper has no row for: ASFP, coupled masks, masks inside epochs, FPGM, L1', async () => {
    const variants = [['asfp', '--asymptotic'], ['coupled', '--coupled'], ['steps', '--prune-every-steps', '20'], ['fpgm', '--criterion', 'fpgm'], ['l1', '--criterion', 'l1'], ['l2', '--criterion', 'l2']];
    for (const [name, ...flags] of variants) {
      await mkdir(dir(name), { recursive: true });
      await writeFile(join(dir(name), 'metrics.jsonl'), jsonl(fixtures.sfp));
      await writeFile(join(dir(name), 'run.json'), JSON.stringify({ command: 'train', config: config('--sfp-rate', '0.3', ...flags), data: 'synthetic', startedAt: '2024-01-01T00:00:00.000Z' }));
    }
    const { compare } = await report(['--compare', [`baseline=${dir('base')}`, ...variants.map(([n]) => `${n}=${dir(n)}`)].join(','), '--paper', 'resnet20-30']);
    const paperCells = (name: string) => compare!.split('\n').find((r) => r.startsWith(`| ${name} |`))!.split(' | ').slice(8);
    for (const [name] of variants.slice(0, 5)) expect(paperCells(name), name).toEqual(['n/r', 'n/r', 'n/r', 'n/r |']);
    expect(paperCells('l2')).toEqual(['90.83 %', '1.37', '2.43E7', '42.2 % |']);
  });

  it('an unfinished run is marked as such in the table and in its own report, never passed off as final', async () => {
    await mkdir(dir('partial'), { recursive: true });
    await writeFile(join(dir('partial'), 'metrics.jsonl'), jsonl(fixtures.hard.slice(0, 3)));
    await writeFile(join(dir('partial'), 'run.json'), JSON.stringify({ command: 'train', config: config('--sfp-rate', '0.3', '--hard-prune'), data: 'synthetic', startedAt: '2024-01-01T00:00:00.000Z' }));
    const { compare, files } = await report(['--compare', `baseline=${dir('base')},sfp=${dir('sfp')},partial=${dir('partial')}`, '--run', dir('partial')]);
    const epochsCell = (name: string) => compare!.split('\n').find((r) => r.startsWith(`| ${name} |`))!.split(' | ')[2];
    expect(epochsCell('sfp')).toBe(`${epochs} of ${epochs}`);
    expect(epochsCell('partial')).toBe(`3 of ${epochs} (unfinished)`);
    expect(compare).toContain(`not comparable with a finished run's: partial (epoch 3 of ${epochs}).`);
    expect((await report(['--compare', `baseline=${dir('base')},sfp=${dir('sfp')}`])).compare).not.toContain('nfinished');
    const md = files.get(join(dir('partial'), 'report.md'))!;
    expect(md).toContain(`3 epochs recorded (unfinished: its last record is epoch 3 of ${epochs}).`);
    expect(md).toContain('| last recorded test accuracy after masking (epoch 3) |');
    expect(md).not.toContain('| final ');
  });

  it("a ResNet-56 table at 40 % beside the paper also cites the fine-tuned row, the protocol of runs from a pretrained model", async () => {
    const write = async (name: string, c: object) => {
      await mkdir(dir(name), { recursive: true });
      await writeFile(join(dir(name), 'metrics.jsonl'), jsonl(fixtures.sfp));
      await writeFile(join(dir(name), 'run.json'), JSON.stringify({ command: 'train', config: c, data: 'synthetic', startedAt: '2024-01-01T00:00:00.000Z' }));
    };
    await write('r56-base', config('--model', 'resnet56'));
    await write('r56-sfp', config('--model', 'resnet56', '--sfp-rate', '0.4'));
    const { compare } = await report(['--compare', `baseline=${dir('r56-base')},sfp=${dir('r56-sfp')}`, '--paper', 'auto']);
    expect(compare!.split('\n').find((r) => r.startsWith('| sfp |'))!.split(' | ').slice(8)).toEqual(['92.26 %', '1.33', '5.94E7', '52.6 % |']);
    expect(compare).toContain('93.59 % → 93.36 %, a drop of 0.23');
  });

  it('refuses a pruned first run, a paper row of another model, and a malformed --compare', async () => {
    await expect(report(['--compare', `sfp=${dir('sfp')},baseline=${dir('base')}`])).rejects.toThrow("the first run is the baseline, but 'sfp'");
    await expect(report(['--compare', `baseline=${dir('base')}`, '--paper', 'resnet56-40'])).rejects.toThrow('--paper resnet56-40 is resnet56');
    await expect(report(['--compare', dir('base')])).rejects.toThrow(ArgsError);
    // A mistyped folder is named as missing, not as a folder without metrics.
    await expect(report(['--run', `${dir('base')}-typo`])).rejects.toThrow(`run folder ${dir('base')}-typo does not exist`);
  });
});

describe('report --masks', () => {
  it("counts each conv's pruned filters and those that differ from the first run's, in model order", async () => {
    const rng = (seed: number) => () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    // layer1.10 after layer1.2, whatever order the checkpoint holds them in.
    const names = ['layer1.10.conv1', 'conv1', 'layer1.2.conv1'];
    const maskSet = (seed: number) => {
      const next = rng(seed);
      return new Map(names.map((n, i) => [n, Uint32Array.from({ length: 8 + 8 * i }, () => (next() < 0.7 ? 1 : 0))]));
    };
    const runs = { a: maskSet(1), b: maskSet(2) };
    const save = async (name: string, masks: Map<string, Uint32Array>) => {
      const model = new Map([...masks].map(([n, m]) => [`${n}.weight`, { dtype: 'f32' as const, shape: [m.length, 1, 1, 1], data: new Float32Array(m.length) }]));
      await mkdir(dir(`masks-${name}`), { recursive: true });
      await writeFile(join(dir(`masks-${name}`), 'checkpoint.safetensors'), encodeCheckpoint({ model, masks, meta: {} }));
    };
    for (const [name, masks] of Object.entries(runs)) await save(name, masks);
    const { masks } = await report(['--masks', `a=${dir('masks-a')},b=${dir('masks-b')}`]);
    const rows = masks!.split('\n').filter((l) => l.startsWith('| ') && !/^\| (conv|---) /.test(l));
    expect(rows.map((r) => r.split(' | ')[0].slice(2))).toEqual(['conv1', 'layer1.2.conv1', 'layer1.10.conv1', 'all']);
    const zeros = (m: Uint32Array) => m.filter((v) => v === 0).length;
    let differ = 0;
    for (const row of rows.slice(0, 3)) {
      const name = row.split(' | ')[0].slice(2);
      const [a, b] = [runs.a.get(name)!, runs.b.get(name)!];
      const d = a.filter((v, i) => v !== b[i]).length;
      differ += d;
      expect(row).toBe(`| ${name} | ${zeros(a)} of ${a.length} | ${zeros(b)}, ${d} |`);
    }
    expect(differ).toBeGreaterThan(0);
    expect(rows[3]).toContain(`, ${differ} |`);
    // A run pruning other convs is refused, by name.
    await save('c', new Map([['conv1', runs.a.get('conv1')!]]));
    await expect(report(['--masks', `a=${dir('masks-a')},c=${dir('masks-c')}`])).rejects.toThrow(/c and a prune different convs/);
    await expect(report(['--masks', `a=${dir('masks-a')}`])).rejects.toThrow(/at least two runs/);
  });
});

describe('flags and run.json', () => {
  it('--run is repeatable and kept in order; an unknown flag lists the valid ones', () => {
    expect(parseArgs('report', ['--run', 'a', '--run=b']).run).toEqual(['a', 'b']);
    expect(parseArgs('report', []).run).toEqual([]);
    expect(() => parseArgs('report', ['--runs', 'a'])).toThrow('Valid flags: --run, --compare, --paper, --masks, --bench, --readme, --help');
  });

  it('train writes run.json at the start, and a resume appends to `resumes` instead of replacing it', async () => {
    const out = join(root, 'train');
    await mkdir(out);
    const argv = ['--epochs', '2', '--out', out];
    await recordRun(parseArgs('train', argv), argv, 'synthetic set');
    const started = JSON.parse(await readFile(join(out, 'run.json'), 'utf8'));
    expect(started).toMatchObject({ command: `npx tsx src/cli/main.ts train --epochs 2 --out ${out}`, data: 'synthetic set' });
    expect(started.config).toEqual(configOf(parseArgs('train', argv)));
    expect(new Date(started.startedAt).toISOString()).toBe(started.startedAt);
    const resume = [...argv, '--resume', join(out, 'checkpoint.safetensors')];
    await recordRun(parseArgs('train', resume), resume, 'synthetic set');
    const resumed = JSON.parse(await readFile(join(out, 'run.json'), 'utf8'));
    expect({ ...resumed, resumes: undefined }).toEqual({ ...started, resumes: undefined });
    expect(resumed.resumes).toHaveLength(1);
    expect(resumed.resumes[0].command).toContain('--resume');
  });
});
