// The speedup benchmark: its ratios and statistics on fixed timings, the JSON/Markdown/SVG writers, FLOP counts
// per layer that add up to prune/flops.ts's totals, layer lists that reproduce the models' forward passes, and a
// tiny real run (narrow ResNet-8, batch 1) that fills every field. Tests never time: they check structure only.
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { describe, expect, it } from 'vitest';
import { cpuContention } from '../../src/cli/bench.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { gpu } from '../../src/gpu/encoder.js';
import { Rng } from '../../src/tensor/random.js';
import { noGrad } from '../../src/autograd/mode.js';
import { CifarResNet } from '../../src/models/resnet.js';
import { compactFlops } from '../../src/prune/flops.js';
import { quantile } from '../../src/stats.js';
import { captureOutputs, rowResult, timeStats, type BatchResult, type ModelResult, type SpeedupReport } from '../../src/bench/speedup.js';
import { reportJson, reportMarkdown, reportSvg } from '../../src/bench/report.js';
import { benchPair, compactPair, imageNetPair, randomCifarPair } from '../../src/bench/models.js';
import { cifarNetwork, randomFilterMasks, randomizeBatchNorms, type BenchNetwork } from '../../src/bench/networks.js';

const perImage = { dense: { flops: 1000, macs: 800 }, compact: { flops: 500, macs: 400 } };

function batchResult(batch: number, layers: string[]): BatchResult {
  const rows = layers.map((name, i) =>
    rowResult(name, 'conv', batch, perImage, { dense: [2 + i, 3 + i, 4 + i], compact: [1 + i, 1 + i, 2 + i] }, 4),
  );
  return {
    batch,
    repeats: 3,
    endToEnd: rowResult('end to end', 'network', batch, perImage, { dense: [10, 12, 11], compact: [5, 6, 8] }),
    layers: rows,
    sumOfLayersMs: { dense: rows.reduce((s, r) => s + r.dense.ms.median, 0), compact: rows.reduce((s, r) => s + r.compact.ms.median, 0) },
  };
}

function fixedReport(): SpeedupReport {
  const model = (name: string, timingOnly: boolean, layers: string[]): ModelResult => ({
    name,
    source: 'fixed timings',
    timingOnly,
    notes: timingOnly ? ['timing only'] : [],
    inputShape: [3, 32, 32],
    parameters: { dense: 100, compact: 60 },
    batches: [batchResult(1, layers), batchResult(32, layers)],
  });
  return {
    format: 'sfp-gpu speedup',
    version: 1,
    date: '2025-01-01T00:00:00.000Z',
    machine: { adapter: 'test adapter <lavapipe> & co', loadAverage: { start: [1, 2, 3], end: [1, 1, 1] } },
    method: 'fixed',
    models: [model('resnet20', false, ['conv1', 'layer1.0.conv1', 'layer1.0.join', 'head']), model('imagenet-resnet18', true, ['conv1', 'maxpool', 'head'])],
  };
}

/** Checks that every tag opened is closed in order (a well-formedness check without an XML library). */
function expectWellFormed(svg: string): void {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z][\w-]*)([^>]*?)(\/?)>/g)) {
    const [, closing, name, , selfClosing] = m;
    if (selfClosing) continue;
    if (closing) expect(stack.pop(), `</${name}> closes the wrong tag`).toBe(name);
    else stack.push(name);
  }
  expect(stack).toEqual([]);
  expect(svg.replace(/<[^>]*>/g, '')).not.toMatch(/[<>]|&(?!amp;|lt;|gt;|quot;)/);
}

describe('speedup ratios and statistics', () => {
  it('quantiles interpolate linearly between sorted samples', () => {
    expect(quantile([3, 1, 2], 0.5)).toBe(2);
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([10, 20], 0.1)).toBeCloseTo(11, 12);
    expect(timeStats([5, 1, 3, 2, 4])).toMatchObject({ median: 3, p10: 1.4, p90: 4.6 });
  });

  it('theoretical is the FLOP ratio, real the median of the paired per-repeat ratios and the range their p10-p90', () => {
    const r = rowResult('x', 'conv', 4, perImage, { dense: [10, 12, 11], compact: [5, 6, 8] });
    expect(r.dense.flops).toBe(4000);
    expect(r.compact.macs).toBe(1600);
    expect(r.theoreticalSpeedup).toBe(2);
    // Paired ratios 2, 2, 1.375: median 2 (the ratio of the medians, 11 / 6, would be another statistic);
    // p10 = 1.375 + 0.2·(2 − 1.375), p90 = 2.
    expect(r.realSpeedup).toBe(2);
    expect(r.realSpeedupRange[0]).toBeCloseTo(1.5, 12);
    expect(r.realSpeedupRange[1]).toBe(2);
    // GFLOP/s counts a multiply-add twice: (4000 + 3200) FLOPs in 11 ms.
    expect(r.dense.gflops).toBeCloseTo(7200 / 11e6, 15);
  });
});

