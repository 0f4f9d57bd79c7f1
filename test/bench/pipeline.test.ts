// `pipeline` end to end with a tiny budget (2 training steps of 16 images, 64 test images for the equivalence
// check, batch 1 timing): every file it announces exists, the compact model's plan is there, its ONNX file gives
// its logits in ONNX Runtime, and the speedup JSON describes the trained model at the requested batch size.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkPipelineArgs, runPipeline } from '../../src/cli/pipeline.js';
import { parseArgs } from '../../src/cli/args.js';
import { loadCompactModel } from '../../src/io/checkpoint-files.js';
import { hostLogits, onnxLogits } from '../support/onnx.js';
import { Rng } from '../../src/tensor/random.js';
import { assertClose } from '../support/allclose.js';
import { assertNoLeak } from '../support/memory.js';
import type { SpeedupReport } from '../../src/bench/speedup.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('pipeline', () => {
  it('trains, compacts with a passing equivalence check and writes the speedup report, all where it says', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-pipeline-'));
    dirs.push(out);
    let result!: Awaited<ReturnType<typeof runPipeline>>;
    // Every model it makes (trained, masked, compact) is released by the end.
    await assertNoLeak('pipeline', async () => {
      result = await runPipeline([
        '--out', out, '--max-steps', '2', '--batch-size', '16', '--lr', '0.01',
        '--check-images', '64', '--batch-sizes', '1', '--repeats', '2', '--target-ms', '1',
      ]);
    });
    for (const path of [result.checkpoint, result.metrics, result.compact, result.onnx, result.plan, result.bench.json, result.bench.markdown, result.bench.svg]) {
      expect((await stat(path)).isFile(), path).toBe(true);
    }
    const report = JSON.parse(await readFile(result.bench.json, 'utf8')) as SpeedupReport;
    expect(report.models.map((m) => [m.name, m.timingOnly, m.batches.map((b) => b.batch)])).toEqual([['resnet20', false, [1]]]);
    expect(report.models[0].notes.join(' ')).toMatch(/equivalence on 64 .* test images/);
    expect(JSON.parse(await readFile(result.plan, 'utf8')).kind).toBe('cifar-resnet');
    // The folder is marked as a pipeline's, so the next pipeline run may replace it.
    expect(JSON.parse(await readFile(join(out, 'pipeline.json'), 'utf8')).command).toBe('pipeline');
    await expect(checkPipelineArgs(parseArgs('pipeline', ['--out', out]))).resolves.toBeUndefined();
    const rng = new Rng(3);
    const images = Float32Array.from({ length: 2 * 3 * 32 * 32 }, () => rng.normal());
    const theirs = (await onnxLogits(result.onnx, images, [2, 3, 32, 32])).data;
    const ours = await hostLogits(await loadCompactModel(result.compact), images, [2, 3, 32, 32]);
    assertClose(theirs, ours, { atol: 1e-4, rtol: 1e-4, label: 'pipeline compact.onnx in onnxruntime vs the compact model' });
  });
});
