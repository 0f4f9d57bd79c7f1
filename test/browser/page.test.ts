// The demo page (web/) in headless Chromium on WebGPU (SwiftShader, see /work/shared/docs/browser-testing.md):
// the page is built with Vite and served by Vite's preview server on 127.0.0.1, one browser serves the whole
// file. In the page the engine starts through src/browser.ts, runs the fixed kernel set of web/checks.ts
// (elementwise, matmul, conv2d forward and gradients, batchnorm, a seeded ResNet-20's forward pass) and two
// training steps; this process runs the same checks on Node's GPU (test/support/setup.ts) and compares them
// at the kernel tests' tolerances. Then the SFP and compaction buttons are clicked: the page's equivalence check
// must find the compact model's logits equal to the masked model's. A screenshot of the page goes to
// docs/browser.png (only with UPDATE_SCREENSHOT=1).
//
// Chromium is required: a missing /usr/bin/chromium (or $CHROMIUM) fails the file with the command that installs it. A
// watchdog kills the browser if the file runs past its budget, so a wedged GPU process cannot hang CI.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Server } from 'node:http';
import { chromium, type Browser, type BrowserServer, type Page } from 'playwright-core';
import { build, preview, type PreviewServer } from 'vite';
import { runChecks, type ChecksReport } from '../../web/checks.js';
import { CifarResNet } from '../../src/models/resnet.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/tensor/random.js';
import { noGrad } from '../../src/autograd/mode.js';
import { checkpointToHost, encodeCheckpoint } from '../../src/io/checkpoint.js';
import { FilterPruner } from '../../src/prune/sfp.js';
import { buildCompactionPlan } from '../../src/prune/plan.js';
import { compactModel, encodeCompactModel, zeroMaskedFilters } from '../../src/prune/compact.js';
import { assertClose } from '../support/allclose.js';
import { tolerance } from '../support/gradcheck.js';
import { WANTED_LIMITS } from '../../src/gpu/device.js';

/** Debian's Chromium, or the build CHROMIUM names (Ubuntu's is a snap). */
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const root = fileURLToPath(new URL('../../', import.meta.url));
const config = join(root, 'web/vite.config.ts');
// The committed screenshot is refreshed with UPDATE_SCREENSHOT=1; otherwise it goes to a temporary file, so
// a test run leaves the working tree clean.
const screenshot = process.env.UPDATE_SCREENSHOT ? join(root, 'docs/browser.png') : join(tmpdir(), `sfp-gpu-page-${process.pid}.png`);
/** The whole file's budget: past it the watchdog kills the browser and every pending wait fails. */
const WATCHDOG_MS = 150_000;
/** Any single wait on the page. */
const STEP_MS = 60_000;
/** Relative to the largest |value|, for whole-network outputs (as test/models/resnet.test.ts). */
const NETWORK_RTOL = 1e-5;

