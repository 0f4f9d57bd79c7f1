/**
 * The SFP paper's CIFAR-10 numbers (He et al., IJCAI 2018, Table 1, trained from scratch), as the FPGM paper
 * (He et al., CVPR 2019) reprints them in its Table 1.
 * Accuracies in %, FLOPs as the paper counts them (3×3 convs only, a multiply-add = 1). The baseline FLOPs are
 * the official script's (utils/cifar_resnet_flop.py). These are the paper's numbers, never
 * ours: a report prints them beside what our runs measured and what src/prune/flops.ts computes.
 */
export interface PaperResult {
  model: 'resnet20' | 'resnet32' | 'resnet56' | 'resnet110';
  /** The SFP rate P: the fraction of filters zeroed in every conv. */
  rate: number;
  baselineAccuracy: number;
  sfpAccuracy: number;
  drop: number;
  baselineFlops: number;
  sfpFlops: number;
  /** FLOPs reduction in %. */
  reduction: number;
  note?: string;
}

export const PAPER = {
  'resnet20-30': {
    model: 'resnet20',
    rate: 0.3,
    baselineAccuracy: 92.2,
    sfpAccuracy: 90.83,
    drop: 1.37,
    baselineFlops: 4.055e7,
    sfpFlops: 2.43e7,
    reduction: 42.2,
    note: 'The paper prints 2.43E7 for ResNet-20 at 30 %; 42.2 % of 4.055E7 leaves 2.34E7, what the official utils/cifar_resnet_flop.py gives (a digit swap).',
  },
  'resnet32-30': {
    model: 'resnet32',
    rate: 0.3,
    baselineAccuracy: 92.63,
    sfpAccuracy: 92.08,
    drop: 0.55,
    baselineFlops: 6.886e7,
    sfpFlops: 4.03e7,
    reduction: 41.5,
  },
  'resnet56-40': {
    model: 'resnet56',
    rate: 0.4,
    baselineAccuracy: 93.59,
    sfpAccuracy: 92.26,
    drop: 1.33,
    baselineFlops: 1.255e8,
    sfpFlops: 5.94e7,
    reduction: 52.6,
    note:
      'For ResNet-56 at 40 % a fine-tuned row is also cited (from a pretrained model, the protocol of fine-tuning runs): 93.59 % → 93.36 %, ' +
      "a drop of 0.23, from Torch-Pruning's benchmark table (a secondary citation; the FPGM paper's Table 1 prints the from-scratch row above).",
  },
  'resnet110-30': {
    model: 'resnet110',
    rate: 0.3,
    baselineAccuracy: 93.68,
    sfpAccuracy: 93.38,
    drop: 0.3,
    baselineFlops: 2.529e8,
    sfpFlops: 1.5e8,
    reduction: 40.8,
  },
} as const satisfies Record<string, PaperResult>;

export type PaperKey = keyof typeof PAPER;
export const PAPER_KEYS = Object.keys(PAPER) as PaperKey[];

/** What `--paper` takes: a row's key, or `auto` for the row of the compared runs' model and rate (if the paper has one). */
export const PAPER_CHOICES = [...PAPER_KEYS, 'auto'] as const;
export type PaperChoice = (typeof PAPER_CHOICES)[number];

/** The paper's row for `model` at SFP rate `rate`, if it printed one. */
export function paperRowFor(model: string, rate: number): PaperKey | undefined {
  return PAPER_KEYS.find((key) => PAPER[key].model === model && PAPER[key].rate === rate);
}
