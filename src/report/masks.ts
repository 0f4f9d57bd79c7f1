/**
 * Which filters pruned runs ended with: per pruned conv, how many filters each run prunes and how many of
 * them differ from the first run's choice. Answers questions such as "where do the soft masks differ from the
 * hard ones?" from the masks the checkpoints store. A pure function; src/cli/report.ts reads the files.
 */
import { maskChanges } from '../prune/criteria.js';

export interface RunMasks {
  name: string;
  masks: ReadonlyMap<string, Uint32Array>;
}

/** Conv names in model order: numeric parts compare as numbers (layer1.10 after layer1.9). */
function modelOrder(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

const pruned = (mask: Uint32Array) => mask.length - mask.reduce((s, v) => s + v, 0);

export function maskComparisonMarkdown(runs: readonly RunMasks[]): string {
  if (runs.length < 2) throw new Error('a mask comparison needs at least two runs');
  const [first, ...others] = runs;
  const layers = [...first.masks.keys()].sort(modelOrder);
  if (layers.length === 0) throw new Error(`${first.name}: the checkpoint holds no masks (not a pruned run)`);
  for (const run of others) {
    const missing = layers.filter((l) => run.masks.get(l)?.length !== first.masks.get(l)!.length);
    const extra = [...run.masks.keys()].filter((l) => !first.masks.has(l));
    if (missing.length || extra.length) {
      throw new Error(`${run.name} and ${first.name} prune different convs or widths: ${[...missing, ...extra].join(', ')}`);
    }
  }
  const header = ['conv', `${first.name}: pruned`, ...others.map((r) => `${r.name}: pruned, differ from ${first.name}`)];
  // One row per conv, then the same counts over all of them (the masks concatenated).
  const cells = (base: Uint32Array, masks: Uint32Array[]) => [
    `${pruned(base)} of ${base.length}`,
    ...masks.map((mask) => `${pruned(mask)}, ${maskChanges(base, mask)}`),
  ];
  const concat = (run: RunMasks) => Uint32Array.from(layers.flatMap((l) => [...run.masks.get(l)!]));
  const rows = layers.map((layer) => [layer, ...cells(first.masks.get(layer)!, others.map((run) => run.masks.get(layer)!))]);
  rows.push(['all', ...cells(concat(first), others.map(concat))]);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [
    line(header),
    line(header.map((_, i) => (i === 0 ? '---' : '--:'))),
    ...rows.map(line),
    '',
    'Differ: filters pruned in one run and kept in the other; when both prune the same number, one filter swapped for another counts 2.',
  ].join('\n');
}