// Playwright adds --no-sandbox, --disable-background-networking, --disable-component-update, --disable-sync,
// --no-first-run and a fresh --user-data-dir itself; they are repeated here so the list is complete on its own.
const ARGS = [
  '--enable-unsafe-webgpu',
  '--disable-quic',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

interface SfpWindow {
  sfp?: {
    ready: boolean;
    error: string | null;
    adapter: Record<string, unknown> | null;
    checks(): Promise<ChecksReport>;
    train(steps?: number, batch?: number): Promise<number[]>;
    prune(): Promise<{ pruned: number; total: number; changed: number }>;
    forward(x: number[], shape: number[]): Promise<number[]>;
    forwardCompact(x: number[], shape: number[]): Promise<number[]>;
    memory(): { pooledBytes: number; stagingBuffers: number; liveBytes: number };
    compact(options?: { images?: number; batch?: number; reps?: number }): Promise<CompactSummary>;
    lastCompact: CompactSummary | null;
  };
}

/** The fields of web/main.ts's CompactSummary this file reads. */
interface CompactSummary {
  equivalence: { images: number; maxAbsDiff: number; maxAbsLogit: number; predictionMismatches: number; predictionsEqual: boolean };
  regrown: number;
  plan: string;
  params: { dense: number; compact: number; compactCounted: number };
  flops: { dense: number; compact: number };
  predictions: { dense: number[]; compact: number[]; differ: number };
  timing: { batch: number; reps: number; denseMs: number; compactMs: number };
  speedup: { real: number; theoretical: number };
  phases: Record<string, number>;
}

let outDir = '';
let server: PreviewServer | null = null;
let browserServer: BrowserServer | null = null;
let browser: Browser | null = null;
let page: Page;
const pageErrors: string[] = [];
let watchdogFired = false;

const watchdog = setTimeout(() => {
  watchdogFired = true;
  console.error(`test/browser/page.test.ts: watchdog after ${WATCHDOG_MS / 1000} s: killing Chromium`);
  void browserServer?.kill();
  (server?.httpServer as Server | undefined)?.closeAllConnections();
}, WATCHDOG_MS);
watchdog.unref();

/** Rejects after `ms` (and names the step), so no await on the page can hang the file. */
async function within<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer from the page after ${ms / 1000} s${pageErrors.length ? `\npage errors:\n${pageErrors.join('\n')}` : ''}`)), ms);
    timer.unref();
  });
  try {
    return await Promise.race([promise, timeout]);
  } catch (error) {
    if (watchdogFired && error instanceof Error && !error.message.includes('watchdog')) error.message += ' (the watchdog killed the browser)';
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** Compares result by result; returns the worst |difference| as a fraction of its tolerance, per result. */
function compare(browserReport: ChecksReport, nodeReport: ChecksReport): Map<string, number> {
  expect(browserReport.results.map((r) => r.name)).toEqual(nodeReport.results.map((r) => r.name));
  const used = new Map<string, number>();
  browserReport.results.forEach((actual, i) => {
    const expected = nodeReport.results[i];
    expect(actual.shape, actual.name).toEqual(expected.shape);
    const label = `${actual.name}: browser (${browserReport.kernels}) vs Node (${nodeReport.kernels})`;
    const scale = expected.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const { atol, rtol } = expected.sumLength === 'scale' ? { atol: NETWORK_RTOL * scale, rtol: 0 } : tolerance(expected.sumLength);
    assertClose(actual.data, expected.data, { atol, rtol, label, shape: expected.shape });
    let worst = 0;
    expected.data.forEach((e, j) => (worst = Math.max(worst, Math.abs(actual.data[j] - e) / (atol + rtol * Math.abs(e)))));
    used.set(actual.name, worst);
  });
  return used;
}

describe('the web page in headless Chromium', () => {
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium is not installed (${CHROMIUM} is missing): run \`bash scripts/setup-system.sh --browser\`, or name a Chromium binary with CHROMIUM=/path`);
    }
    outDir = mkdtempSync(join(tmpdir(), 'sfp-web-'));
    await within('vite build', STEP_MS, build({ configFile: config, logLevel: 'error', build: { outDir, emptyOutDir: true } }));
    server = await preview({ configFile: config, logLevel: 'error', build: { outDir }, preview: { host: '127.0.0.1', port: 0 } });
    const url = server.resolvedUrls?.local[0];
    if (!url) throw new Error('vite preview did not report a URL');
    // launchServer (not launch) gives the watchdog a handle that kills the browser process.
    browserServer = await within('chromium.launchServer', STEP_MS, chromium.launchServer({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: STEP_MS }));
    browser = await within('chromium.connect', STEP_MS, chromium.connect(browserServer.wsEndpoint(), { timeout: STEP_MS }));
    page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    page.setDefaultTimeout(STEP_MS);
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text());
    });
    await page.goto(url, { timeout: STEP_MS });
    await page.waitForFunction(() => (window as SfpWindow).sfp?.ready || (window as SfpWindow).sfp?.error, null, { timeout: STEP_MS });
  });

  afterAll(async () => {
    clearTimeout(watchdog);
    await browser?.close().catch(() => undefined);
    await browserServer?.close().catch(() => browserServer?.kill());
    if (server) {
      (server.httpServer as Server).closeAllConnections();
      await server.close();
    }
    if (outDir) rmSync(outDir, { recursive: true, force: true });
    if (!process.env.UPDATE_SCREENSHOT) rmSync(screenshot, { force: true });
  });

  it('starts the engine on the browser adapter, with the limits it asked for', async () => {
    const state = await page.evaluate(() => ({ error: (window as SfpWindow).sfp!.error, adapter: (window as SfpWindow).sfp!.adapter }));
    expect(state.error, 'the engine did not start in the page').toBeNull();
    const limits = state.adapter!.limits as Record<string, number>;
    console.log(`browser adapter: ${JSON.stringify({ ...state.adapter, limits: undefined })}\nlimits: ${JSON.stringify(limits)}`);
    // Whatever the adapter, the device got each limit the engine asks for at the adapter's value, not WebGPU's
    // default (SwiftShader: 256 invocations, 10 storage buffers where the default is 8).
    const pairs = await page.evaluate(async (names) => {
      const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
      return names.map((name) => ({ name, adapter: adapter?.limits[name] }));
    }, [...WANTED_LIMITS]);
    for (const { name, adapter } of pairs) {
      expect(typeof adapter, `the adapter's ${name}`).toBe('number');
      expect(limits[name], name).toBe(adapter);
    }
  });

  it('computes the fixed kernel set and a ResNet-20 forward pass as Node does', async () => {
    const inPage = await within('window.sfp.checks()', STEP_MS, page.evaluate(() => (window as SfpWindow).sfp!.checks()));
    const inNode = await runChecks();
    console.log(
      `checks: browser ${inPage.milliseconds.toFixed(0)} ms (${inPage.kernels}), Node ${inNode.milliseconds.toFixed(0)} ms (${inNode.kernels}), ` +
        `${inPage.results.length} results`,
    );
    const used = compare(inPage, inNode);
    const worst = [...used].sort((a, b) => b[1] - a[1]).slice(0, 3);
    console.log(`largest differences, as a fraction of the tolerance: ${worst.map(([n, f]) => `${n} ${f.toFixed(3)}`).join('; ')}`);
    expect(pageErrors).toEqual([]);
  });

  it('loads a safetensors checkpoint written in Node through the file input, and gives the logits Node gives', async () => {
    // A seeded ResNet-20 (8/16/32) whose BN running statistics moved away from 0 and 1 (two training-mode passes).
    const rng = new Rng(7);
    const random = (n: number) => Float32Array.from({ length: n }, () => 2 * rng.uniform() - 1);
    const shape = [3, 3, 32, 32];
    const x = random(shape.reduce((a, b) => a * b));
    const model = new CifarResNet(20, 10, 7, [8, 16, 32]);
    let expected: Float32Array;
    let bytes: Uint8Array;
    let broken: Uint8Array;
    let regrown: number;
    try {
      noGrad(() => {
        for (let i = 0; i < 2; i++) model.forward(Tensor.fromArray(random(x.length), shape)).dispose();
      });
      model.eval();
      // An SFP run's checkpoint: masks at 25 % (2 of the stem's 8 filters), weights not zeroed (regrown since masking).
      const pruner = new FilterPruner(model, { rate: 0.25 });
      const masks = (await pruner.computeMasks()).byName();
      pruner.dispose();
      const host = await checkpointToHost({ model: model.stateDict(), masks, meta: { source: 'test/browser/page.test.ts' } });
      bytes = encodeCheckpoint(host);
      broken = encodeCheckpoint({ ...host, model: new Map([...host.model].filter(([key]) => key !== 'fc.bias')) });
      // What the page should give: the masks applied at load, as Node's eval and export apply them.
      regrown = await zeroMaskedFilters(model, masks);
      const logits = noGrad(() => model.forward(Tensor.fromArray(x, shape)));
      expected = new Float32Array(await logits.toArray());
      logits.dispose();
    } finally {
      for (const p of model.parameters()) p.dispose();
      for (const [, b] of model.namedBuffers()) b.dispose();
    }
    const name = 'node-resnet20-8.safetensors';
    await page.setInputFiles('#ckpt-file', { name, mimeType: 'application/octet-stream', buffer: Buffer.from(bytes) });
    await page.waitForFunction(
      (n) => document.getElementById('status')!.textContent === `loaded ${n}` || document.getElementById('status')!.classList.contains('error'),
      name,
      { timeout: STEP_MS },
    );
    expect(await page.textContent('#status')).toBe(`loaded ${name}`);
    const info = await page.textContent('#ckpt-info');
    expect(info).toContain('ResNet-20 8/16/32, 10 classes');
    expect(regrown).toBeGreaterThan(0);
    expect(info).toContain(`masks applied: ${2 + 6 * 2 + 6 * 4 + 6 * 8} filters of 19 convs zeroed, as compact zeroes them (${regrown} of their weights were not zero`);
    // Cleared after each choice, so choosing the same file again is a change.
    expect(await page.$eval('#ckpt-file', (input) => (input as HTMLInputElement).value)).toBe('');
    const actual = await within('window.sfp.forward', STEP_MS, page.evaluate(([v, s]) => (window as SfpWindow).sfp!.forward(v, s), [Array.from(x), shape] as const));
    const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assertClose(actual, expected, { atol: NETWORK_RTOL * scale, rtol: 0, label: 'logits of the checkpoint: browser vs Node', shape: [3, 10] });
    // A file that reads as a CIFAR ResNet but does not load (fc.bias missing) is refused and leaves the loaded model as it was.
    await page.setInputFiles('#ckpt-file', { name: 'no-fc-bias.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from(broken) });
    await page.waitForFunction(() => document.getElementById('status')!.classList.contains('error'), null, { timeout: STEP_MS });
    expect(await page.textContent('#status')).toContain('missing: fc.bias');
    expect(pageErrors.splice(0).join('\n')).toContain('missing: fc.bias');
    const after = await within('window.sfp.forward', STEP_MS, page.evaluate(([v, s]) => (window as SfpWindow).sfp!.forward(v, s), [Array.from(x), shape] as const));
    expect(after).toEqual(actual);
    // The good file again, through the same input.
    await page.setInputFiles('#ckpt-file', { name, mimeType: 'application/octet-stream', buffer: Buffer.from(bytes) });
    await page.waitForFunction((n) => document.getElementById('status')!.textContent === `loaded ${n}`, name, { timeout: STEP_MS });
    // Compaction uses the checkpoint's masks: the stem keeps 6 of 8 filters, and the compact model gives the masked logits.
    const s = await within('window.sfp.compact', STEP_MS, page.evaluate(() => (window as SfpWindow).sfp!.compact({ images: 8, batch: 2, reps: 1 })));
    expect(s.plan).toContain('conv1 out 8→6');
    expect(s.regrown, 'the masks were applied when the checkpoint was loaded').toBe(0);
    expect(s.equivalence.maxAbsDiff).toBeLessThanOrEqual(1e-5 * Math.max(1, s.equivalence.maxAbsLogit));
    expect(s.params.compact).toBeLessThan(s.params.dense);
  });

  it('loads a compact model written in Node through the same input, and gives the logits Node gives', async () => {
    const rng = new Rng(11);
    const random = (n: number) => Float32Array.from({ length: n }, () => 2 * rng.uniform() - 1);
    const shape = [2, 3, 32, 32];
    const x = random(shape.reduce((a, b) => a * b));
    const model = new CifarResNet(20, 10, 11, [8, 16, 32]);
    let expected: Float32Array;
    let bytes: Uint8Array;
    try {
      noGrad(() => {
        for (let i = 0; i < 2; i++) model.forward(Tensor.fromArray(random(x.length), shape)).dispose();
      });
      model.eval();
      const masks = (await new FilterPruner(model, { rate: 0.3 }).computeMasks()).byName();
      await zeroMaskedFilters(model, masks);
      const compact = await compactModel(model, await buildCompactionPlan(model, masks));
      const logits = noGrad(() => compact.forward(Tensor.fromArray(x, shape)));
      expected = new Float32Array(await logits.toArray());
      logits.dispose();
      bytes = await encodeCompactModel(compact, { source: 'test/browser/page.test.ts' });
      for (const [, t] of [...compact.namedParameters(), ...compact.namedBuffers()]) t.dispose();
    } finally {
      for (const p of model.parameters()) p.dispose();
      for (const [, b] of model.namedBuffers()) b.dispose();
    }
    const name = 'node-compact-resnet20.safetensors';
    await page.setInputFiles('#ckpt-file', { name, mimeType: 'application/octet-stream', buffer: Buffer.from(bytes) });
    await page.waitForFunction(
      (n) => document.getElementById('status')!.textContent === `loaded ${n}` || document.getElementById('status')!.classList.contains('error'),
      name,
      { timeout: STEP_MS },
    );
    expect(await page.textContent('#status')).toBe(`loaded ${name}`);
    expect(await page.textContent('#ckpt-info')).toContain('compact model');
    const actual = await within('window.sfp.forwardCompact', STEP_MS, page.evaluate(([v, s]) => (window as SfpWindow).sfp!.forwardCompact(v, s), [Array.from(x), shape] as const));
    const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assertClose(actual, expected, { atol: NETWORK_RTOL * scale, rtol: 0, label: 'logits of the compact model: browser vs Node', shape: [2, 10] });
  });

  it('trains two steps and applies SFP masks', async () => {
    const losses = await within('window.sfp.train(2, 8)', STEP_MS, page.evaluate(() => (window as SfpWindow).sfp!.train(2, 8)));
    expect(losses).toHaveLength(2);
    for (const loss of losses) expect(Number.isFinite(loss) && loss > 0, `loss ${loss}`).toBe(true);
    const pruned = await within('window.sfp.prune()', STEP_MS, page.evaluate(() => (window as SfpWindow).sfp!.prune()));
    // ResNet-20 at 8/16/32 has 19 convs and 8 + 6·(8 + 16 + 32) = 344 filters; rate 0.3 zeroes floor(0.3·C) of each.
    expect(pruned.total).toBe(344);
    expect(pruned.pruned).toBe(2 + 6 * 2 + 6 * 4 + 6 * 9);
    expect(await page.locator('#predictions .prediction').count()).toBe(8);
    expect(pageErrors).toEqual([]);
  });

  it('disables the widths choice while an action runs (changing it drops the model), and enables it after', async () => {
    const seen = await within(
      'window.sfp.train(1, 8)',
      STEP_MS,
      page.evaluate(async () => {
        const select = document.getElementById('train-widths') as HTMLSelectElement;
        const before = select.disabled;
        const running = (window as SfpWindow).sfp!.train(1, 8);
        const during = select.disabled;
        await running;
        return { before, during, after: select.disabled };
      }),
    );
    expect(seen).toEqual({ before: false, during: true, after: false });
  });

  it('clicks through SFP masks and compaction: the compact model gives the masked logits with fewer parameters and FLOPs', async () => {
    // The buttons, as a user would: masks again (same filters), then compaction. SwiftShader takes about a second
    // per forward of 8 images here, so the section's inputs are turned down: 3 check batches of 8 images,
    // timing at batch 4 with 3 repetitions per model.
    const settled = (prefix: string) =>
      page.waitForFunction(
        (p) => document.getElementById('status')!.textContent!.startsWith(p) || document.getElementById('status')!.classList.contains('error'),
        prefix,
        { timeout: STEP_MS },
      );
    await page.fill('#compact-images', '24');
    await page.fill('#compact-batch', '4');
    await page.fill('#compact-reps', '3');
    await page.click('#prune-run');
    await settled('SFP masks applied');
    await page.click('#compact-run');
    await settled('compacted:');
    expect(await page.locator('#status').evaluate((e) => e.classList.contains('error')), (await page.textContent('#status')) ?? '').toBe(false);
    const s = (await page.evaluate(() => (window as SfpWindow).sfp!.lastCompact))!;
    expect(s, 'the page kept no compaction summary').not.toBeNull();
    console.log(
      `compaction in the page: ${s.equivalence.images} images, max |Δlogit| ${s.equivalence.maxAbsDiff.toExponential(2)} (logits up to ${s.equivalence.maxAbsLogit.toFixed(2)}), ` +
        `${s.equivalence.predictionMismatches} predictions differ; parameters ${s.params.dense} → ${s.params.compact}, ` +
        `FLOPs ${(s.flops.dense / 1e6).toFixed(2)}M → ${(s.flops.compact / 1e6).toFixed(2)}M (${s.speedup.theoretical.toFixed(2)}×); ` +
        `forward batch ${s.timing.batch}: ${s.timing.denseMs.toFixed(1)} ms → ${s.timing.compactMs.toFixed(1)} ms (${s.speedup.real.toFixed(2)}×); ` +
        `phases ${JSON.stringify(s.phases)}`,
    );
    expect(s.equivalence.images).toBe(24);
    // As tight as the Node compaction test (test/prune/compact.test.ts), relative to the logits' size.
    // BN statistics re-estimated after masking keep the evaluation-mode logits in range, so the bound below is tight.
    expect(s.equivalence.maxAbsLogit).toBeLessThan(100);
    expect(s.equivalence.maxAbsDiff).toBeLessThanOrEqual(1e-5 * Math.max(1, s.equivalence.maxAbsLogit));
    expect(s.equivalence.predictionsEqual).toBe(true);
    expect(s.predictions.compact).toEqual(s.predictions.dense);
    expect(s.regrown, 'the masks were just applied: no masked weight should be non-zero').toBe(0);
    expect(s.params.compact).toBeLessThan(s.params.dense);
    expect(s.params.compact).toBe(s.params.compactCounted);
    // The check's and the timing's buffers (other batch sizes than training's) went back to the GPU.
    const memory = await page.evaluate(() => (window as SfpWindow).sfp!.memory());
    expect(memory).toMatchObject({ pooledBytes: 0, stagingBuffers: 0 });
    expect(s.flops.compact).toBeLessThan(s.flops.dense);
    expect(s.plan.split('\n').length).toBeGreaterThan(19);
    expect(Number.isFinite(s.timing.denseMs) && Number.isFinite(s.timing.compactMs)).toBe(true);
    expect(await page.locator('#compact-predictions .prediction').count()).toBe(8);
    expect(await page.textContent('#compact-summary')).toContain('identical');
    expect(pageErrors).toEqual([]);
    await mkdir(join(root, 'docs'), { recursive: true });
    await within('screenshot', STEP_MS, page.screenshot({ path: screenshot, fullPage: true }));
  });
});
