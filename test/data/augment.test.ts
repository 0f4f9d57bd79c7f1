// Random crop with zero padding and horizontal flip: every window and flip equals a plain pad-crop-flip reference,
// and the draws repeat from a seed.
import { describe, expect, test } from 'vitest';
import { applyAugmentation, augmentImage, drawAugmentation, type Augmentation } from '../../src/data/augment.js';
import { IMAGE_BYTES } from '../../src/data/cifar10.js';
import { Rng } from '../../src/tensor/random.js';

/** A textbook version: build the (32+2p)² zero-padded planes, cut the window at (dy, dx), mirror if asked. */
function reference(src: Uint8Array, a: Augmentation, p: number): Uint8Array {
  const n = 32;
  const m = n + 2 * p;
  const out = new Uint8Array(IMAGE_BYTES);
  for (let c = 0; c < 3; c++) {
    const padded = new Uint8Array(m * m);
    for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) padded[(y + p) * m + x + p] = src[c * 1024 + y * n + x];
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        const cx = a.flip ? n - 1 - x : x;
        out[c * 1024 + y * n + x] = padded[(y + a.dy) * m + cx + a.dx];
      }
    }
  }
  return out;
}

/** −1 when the two arrays hold the same bytes, else the first differing element (cheaper than toEqual on big arrays). */
function firstDifference(a: ArrayLike<number> & ArrayBufferView, b: ArrayLike<number> & ArrayBufferView): number {
  const bytesOf = (v: ArrayBufferView) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (a.length === b.length && bytesOf(a).equals(bytesOf(b))) return -1;
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return Math.min(a.length, b.length);
}

// Values 1..255 everywhere, so a zero in the output can only come from the padding.
const image = Uint8Array.from({ length: IMAGE_BYTES }, (_, i) => 1 + ((i * 37) % 255));

describe('applyAugmentation', () => {
  test('the centre window without a flip is the image itself', () => {
    const out = new Uint8Array(IMAGE_BYTES);
    applyAugmentation(image, out, { dy: 4, dx: 4, flip: false }, 4);
    expect(out).toEqual(image);
  });

  test('a flip of the centre window mirrors each row: out(y, x) = in(y, 31 − x)', () => {
    const out = new Uint8Array(IMAGE_BYTES);
    applyAugmentation(image, out, { dy: 4, dx: 4, flip: true }, 4);
    for (const [c, y, x] of [[0, 0, 0], [1, 5, 7], [2, 31, 31], [2, 10, 31]]) {
      expect(out[c * 1024 + y * 32 + x]).toBe(image[c * 1024 + y * 32 + 31 - x]);
    }
  });

  test('the top-left window shifts the image down-right by 4 and pads with 4 rows and columns of zeros', () => {
    const out = new Uint8Array(IMAGE_BYTES);
    applyAugmentation(image, out, { dy: 0, dx: 0, flip: false }, 4);
    expect(out[0]).toBe(0);
    expect(out[3 * 32 + 31]).toBe(0); // row 3 is padding
    expect(out[4 * 32 + 3]).toBe(0); // column 3 is padding
    expect(out[4 * 32 + 4]).toBe(image[0]);
    expect(out[2048 + 31 * 32 + 31]).toBe(image[2048 + 27 * 32 + 27]);
  });

  test('all 81 windows × 2 flips equal the pad-crop-flip reference (padding 4), and others for padding 1 and 0', () => {
    const out = new Uint8Array(IMAGE_BYTES);
    for (const p of [4, 1, 0]) {
      for (let dy = 0; dy <= 2 * p; dy++) {
        for (let dx = 0; dx <= 2 * p; dx++) {
          for (const flip of [false, true]) {
            out.fill(77); // stale values must be overwritten
            applyAugmentation(image, out, { dy, dx, flip }, p);
            const at = firstDifference(out, reference(image, { dy, dx, flip }, p));
            expect(at, `padding ${p}, dy ${dy}, dx ${dx}, flip ${flip}: first difference at byte ${at}`).toBe(-1);
          }
        }
      }
    }
  });
});

describe('drawAugmentation', () => {
  test('the same seed gives the same draws; windows cover 0..8 and about half are flipped', () => {
    const a = new Rng(7);
    const b = new Rng(7);
    const seen = new Set<number>();
    let flips = 0;
    const n = 4000;
    for (let i = 0; i < n; i++) {
      const d = drawAugmentation(a);
      expect(drawAugmentation(b)).toEqual(d);
      seen.add(d.dy * 9 + d.dx);
      if (d.flip) flips++;
    }
    expect(seen.size).toBe(81);
    expect(Math.abs(flips / n - 0.5)).toBeLessThan(0.03); // 4000 fair coins: σ ≈ 0.008
  });

  test('turning off the crop or the flip draws nothing for it', () => {
    const rng = new Rng(1);
    for (let i = 0; i < 50; i++) {
      expect(drawAugmentation(rng, { padding: 0, flip: false })).toEqual({ dy: 0, dx: 0, flip: false });
    }
    const before = rng.state();
    drawAugmentation(rng, { padding: 0, flip: false });
    expect(rng.state()).toEqual(before);
  });

  test('augmentImage applies what it draws', () => {
    const out = new Uint8Array(IMAGE_BYTES);
    const rng = new Rng(99);
    for (let i = 0; i < 20; i++) {
      const a = augmentImage(image, out, rng);
      expect(out).toEqual(reference(image, a, 4));
    }
  });
});
