// The synthetic stand-in: the same seed gives the same bytes, classes are balanced, and it is learnable (a
// nearest-mean-colour classifier, far weaker than a ResNet, already separates the classes).
import { describe, expect, test } from 'vitest';
import { IMAGE_BYTES, classCounts } from '../../src/data/cifar10.js';
import { SYNTHETIC_CLASSES, syntheticCifar10 } from '../../src/data/synthetic.js';

function meanColour(images: Uint8Array, i: number): number[] {
  return [0, 1, 2].map((c) => {
    let s = 0;
    for (let p = 0; p < 1024; p++) s += images[i * IMAGE_BYTES + c * 1024 + p];
    return s / 1024;
  });
}

describe('syntheticCifar10', () => {
  test('deterministic from the seed; another seed gives other images', () => {
    const a = syntheticCifar10(40, 11);
    const b = syntheticCifar10(40, 11);
    expect(Buffer.from(b.images).equals(Buffer.from(a.images))).toBe(true);
    expect(b.labels).toEqual(a.labels);
    const c = syntheticCifar10(40, 12);
    expect(Buffer.from(c.images).equals(Buffer.from(a.images))).toBe(false);
  });

  test('the dataset shape: 3072 bytes per image, labels 0..9, 10 class names', () => {
    const d = syntheticCifar10(25, 0);
    expect(d.count).toBe(25);
    expect(d.images.length).toBe(25 * 3072);
    expect(d.classNames).toEqual(SYNTHETIC_CLASSES);
    expect(d.classNames.length).toBe(10);
    expect(Math.max(...d.labels)).toBeLessThan(10);
  });

  test('classes are balanced: floor(n/10) or one more each, and the order is shuffled', () => {
    expect(classCounts(syntheticCifar10(1000, 1))).toEqual(new Array(10).fill(100));
    const counts = classCounts(syntheticCifar10(1003, 1));
    expect(counts.every((k) => k === 100 || k === 101)).toBe(true);
    expect(counts.reduce((a, b) => a + b)).toBe(1003);
    const labels = [...syntheticCifar10(30, 2).labels];
    expect(labels).not.toEqual(labels.map((_, i) => i % 10));
  });

  test('learnable: class-mean colours from one seed classify another seed\'s images well above chance', () => {
    const train = syntheticCifar10(500, 1);
    const test_ = syntheticCifar10(500, 2);
    const sums = Array.from({ length: 10 }, () => [0, 0, 0]);
    for (let i = 0; i < train.count; i++) meanColour(train.images, i).forEach((v, c) => (sums[train.labels[i]][c] += v / 50));
    let correct = 0;
    for (let i = 0; i < test_.count; i++) {
      const m = meanColour(test_.images, i);
      const d = sums.map((s) => s.reduce((acc, v, c) => acc + (v - m[c]) ** 2, 0));
      if (d.indexOf(Math.min(...d)) === test_.labels[i]) correct++;
    }
    expect(correct / test_.count).toBeGreaterThan(0.85); // chance is 0.1; measured 0.968
  });
});