describe('report writers', () => {
  const report = fixedReport();

  it('the JSON holds the whole report', () => {
    expect(JSON.parse(reportJson(report))).toEqual(report);
  });

  it('the Markdown has a summary row per model and batch, and a row per layer plus end to end', () => {
    const md = reportMarkdown(report);
    const summary = md.split('## Summary')[1].split('\n## ')[0];
    expect(summary.match(/^\| (resnet20|imagenet-resnet18) \|/gm)).toHaveLength(4);
    expect(summary).toContain('timing only');
    // End to end: theoretical 2×, real 2× (1.50–2.00), so real ÷ theoretical 100 %.
    expect(summary).toContain('| resnet20 | 32 | 3 | 11.0 | 6.00 | 2.00× | 2.00× (1.50–2.00) | 100 % | compacted by prune/compact.ts |');
    const table = md.split('### resnet20, batch 32')[1].split('###')[0];
    for (const name of ['**end to end**', 'conv1', 'layer1.0.conv1', 'layer1.0.join', 'head', 'sum of layers']) expect(table).toContain(`| ${name} |`);
    expect(table).toContain('| **end to end** | 0.0320 | 0.0160 | 11.0 (10.2–11.8) | 6.00 (5.20–7.60) |');
    expect(md).toContain('### imagenet-resnet18 (timing only), batch 1');
  });

  it('the SVG is well-formed, with one bar pair per layer and end to end in each panel, heights in proportion', () => {
    const svg = reportSvg(report);
    expectWellFormed(svg);
    const panels = svg.split('<g class="panel"').slice(1);
    expect(panels).toHaveLength(4);
    const expected = [5, 5, 4, 4];
    panels.forEach((p, i) => {
      const heights = (cls: string) => [...p.matchAll(new RegExp(`<rect class="${cls}" [^>]*height="([\\d.]+)"`, 'g'))].map((m) => Number(m[1]));
      const theoretical = heights('theoretical');
      const real = heights('real');
      expect(theoretical).toHaveLength(expected[i]);
      expect(real).toHaveLength(expected[i]);
      // End to end: theoretical 2×, real 2× (the median of the paired ratios 2, 2, 1.375).
      expect(real[0] / theoretical[0]).toBeCloseTo(1, 2);
    });
    expect(svg).toContain('test adapter &lt;lavapipe&gt; &amp; co');
  });
});

/** The sum of a network's per-layer counts. */
const totalFlops = (n: BenchNetwork) => n.layers.reduce((s, l) => s + l.flops.total, 0);

describe('per-layer FLOPs', () => {
  it('the dense and compact layer counts add up to compactFlops (plus the compact bias-map adds, which it leaves out)', async () => {
    const model = new CifarResNet(20, 10, 3);
    randomizeBatchNorms(model, 4);
    expect(totalFlops(cifarNetwork(model))).toBe(compactFlops(model).total);
    const { pair, plan } = await compactPair('resnet20', 'test', model, randomFilterMasks(model, 0.3, 5));
    try {
      const compact = pair.compact;
      expect(compact.layers.map((l) => l.name)).toEqual(pair.dense.layers.map((l) => l.name));
      // A conv layer's adds are its bias map's: exactly the convs with non-zero constant inputs have one.
      const withMap = plan.convs().filter((c) => c.constantIn.some((k) => k.value !== 0)).map((c) => c.conv);
      const convAdds = compact.layers.filter((l) => l.kind === 'conv' && l.flops.add > 0);
      expect(convAdds.map((l) => l.name)).toEqual(withMap);
      expect(withMap.length).toBeGreaterThan(0);
      const biasAdds = convAdds.reduce((s, l) => s + l.flops.add, 0);
      expect(totalFlops(compact) - biasAdds).toBe(compactFlops(model, plan.keptCounts(), plan.streamWidths()).total);
    } finally {
      pair.dispose();
    }
  });
});

/** Runs the layer list once and the model's forward once on the same input; returns both outputs. */
async function chainAndForward(network: BenchNetwork, batch: number): Promise<[Float32Array, Float32Array]> {
  const [c, h, w] = network.inputShape;
  const rng = new Rng(9);
  const x = Tensor.fromArray(Float32Array.from({ length: batch * c * h * w }, () => rng.normal()), [batch, c, h, w]);
  const outs = captureOutputs(network, x);
  const y = noGrad(() => network.forward(x));
  const result = [await outs[outs.length - 1].toArray(), await y.toArray()] as [Float32Array, Float32Array];
  for (const t of [x, y, ...outs]) t.dispose();
  return result;
}

