/**
 * The standard CIFAR training augmentation, as in the SFP code (torchvision `RandomHorizontalFlip()` and
 * `RandomCrop(32, padding=4)`; the two commute in distribution): pad the 32×32 image with 4 zero pixels on every
 * side, take a random 32×32 window of the 40×40 result, and mirror it left–right with probability 1/2. The padding is raw 0 (black), applied before
 * normalisation, as torchvision pads the PIL image before ToTensor/Normalize. Images are CHW bytes.
 */
import type { Rng } from '../tensor/random.js';
import { IMAGE_BYTES, IMAGE_CHANNELS, IMAGE_SIZE } from './cifar10.js';

export interface AugmentOptions {
  /** Zero padding on each side before the random crop; 0 turns the crop off. Default 4. */
  padding?: number;
  /** Random horizontal flip with probability 1/2. Default true. */
  flip?: boolean;
}

/** One draw: the crop window's top-left corner in the padded image (0..2·padding each) and whether to mirror. */
export interface Augmentation {
  dy: number;
  dx: number;
  flip: boolean;
}

/**
 * Draws one augmentation. The order of draws is fixed (dy, dx, then flip), so a saved Rng state replays it exactly.
 * A disabled crop or flip draws nothing for it.
 */
export function drawAugmentation(rng: Rng, options: AugmentOptions = {}): Augmentation {
  const padding = options.padding ?? 4;
  const dy = padding > 0 ? rng.int(2 * padding + 1) : 0;
  const dx = padding > 0 ? rng.int(2 * padding + 1) : 0;
  const flip = (options.flip ?? true) ? rng.uniform() < 0.5 : false;
  return { dy, dx, flip };
}

/**
 * Writes the augmented image to `dst` (3072 bytes, CHW) from `src` (the same): out(y, x) = padded(y + dy, x' + dx)
 * with x' = 31 − x when flipped, else x, and padded(i, j) = src(i − padding, j − padding), or 0 outside the image.
 */
export function applyAugmentation(src: Uint8Array, dst: Uint8Array, a: Augmentation, padding = 4): void {
  if (src.length < IMAGE_BYTES || dst.length < IMAGE_BYTES) {
    throw new Error(`applyAugmentation: images must have ${IMAGE_BYTES} bytes, got src ${src.length}, dst ${dst.length}`);
  }
  const n = IMAGE_SIZE;
  const oy = a.dy - padding;
  const ox = a.dx - padding;
  // Output columns whose source column is inside the image: sx = x + ox (or n−1−x + ox when flipped) in [0, n).
  const x0 = Math.min(n, Math.max(0, a.flip ? ox : -ox));
  const x1 = Math.max(x0, Math.min(n, a.flip ? n + ox : n - ox));
  for (let c = 0; c < IMAGE_CHANNELS; c++) {
    const plane = c * n * n;
    for (let y = 0; y < n; y++) {
      const row = plane + y * n;
      const sy = y + oy;
      if (sy < 0 || sy >= n) {
        dst.fill(0, row, row + n);
        continue;
      }
      const srow = plane + sy * n;
      if (x0 > 0) dst.fill(0, row, row + x0);
      if (x1 < n) dst.fill(0, row + x1, row + n);
      if (a.flip) {
        for (let x = x0; x < x1; x++) dst[row + x] = src[srow + n - 1 - x + ox];
      } else {
        dst.set(src.subarray(srow + x0 + ox, srow + x1 + ox), row + x0);
      }
    }
  }
}

/** Draws an augmentation with `rng` and applies it; returns the draw (handy for tests and logs). */
export function augmentImage(src: Uint8Array, dst: Uint8Array, rng: Rng, options: AugmentOptions = {}): Augmentation {
  const a = drawAugmentation(rng, options);
  applyAugmentation(src, dst, a, options.padding ?? 4);
  return a;
}
