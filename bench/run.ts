/**
 * Benchmark runner: `npm run bench [-- --json] [-- --filter <name>]`. Discovers bench/*.bench.ts, each
 * of which exports `register(add)` adding entries; times every entry with tinybench, synchronising the
 * GPU around a batch of dispatches, and reports the median time per repetition with its FLOPs and
 * GFLOP/s. Benchmarks never assert.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';
import { gpu, init, scope, shutdown } from '../src/node.js';

export interface BenchEntry {
  /** Kernel or layer, e.g. `matmul.tiled`. */
  name: string;
  /** Human-readable problem size, e.g. `[128×64]·[64×10]`. */
  shape: string;
  /** Where the problem comes from, e.g. `final linear layer`. */
  note?: string;
  /** Floating-point operations of one repetition (a multiply-add counts 2). */
  flops: number;
  /** Items (images) one repetition processes, when a rate in items/s means more than GFLOP/s. */
  items?: number;
  /**
   * At least this many back-to-back repetitions per sample (default 1). Training steps use several: a
   * training loop records the next step while the GPU runs the last, and one step per sync would time
   * the idle gap between them as well.
   */
  minRepeats?: number;
  /** Allocates inputs (kept tensors), before timing. */
  setup(): void | Promise<void>;
  /** Records one repetition's dispatches; the runner synchronises. Tensors it makes are released by the runner. */
  run(): void;
  /** Releases what setup allocated. */
  teardown(): void;
}

export interface BenchOptions {
  /** Fewer and smaller problems (for a quick look). */
  quick: boolean;
}

/** What a bench/<name>.bench.ts file exports. */
export type RegisterBenches = (add: (entry: BenchEntry) => void, options: BenchOptions) => void;

export interface BenchResult {
  name: string;
  shape: string;
  note?: string;
  flops: number;
  medianMs: number;
  gflops: number;
  /** With --peak. */
  fractionOfPeak?: number;
  itemsPerSecond?: number;
}

const FLAGS = {
  '--json': 'one JSON object per line instead of a table',
  '--filter <text>': 'only bench files (or entries) whose name contains <text>',
  '--quick': 'fewer and smaller problems',
  '--peak <GFLOP/s>': "the device's fp32 peak: adds each result's fraction of it",
  '--help': 'this list',
} as const;

interface Args {
  json: boolean;
  filter: string | null;
  quick: boolean;
  peak: number | null;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { json: false, filter: null, quick: false, peak: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--json') args.json = true;
    else if (arg === '--quick') args.quick = true;
    else if (arg === '--filter' || arg.startsWith('--filter=')) {
      const value = arg === '--filter' ? argv[++i] : arg.slice('--filter='.length);
      if (!value) throw new Error('--filter needs a value, e.g. --filter matmul');
      args.filter = value;
    } else if (arg === '--peak' || arg.startsWith('--peak=')) {
      const value = arg === '--peak' ? argv[++i] : arg.slice('--peak='.length);
      const peak = Number(value);
      if (!value || !(peak > 0) || !Number.isFinite(peak)) throw new Error(`--peak needs the device's fp32 peak in GFLOP/s, a positive number, e.g. --peak 230; got '${value ?? ''}'`);
      args.peak = peak;
    } else if (arg === '--help') {
      console.log(usage());
      process.exit(0);
    } else throw new Error(`unknown flag '${arg}'\n${usage()}`);
  }
  return args;
}

function usage(): string {
  return 'usage: npm run bench -- [flags]\n' + Object.entries(FLAGS).map(([flag, what]) => `  ${flag.padEnd(18)} ${what}`).join('\n');
}

/** bench/*.bench.ts files, by stem (`matmul` for matmul.bench.ts). */
function benchFiles(): { stem: string; url: string }[] {
  const dir = fileURLToPath(new URL('.', import.meta.url));
  return readdirSync(dir)
    .filter((f) => f.endsWith('.bench.ts'))
    .sort()
    .map((f) => ({ stem: f.slice(0, -'.bench.ts'.length), url: pathToFileURL(dir + f).href }));
}

