/**
 * A built-in stand-in for CIFAR-10 when the real batches are absent: 10 classes of 32×32 RGB images, the same
 * ImageDataset shape, generated deterministically from a seed. Each class has its own colour and texture
 * (stripes, checks, rings, a square); each image adds a random phase, brightness, a distractor blob and pixel
 * noise, so a network has to learn something, but a small ResNet gets near 100% within an epoch or two. The textures
 * survive the training augmentation (a horizontal flip maps each texture to one of the same class; a crop shifts it).
 */
import { Rng } from '../tensor/random.js';
import { CIFAR10_CLASSES, IMAGE_BYTES, IMAGE_SIZE, type ImageDataset } from './cifar10.js';

export const SYNTHETIC_CLASSES: readonly string[] = Object.freeze([
  'red-hstripes', 'green-vstripes', 'blue-checks', 'yellow-rings', 'magenta-square',
  'cyan-hstripes', 'orange-vstripes', 'purple-checks', 'grey-rings', 'teal-square',
]);

// Base colour per class (RGB, 0..255); neighbours in texture differ in colour and vice versa.
const PALETTE: readonly (readonly [number, number, number])[] = [
  [200, 50, 50], [60, 180, 70], [50, 80, 210], [210, 200, 60], [200, 60, 190],
  [60, 200, 210], [230, 140, 40], [120, 60, 170], [150, 150, 150], [30, 130, 120],
];

const PIXELS = IMAGE_SIZE * IMAGE_SIZE;

/**
 * `count` images with balanced labels (each class `floor(count/10)` or one more) in a seeded random order.
 * The same (count, seed) always gives the same bytes.
 */
export function syntheticCifar10(count: number, seed = 0): ImageDataset {
  if (!Number.isInteger(count) || count < 0) throw new Error(`syntheticCifar10: count must be a whole number ≥ 0, got ${count}`);
  const rng = new Rng(seed ^ 0x5eed_c1fa);
  const classes = CIFAR10_CLASSES.length;
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) labels[i] = i % classes;
  rng.shuffle(labels);
  const images = new Uint8Array(count * IMAGE_BYTES);
  const pattern = new Float32Array(PIXELS);
  for (let i = 0; i < count; i++) {
    drawTexture(labels[i], rng, pattern);
    paint(labels[i], rng, pattern, images.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES));
  }
  return { images, labels, count, classNames: SYNTHETIC_CLASSES };
}

/** Fills `pattern` (32×32, values 0 or 1) with the class's texture at a random phase and period. */
function drawTexture(label: number, rng: Rng, pattern: Float32Array): void {
  const period = 4 + 2 * rng.int(3); // 4, 6 or 8 pixels
  const phaseY = rng.int(period);
  const phaseX = rng.int(period);
  const half = period / 2;
  const cy = 10 + rng.int(12);
  const cx = 10 + rng.int(12);
  for (let y = 0; y < IMAGE_SIZE; y++) {
    for (let x = 0; x < IMAGE_SIZE; x++) {
      let on: boolean;
      switch (label % 5) {
        case 0: on = (y + phaseY) % period < half; break; // horizontal stripes
        case 1: on = (x + phaseX) % period < half; break; // vertical stripes
        case 2: on = ((y + phaseY) % period < half) !== ((x + phaseX) % period < half); break; // checks
        case 3: on = Math.floor(Math.hypot(y - cy, x - cx) / half) % 2 === 0; break; // rings
        default: on = Math.abs(y - cy) < 8 && Math.abs(x - cx) < 8; // a filled square
      }
      pattern[y * IMAGE_SIZE + x] = on ? 1 : 0;
    }
  }
}

/** Colours the texture into a CHW image, adds a distractor blob of a random colour and uniform noise in ±24. */
function paint(label: number, rng: Rng, pattern: Float32Array, out: Uint8Array): void {
  const base = PALETTE[label];
  const brightness = 0.75 + 0.5 * rng.uniform();
  const blob = [rng.int(256), rng.int(256), rng.int(256)];
  const by = rng.int(IMAGE_SIZE);
  const bx = rng.int(IMAGE_SIZE);
  const radius2 = (3 + rng.int(4)) ** 2;
  let noise = 0;
  for (let c = 0; c < 3; c++) {
    const plane = c * PIXELS;
    const on = base[c] * brightness;
    const off = base[c] * brightness * 0.35;
    for (let p = 0; p < PIXELS; p++) {
      if ((p & 3) === 0) noise = rng.nextU32(); // four noise bytes per draw
      const n = ((noise >>> ((p & 3) * 8)) & 0xff) * (48 / 255) - 24;
      const y = p >> 5;
      const x = p & 31;
      const inBlob = (y - by) ** 2 + (x - bx) ** 2 <= radius2;
      const v = inBlob ? blob[c] : pattern[p] ? on : off;
      out[plane + p] = Math.max(0, Math.min(255, Math.round(v + n)));
    }
  }
}
