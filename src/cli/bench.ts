/**
 * `bench`: how much faster the compact model really is. Times a CIFAR ResNet and its compact version per layer
 * and end to end (src/bench/speedup.ts), optionally the ImageNet ResNets with a timing-only compact model, and
 * writes speedup.json, speedup.md and speedup.svg under --out.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, platform, release } from 'node:os';
import { join } from 'node:path';
import { parseArgs, wasGiven, ArgsError, type Args, type CommandName } from './args.js';
import { terminalSink } from './terminal.js';
import { gpu } from '../gpu/encoder.js';
import { CIFAR_DEPTHS, CifarResNet, type ImageNetResNetName } from '../models/resnet.js';
import { cifarResNetOf, readModelFile, type HostModelFile } from '../io/checkpoint-files.js';
import { outputFolderProblem } from '../io/files.js';
import { benchPair, cifarPair, compactPair, imageNetPair, randomCifarPair, type BenchPair } from '../bench/models.js';
import { METHOD, type MachineInfo, type MeasureOptions, type ModelResult, type SpeedupReport } from '../bench/speedup.js';
import { reportJson, reportMarkdown, reportSvg } from '../bench/report.js';
import type { ProgressSink } from '../train/progress.js';
import { compactModelOf } from '../prune/compact.js';

export interface ReportFiles {
  json: string;
  markdown: string;
  svg: string;
}

/** All cores' busy, stolen and total time so far (/proc/stat's first line, in its ticks), or null off Linux. */
function systemCpuTicks(): { busy: number; steal: number; total: number } | null {
  try {
    const [user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { busy: user + nice + system + irq + softirq, steal, total: user + nice + system + idle + iowait + irq + softirq + steal };
  } catch {
    return null;
  }
}

/** Shares of all cores' time during a run: other processes', and what the hypervisor took (steal). */
export interface CpuContention {
  otherProcesses: number;
  steal: number;
}

/**
 * Measures how busy the machine is apart from this process: the load average counts lavapipe's own threads,
 * this does not. `stop()` gives the shares since the start, or null where /proc/stat is missing.
 */
export function cpuContention(): { stop(): CpuContention | null } {
  const system = systemCpuTicks();
  const own = process.cpuUsage();
  const started = performance.now();
  return {
    stop() {
      const now = systemCpuTicks();
      if (!system || !now || now.total <= system.total) return null;
      const ownUs = process.cpuUsage(own);
      const ownShare = (ownUs.user + ownUs.system) / 1000 / ((performance.now() - started) * cpus().length);
      const total = now.total - system.total;
      return { otherProcesses: Math.max(0, (now.busy - system.busy) / total - ownShare), steal: (now.steal - system.steal) / total };
    },
  };
}

/** The adapter, CPU, OS and the load average now (the end value is added when the run finishes). */
export function machineInfo(): MachineInfo {
  const info = gpu().adapterInfo;
  const cpu = cpus();
  return {
    adapter: [info.vendor, info.architecture, info.description].filter(Boolean).join(' / ') || 'unknown adapter',
    platform: `${platform()} ${release()}`,
    cpus: cpu[0]?.model.trim(),
    cores: cpu.length,
    node: process.version,
    loadAverage: { start: loadavg() },
  };
}

/** Writes the report as JSON, Markdown and SVG into `dir`. */
export async function writeReport(report: SpeedupReport, dir: string): Promise<ReportFiles> {
  await mkdir(dir, { recursive: true });
  const files = { json: join(dir, 'speedup.json'), markdown: join(dir, 'speedup.md'), svg: join(dir, 'speedup.svg') };
  await writeFile(files.json, reportJson(report));
  await writeFile(files.markdown, reportMarkdown(report));
  await writeFile(files.svg, reportSvg(report));
  return files;
}

/** Times each pair in turn (releasing it after) and collects the report. */
export async function benchPairs(pairs: (() => Promise<BenchPair>)[], options: MeasureOptions[], sink: ProgressSink): Promise<SpeedupReport> {
  const machine = machineInfo();
  const contention = cpuContention();
  const started = new Date();
  const models: ModelResult[] = [];
  for (const [i, make] of pairs.entries()) {
    const pair = await make();
    try {
      sink.line(`timing ${pair.name} (${pair.source}) at batch ${options[i].batchSizes.join(', ')}, ${options[i].repeats} repeats`);
      const result = await benchPair(pair, { ...options[i], log: (line) => sink.status(`${pair.name} ${line}`) });
      for (const b of result.batches) {
        const e = b.endToEnd;
        sink.line(
          `  ${pair.name} batch ${b.batch}: dense ${e.dense.ms.median.toFixed(2)} ms, compact ${e.compact.ms.median.toFixed(2)} ms; ` +
            `theoretical ${e.theoreticalSpeedup.toFixed(2)}×, real ${e.realSpeedup.toFixed(2)}× (p10–p90 ${e.realSpeedupRange.map((v) => v.toFixed(2)).join('–')})`,
        );
      }
      models.push(result);
    } finally {
      pair.dispose();
      gpu().releasePooledMemory(); // the next model's shapes would not reuse these buffers
    }
  }
  machine.loadAverage = { start: machine.loadAverage!.start, end: loadavg() };
  const shares = contention.stop();
  if (shares) Object.assign(machine, { otherProcessesCpu: shares.otherProcesses, stolenCpu: shares.steal });
  return { format: 'sfp-gpu speedup', version: 1, date: started.toISOString(), machine, method: METHOD, models };
}

/** The CIFAR pair the flags describe: a checkpoint (training: compacted here; compact model: a dense model of its shape), or a random model and mask. */
async function cifarPairFromArgs(args: Args<'bench'>, file: HostModelFile | null, sink: ProgressSink): Promise<BenchPair> {
  if (!file) return randomCifarPair(CIFAR_DEPTHS[args.model], args.sfpRate, args.seed);
  const { checkpoint } = file;
  if (file.kind === 'compact model') {
    const compact = compactModelOf(checkpoint, file.path);
    const plan = compact.plan;
    const dense = new CifarResNet(plan.depth, plan.head.numClasses, args.seed, plan.widths);
    return cifarPair(`resnet${plan.depth}`, `compact model ${file.path}`, dense, compact, [
      'the file holds only the compact model: the dense model has its shape and random weights (timing does not depend on the values)',
    ]);
  }
  const model = cifarResNetOf(checkpoint, file.path);
  model.loadStateDict(checkpoint.model);
  if (checkpoint.masks.size === 0) sink.line(`${file.path} has no masks: the compact model equals the dense one`);
  const { pair } = await compactPair(`resnet${model.depth}`, `training checkpoint ${file.path} (${checkpoint.masks.size} masks)`, model, checkpoint.masks, [
    'compacted here without the equivalence check (run `compact` for it)',
  ]);
  return pair;
}

/** Repeats alternate which model of a pair goes first, so an odd count would favour one of them. */
export function evenRepeats(command: CommandName, flag: string, repeats: number): number {
  if (repeats % 2 !== 0) throw new ArgsError(`${command}: --${flag} must be even (each model goes first in half the repeats), got ${repeats}`);
  return repeats;
}

/** The checks of bench's flags and --checkpoint that need no GPU (the CLI runs them before starting it); the file is read here, once. */
export async function checkBenchArgs(args: Args<'bench'>): Promise<HostModelFile | null> {
  const outProblem = await outputFolderProblem(args.out);
  if (outProblem) throw new ArgsError(`bench: --out ${outProblem}`);
  evenRepeats('bench', 'repeats', args.repeats);
  evenRepeats('bench', 'imagenet-repeats', args.imagenetRepeats);
  if (args.checkpoint && wasGiven(args, 'model')) {
    throw new ArgsError(`bench: --model has no effect with --checkpoint (the file's model is timed); leave one of them out`);
  }
  if (args.checkpoint && !args.imagenet && wasGiven(args, 'sfpRate')) {
    throw new ArgsError(`bench: --sfp-rate ${args.sfpRate} has no effect here: a --checkpoint brings its own masks (the rate sets the --imagenet models' masks)`);
  }
  return args.checkpoint ? readModelFile(args.checkpoint) : null;
}

export async function runBench(argv: readonly string[], checked?: HostModelFile | null): Promise<ReportFiles> {
  const args = parseArgs('bench', argv);
  const file = checked !== undefined ? checked : await checkBenchArgs(args);
  const sink = terminalSink();
  const cifar: MeasureOptions = { batchSizes: args.batchSizes, repeats: args.repeats, targetMs: args.targetMs, seed: args.seed };
  const pairs: (() => Promise<BenchPair>)[] = [() => cifarPairFromArgs(args, file, sink)];
  const options = [cifar];
  if (args.imagenet) {
    const batchSizes = args.imagenetBatchSizes;
    for (const arch of ['resnet18', 'resnet34', 'resnet50'] as ImageNetResNetName[]) {
      pairs.push(async () => imageNetPair(arch, args.sfpRate, args.seed));
      options.push({ batchSizes, repeats: args.imagenetRepeats, targetMs: args.targetMs, seed: args.seed });
    }
  }
  const report = await benchPairs(pairs, options, sink);
  const files = await writeReport(report, args.out);
  sink.line(`speedup report: ${files.json}, ${files.markdown}, ${files.svg}`);
  return files;
}