describe('layer lists', () => {
  it("run alone in order, the layers reproduce each model's own forward exactly", async () => {
    const pair = await randomCifarPair(8, 0.3, 11, [4, 8, 8]);
    try {
      for (const network of [pair.dense, pair.compact]) {
        const [chain, forward] = await chainAndForward(network, 2);
        expect(chain).toEqual(forward);
      }
      expect(pair.compact.layers.some((l) => l.flops.add > 0 && l.kind === 'conv')).toBe(true);
    } finally {
      pair.dispose();
    }
  });

  it('the timing-only ImageNet compact model keeps projections at full width and prunes every other conv', async () => {
    const pair = imageNetPair('resnet18', 0.3, 1, 32);
    try {
      const by = (n: BenchNetwork, name: string) => n.layers.find((l) => l.name === name)!.flops;
      // At 32×32 input, stage 2 runs at 4×4; its projection keeps all 128 filters, its conv1 keeps 128 − floor(128·0.3) = 90.
      expect(by(pair.compact, 'layer2.0.downsample').batchNorm).toBe(by(pair.dense, 'layer2.0.downsample').batchNorm);
      expect(by(pair.compact, 'layer2.0.conv1').batchNorm).toBe(2 * 90 * 16);
      expect(totalFlops(pair.compact)).toBeLessThan(totalFlops(pair.dense));
      const [chain] = await chainAndForward(pair.compact, 1);
      expect(chain.length).toBe(1000);
      expect(pair.timingOnly).toBe(true);
      // The dense side's layer list is the ImageNet model's own forward, layer by layer (the compact side's forward is its layer list).
      const [denseChain, denseForward] = await chainAndForward(pair.dense, 1);
      expect(denseChain).toEqual(denseForward);
    } finally {
      pair.dispose();
    }
  });
});

describe('a tiny real run', () => {
  it('fills every field with finite, positive numbers', async () => {
    const pair = await randomCifarPair(8, 0.3, 12, [4, 8, 8]);
    try {
      const result = await benchPair(pair, { batchSizes: [1], repeats: 2, targetMs: 1, maxInner: 2 });
      expect(result.batches).toHaveLength(1);
      const b = result.batches[0];
      expect(b.layers.map((l) => l.name)).toEqual(pair.dense.layers.map((l) => l.name));
      for (const r of [b.endToEnd, ...b.layers]) {
        for (const side of [r.dense, r.compact]) {
          expect(side.ms.samples).toHaveLength(2);
          for (const v of [side.flops, side.ms.median, side.ms.p10, side.ms.p90, side.gflops]) expect(v).toBeGreaterThan(0);
        }
        for (const v of [r.theoreticalSpeedup, r.realSpeedup, ...r.realSpeedupRange]) expect(Number.isFinite(v) && v > 0).toBe(true);
        expect(r.inner).toBeGreaterThanOrEqual(1);
      }
      expect(b.endToEnd.theoreticalSpeedup).toBeGreaterThan(1);
      expect(b.sumOfLayersMs.dense).toBeGreaterThan(0);
      expect(result.parameters.compact).toBeLessThan(result.parameters.dense);
    } finally {
      pair.dispose();
    }
  });

  it('repetitions inside a sample reuse one set of buffers: 8 per sample hold no more GPU memory than 1', async () => {
    const pair = await randomCifarPair(8, 0.3, 13, [4, 8, 8]);
    try {
      const footprint = async (inner: number) => {
        gpu().releasePooledMemory();
        // targetMs far above any sample's time: every row runs exactly `inner` repetitions per sample.
        const result = await benchPair(pair, { batchSizes: [2], repeats: 2, targetMs: 1e9, maxInner: inner });
        expect(result.batches[0].endToEnd.inner).toBe(inner);
        const stats = gpu().stats();
        return stats.liveBytes + stats.pooledBytes;
      };
      await footprint(1); // the first run makes what every later one reuses (pipelines' uniforms, tuning)
      expect(await footprint(8)).toBe(await footprint(1));
    } finally {
      pair.dispose();
    }
  });
});

describe('how busy the machine was', () => {
  it("counts another process's CPU time (the bench reports it beside the load average, which also counts this process's threads)", async () => {
    const contention = cpuContention();
    // One core kept busy by a child for a second: at least a fifth of all cores' time (2 cores: half) on an idle machine, more on a busy one.
    await new Promise<void>((done, fail) => {
      const child = spawn(process.execPath, ['-e', 'const end = Date.now() + 1000; while (Date.now() < end);'], { stdio: 'ignore' });
      child.on('error', fail).on('exit', () => done());
    });
    const shares = contention.stop();
    if (process.platform !== 'linux') return expect(shares).toBeNull();
    expect(shares!.otherProcesses).toBeGreaterThan(0.2 * (2 / cpus().length));
    expect(shares!.otherProcesses + shares!.steal).toBeLessThanOrEqual(1);
  });
});