async function collect(args: Args): Promise<BenchEntry[]> {
  const entries: BenchEntry[] = [];
  for (const { stem, url } of benchFiles()) {
    const module = (await import(url)) as { register?: RegisterBenches };
    if (typeof module.register !== 'function') throw new Error(`bench/${stem}.bench.ts does not export register(add, options)`);
    const fileMatches = !args.filter || stem.includes(args.filter);
    module.register((entry) => {
      if (fileMatches || entry.name.includes(args.filter!)) entries.push(entry);
    }, { quick: args.quick });
  }
  if (entries.length === 0) throw new Error(`no benchmark matches --filter ${args.filter} (files: ${benchFiles().map((f) => f.stem).join(', ')})`);
  return entries;
}

/** Records `repeats` repetitions and waits for the GPU; each repetition's tensors return to the pool before the next. */
async function repeat(entry: BenchEntry, repeats: number): Promise<void> {
  for (let r = 0; r < repeats; r++) scope(() => void entry.run());
  await gpu().sync();
}

async function measure(entry: BenchEntry, peak: number | null): Promise<BenchResult> {
  await entry.setup();
  try {
    await repeat(entry, 1); // compiles the pipeline, warms the pool
    const start = performance.now();
    await repeat(entry, 1);
    const once = performance.now() - start;
    // Enough repetitions per sample that the sync and submit overhead is small against the work.
    const repeats = Math.min(64, Math.max(entry.minRepeats ?? 1, Math.ceil(50 / Math.max(once, 1e-3))));
    const bench = new Bench({
      // Seconds-long problems (2048³ on a CPU driver, training steps) get five samples; the rest at least 8 or half a second.
      time: once > 1000 ? 0 : 500,
      iterations: once > 1000 ? 5 : 8,
      warmup: false,
      throws: true,
    });
    bench.add(`${entry.name} ${entry.shape}`, () => repeat(entry, repeats));
    await bench.run();
    const result = bench.tasks[0].result;
    if (!('latency' in result)) throw new Error(`${entry.name} ${entry.shape}: no result (${result.state})`);
    const medianMs = result.latency.p50 / repeats;
    const gflops = entry.flops / (medianMs * 1e6);
    return {
      name: entry.name,
      shape: entry.shape,
      ...(entry.note ? { note: entry.note } : {}),
      flops: entry.flops,
      medianMs,
      gflops,
      ...(peak ? { fractionOfPeak: gflops / peak } : {}),
      ...(entry.items ? { itemsPerSecond: (entry.items / medianMs) * 1000 } : {}),
    };
  } finally {
    entry.teardown();
  }
}

function formatRow(cells: string[], widths: number[]): string {
  const left = (i: number) => i < 2 || i === cells.length - 1;
  return cells.map((c, i) => (left(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
}

function printTable(results: BenchResult[], peak: number | null): void {
  const header = ['name', 'shape', 'GFLOP', 'median ms', 'GFLOP/s', ...(peak ? [`% of ${peak}`] : []), 'items/s', 'note'];
  const rows = results.map((r) => [
    r.name,
    r.shape,
    (r.flops / 1e9).toFixed(3),
    r.medianMs.toFixed(3),
    r.gflops.toFixed(2),
    ...(peak ? [(100 * r.fractionOfPeak!).toFixed(1)] : []),
    r.itemsPerSecond ? r.itemsPerSecond.toFixed(1) : '',
    r.note ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  console.log(formatRow(header, widths));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(formatRow(row, widths));
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const runtime = await init();
  try {
    const entries = await collect(args);
    if (!args.json) console.log(`${runtime.adapterInfo.description} — ${entries.length} entries${args.peak ? `; peak ${args.peak} GFLOP/s` : ''}\n`);
    const results: BenchResult[] = [];
    for (const entry of entries) {
      const result = await measure(entry, args.peak);
      results.push(result);
      if (args.json) console.log(JSON.stringify(result));
      else process.stderr.write(`  ${result.name} ${result.shape}: ${result.gflops.toFixed(2)} GFLOP/s\n`);
    }
    if (!args.json) {
      console.log('');
      printTable(results, args.peak);
    }
  } finally {
    shutdown();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
