/**
 * `report`: training results into the README's tables and charts. Each --run folder gets report.md and
 * accuracy.svg; --compare prints the baseline / SFP / hard-pruning table (with --paper, the paper's numbers beside
 * it); --masks compares the final masks of pruned runs per conv; --bench folders (written by `bench`) contribute their speedup summary; --readme replaces the generated blocks. Everything is computed before anything is written, so a missing
 * marker leaves every file as it was. No GPU is needed.
 */
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { ArgsError, parseArgs, type Args } from './args.js';
import { CHECKPOINT_FILE, METRICS_FILE, RUN_FILE, exists, trainCommandOf } from './train.js';
import { loadCheckpoint } from '../io/checkpoint-files.js';
import { fileSha256, readFileChecked, writeFileAtomic } from '../io/files.js';
import { accuracyChart } from '../report/chart.js';
import { compareMarkdown, parseMetrics, parseRunRecord, runMarkdown, type RunResults } from '../report/runs.js';
import { spliceBlocks } from '../report/readme.js';
import { maskComparisonMarkdown } from '../report/masks.js';

const REPORT_FILE = 'report.md';
const CHART_FILE = 'accuracy.svg';

const readText = async (path: string, what: string) => new TextDecoder().decode(await readFileChecked(path, what));

/** A run folder's metrics, config and command: run.json if there is one, else the checkpoint's config. */
export async function readRun(dir: string): Promise<RunResults> {
  if (!(await exists(dir))) throw new Error(`run folder ${dir} does not exist`);
  const records = parseMetrics(await readText(join(dir, METRICS_FILE), 'metrics'), join(dir, METRICS_FILE));
  if (await exists(join(dir, RUN_FILE))) {
    const run = parseRunRecord(await readText(join(dir, RUN_FILE), 'run record'), join(dir, RUN_FILE));
    return { records, config: run.config, command: run.command, reconstructed: false, data: run.data, pretrainedSha256: run.pretrainedSha256 };
  }
  if (!(await exists(join(dir, CHECKPOINT_FILE)))) throw new Error(`${dir}: neither ${RUN_FILE} nor ${CHECKPOINT_FILE}, so the run's config is unknown`);
  const config = (await loadCheckpoint(join(dir, CHECKPOINT_FILE))).meta.config as Record<string, unknown>;
  return { records, config, command: trainCommandOf(config, dir), reconstructed: true };
}

const BENCH_TABLE = 'speedup.md';
const BENCH_CHART = 'speedup.svg';

/**
 * A bench folder's README block: the measuring conditions and the end-to-end summary of its speedup.md (the
 * per-layer tables stay in that file, linked), and its chart.
 */
