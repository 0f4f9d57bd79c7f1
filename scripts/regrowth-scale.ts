/**
 * How far the filters SFP zeroed have come back, read from a checkpoint written by
 * scripts/sfp-step-trace.ts (masks chosen at its start, then STEPS steps with nothing masked again).
 * Per pruned conv: the zeroed filters' L2 norms against the kept ones', and how much of a full-size
 * output their BN gives them back. In training mode BN divides a channel by sqrt(var + eps), so a filter
 * whose pre-BN variance is well above eps (1e-5) has an output as large as a kept filter's, whatever
 * its norm: sqrt(var / (var + eps)) of full size, read here from the BN's running variance. A zeroed
 * filter's channel is the constant β after its BN; where a ReLU follows and β ≤ 0, no gradient reaches
 * the filter and it stays exactly zero, so the table also counts those.
 *
 * Usage: npx tsx scripts/regrowth-scale.ts TRACE.safetensors
 */
import { loadCheckpoint } from '../src/io/checkpoint-files.js';

const [path] = process.argv.slice(2);
if (!path) {
  console.error('usage: npx tsx scripts/regrowth-scale.ts TRACE.safetensors');
  process.exit(2);
}
const EPS = 1e-5;
const { model, masks, meta } = await loadCheckpoint(path);
if (masks.size === 0) throw new Error(`${path} holds no masks: write it with scripts/sfp-step-trace.ts`);

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const tensor = (name: string) => {
  const t = model.get(name);
  if (!t) throw new Error(`${path} has no tensor ${name}`);
  return t;
};

console.log(`${path}: ${JSON.stringify(meta)}`);
console.log('| conv | zeroed | still exactly zero (BN β ≤ 0) | norm, zeroed / kept (medians) | zeroed below every kept | BN output size, zeroed (median, min) | kept (median) |');
console.log('|---|--:|--:|--:|--:|--:|--:|');
const all = { ratio: [] as number[], restored: [] as number[], below: 0, zeroed: 0, exact: 0 };
for (const [conv, mask] of masks) {
  const weight = tensor(`${conv}.weight`);
  const perFilter = weight.data.length / mask.length;
  const norms = Array.from(mask, (_, f) => Math.hypot(...weight.data.subarray(f * perFilter, (f + 1) * perFilter)));
  const bn = conv.replace(/conv(\d*)$/, 'bn$1');
  const variance = tensor(`${bn}.running_var`).data;
  const beta = tensor(`${bn}.bias`).data;
  const size = (f: number) => Math.sqrt(variance[f] / (variance[f] + EPS));
  const zeroed = [...mask.keys()].filter((f) => !mask[f]);
  const kept = [...mask.keys()].filter((f) => mask[f]);
  const smallestKept = Math.min(...kept.map((f) => norms[f]));
  const keptMedian = median(kept.map((f) => norms[f]));
  const ratio = median(zeroed.map((f) => norms[f])) / keptMedian;
  const restored = zeroed.map(size);
  const below = zeroed.filter((f) => norms[f] < smallestKept).length;
  const exact = zeroed.filter((f) => norms[f] === 0);
  all.ratio.push(...zeroed.map((f) => norms[f] / keptMedian));
  all.restored.push(...restored);
  all.below += below;
  all.zeroed += zeroed.length;
  all.exact += exact.length;
  console.log(
    `| ${conv} | ${zeroed.length} of ${mask.length} | ${exact.length} (${exact.filter((f) => beta[f] <= 0).length}) | ${ratio.toFixed(3)} | ${below} | ` +
      `${median(restored).toFixed(3)}, ${Math.min(...restored).toFixed(3)} | ${median(kept.map(size)).toFixed(3)} |`,
  );
}
console.log(
  `\nall convs: ${all.zeroed} zeroed filters, ${all.exact} still exactly zero; median norm ${median(all.ratio).toFixed(3)} of their conv's median kept norm; ` +
    `${all.below} still below every kept filter of their conv (the L2 criterion picks them again); ` +
    `BN output size median ${median(all.restored).toFixed(3)}, min ${Math.min(...all.restored).toFixed(3)} of full.`,
);