export function benchMarkdown(speedup: string, tableHref: string, chartHref: string, source: string): string {
  const lines = speedup.split('\n');
  const start = lines.findIndex((l) => l.startsWith('## Summary'));
  if (start < 0) throw new Error(`${source}: no '## Summary' section (not written by the bench command?)`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  const conditions = lines.slice(1, start).join('\n').trim();
  const summary = lines.slice(start + 1, end < 0 ? lines.length : end).join('\n').trim();
  return [conditions, '', summary, '', `![real vs theoretical speedup per layer](${chartHref})`, '', `Per layer and batch size: [${tableHref}](${tableHref}).`].join('\n');
}

/** `a=dir1,b=dir2` as pairs, in order. */
function parseNamedDirs(text: string, flag: string): { name: string; dir: string }[] {
  return text.split(',').map((item) => {
    const eq = item.indexOf('=');
    if (eq <= 0 || eq === item.length - 1) throw new ArgsError(`report: ${flag} takes name=dir,name=dir,..., got '${item}'`);
    return { name: item.slice(0, eq).trim(), dir: item.slice(eq + 1).trim() };
  });
}

/** A link from the folder of `from` to `to`, with forward slashes as Markdown wants. */
const href = (from: string, to: string) => relative(dirname(resolve(from)), resolve(to)).split(sep).join('/');

/** The files `report` writes (path → text) and the comparison table, computed without writing anything. */
export async function buildReport(args: Args<'report'>): Promise<{ files: Map<string, string>; compare?: string; masks?: string }> {
  if (args.run.length === 0 && args.bench.length === 0 && !args.compare && !args.masks) {
    throw new ArgsError("report: give --run <dir> or --bench <dir> (repeatable), --compare name=dir,... or --masks name=dir,...; run 'npx tsx src/cli/main.ts report --help' for the flags");
  }
  if (args.bench.length && !args.readme) throw new ArgsError('report: --bench fills README blocks, so it needs --readme');
  if (args.paper && !args.compare) throw new ArgsError('report: --paper goes with --compare');
  const files = new Map<string, string>();
  const blocks = new Map<string, string>();
  for (const dir of args.run) {
    const run = await readRun(dir);
    const name = basename(resolve(dir));
    if (blocks.has(name)) throw new ArgsError(`report: two --run folders are named '${name}', and a README block is named after its folder`);
    files.set(join(dir, REPORT_FILE), `# ${name}\n\n${runMarkdown(run, CHART_FILE)}`);
    files.set(join(dir, CHART_FILE), accuracyChart(`${name}: accuracy per epoch`, run.records));
    if (args.readme) blocks.set(name, runMarkdown(run, href(args.readme, join(dir, CHART_FILE))));
  }
  for (const dir of args.bench) {
    const name = `bench-${basename(resolve(dir))}`;
    if (blocks.has(name)) throw new ArgsError(`report: two --bench folders are named '${name.slice(6)}'`);
    const markdown = await readText(join(dir, BENCH_TABLE), 'speedup table');
    blocks.set(name, benchMarkdown(markdown, href(args.readme!, join(dir, BENCH_TABLE)), href(args.readme!, join(dir, BENCH_CHART)), join(dir, BENCH_TABLE)));
  }
  let compare: string | undefined;
  if (args.compare) {
    const named = parseNamedDirs(args.compare, '--compare');
    const baseCheckpoint = resolve(named[0].dir, CHECKPOINT_FILE);
    const baseSha256 = (await exists(baseCheckpoint)) ? await fileSha256(baseCheckpoint, 'checkpoint') : undefined;
    const runs = await Promise.all(
      named.map(async ({ name, dir }) => {
        const run = await readRun(dir);
        const pretrained = run.config.pretrained;
        // The file's hash when both are known; else the path, which run.json keeps relative to where train ran.
        const fromBaseline =
          run.pretrainedSha256 && baseSha256 ? run.pretrainedSha256 === baseSha256 : typeof pretrained === 'string' && resolve(pretrained) === baseCheckpoint;
        const notFromBaseline = typeof pretrained === 'string' && !fromBaseline ? pretrained : undefined;
        return { name, run, notFromBaseline };
      }),
    );
    compare = compareMarkdown(runs, args.paper);
    // Named after the baseline's folder, so a README can hold a table per model.
    if (args.readme) blocks.set(`compare-${basename(resolve(named[0].dir))}`, compare);
  }
  let masks: string | undefined;
  if (args.masks) {
    const runs = await Promise.all(
      parseNamedDirs(args.masks, '--masks').map(async ({ name, dir }) => ({ name, masks: (await loadCheckpoint(join(dir, CHECKPOINT_FILE))).masks })),
    );
    masks = maskComparisonMarkdown(runs);
    // Named after the reference run, so a README can hold several comparisons.
    if (args.readme) blocks.set(`masks-${runs[0].name}`, masks);
  }
  if (args.readme) files.set(args.readme, spliceBlocks(await readText(args.readme, 'README'), blocks, args.readme));
  return { files, compare, masks };
}

export async function runReport(argv: readonly string[]): Promise<void> {
  const { files, compare, masks } = await buildReport(parseArgs('report', argv));
  if (compare) console.log(compare);
  if (masks) console.log(masks);
  for (const [path, text] of files) {
    await writeFileAtomic(path, new TextEncoder().encode(text));
    console.log(`wrote ${path}`);
  }
}
