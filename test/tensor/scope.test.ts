// Tensor lifetimes (src/tensor/tensor.ts): scopes release what they made unless it is returned or kept,
// released tensors fail loudly, and views share their buffer until the last one is released.
import { describe, expect, it } from 'vitest';
import { accumulate_, add, scale } from '../../src/ops/elementwise.js';
import { reshape, flatten } from '../../src/ops/view.js';
import { Tensor, openScopeCount, scope, scopeAsync } from '../../src/tensor/tensor.js';
import { tensor } from '../../src/tensor/create.js';
import { assertEqual } from '../support/allclose.js';
import { assertNoLeak, memorySnapshot } from '../support/memory.js';

describe('scope', () => {
  it('releases every tensor made inside it: live memory returns to where it was', async () => {
    let inner: Tensor | null = null;
    await assertNoLeak('scope', () =>
      scope(() => {
        const x = tensor([1, 2, 3]);
        inner = add(x, scale(x, 2));
        expect(memorySnapshot().liveBuffers).toBeGreaterThanOrEqual(3);
      }),
    );
    expect(inner!.released).toBe(true);
  });

  it('returned tensors survive, also inside arrays and plain objects, and belong to the enclosing scope', async () => {
    const before = memorySnapshot();
    let result: { doubled: Tensor; list: Tensor[] } | null = null;
    await scopeAsync(async () => {
      result = scope(() => {
        const x = tensor([1, 2]);
        const temporary = scale(x, 10);
        return { doubled: scale(x, 2), list: [add(x, temporary)] };
      });
      expect(result.doubled.released).toBe(false);
      assertEqual(await result.doubled.toArray(), [2, 4]);
      assertEqual(await result.list[0].toArray(), [11, 22]);
    });
    // The enclosing scope did not return them on: they were released when it ended.
    expect(result!.doubled.released).toBe(true);
    expect(result!.list[0].released).toBe(true);
    expect(memorySnapshot().liveBytes).toBe(before.liveBytes);
  });

  it('kept tensors survive every scope until disposed', async () => {
    const before = memorySnapshot();
    scope(() => {
      tensor([7, 8]).keep();
      tensor([1]);
    });
    expect(memorySnapshot().liveBuffers).toBe(before.liveBuffers + 1);
    const k = scope(() => scale(tensor([7, 8]), 1).keep());
    scope(() => {
      scope(() => add(k, k));
    });
    expect(k.released).toBe(false);
    assertEqual(await k.toArray(), [7, 8]);
    k.dispose();
    expect(k.released).toBe(true);
    // The first kept tensor was never disposed: it is the one buffer still live.
    expect(memorySnapshot().liveBuffers).toBe(before.liveBuffers + 1);
  });

  it('a tensor used after its scope ended throws a clear error naming it', async () => {
    const gone = (() => {
      let t: Tensor | null = null;
      scope(() => {
        t = tensor([1, 2, 3]);
        t.name = 'activations';
      });
      return t!;
    })();
    expect(() => gone.buffer).toThrow(/tensor activations \[3\] f32 was used after it was released/);
    expect(() => add(gone, gone)).toThrow(/used after it was released/);
    await expect(gone.toArray()).rejects.toThrow(/used after it was released/);
  });

  it('releases the tensors of a scope that throws, and rethrows', async () => {
    await assertNoLeak('throwing scope', () => {
      expect(() =>
        scope(() => {
          tensor([1, 2, 3]);
          throw new Error('boom');
        }),
      ).toThrow('boom');
    });
    await assertNoLeak('throwing async scope', async () => {
      await expect(
        scopeAsync(async () => {
          tensor([1, 2, 3]);
          throw new Error('async boom');
        }),
      ).rejects.toThrow('async boom');
    });
  });

  it('two interleaved async scopes: the one that ends out of order throws, releases its tensors and leaves the stack', async () => {
    const depth = openScopeCount();
    let releaseB!: () => void;
    const bWaits = new Promise<void>((resolve) => (releaseB = resolve));
    let madeInA: Tensor | null = null;
    // A opens, then B opens on top of it; A ends while B is still open.
    const a = scopeAsync(async () => {
      madeInA = tensor([1, 2]);
      await Promise.resolve();
    });
    const b = scopeAsync(async () => {
      await bWaits;
      return 1;
    });
    await expect(a).rejects.toThrow(/out of order/);
    expect(madeInA!.released).toBe(true);
    releaseB();
    await expect(b).resolves.toBe(1);
    expect(openScopeCount()).toBe(depth);
  });

  it('refuses an async function in scope(), pointing to scopeAsync()', () => {
    expect(() => scope(async () => 1)).toThrow(/scopeAsync/);
  });

  it('disposing twice is harmless and does not return the buffer to the pool twice', () => {
    const before = memorySnapshot();
    const t = tensor([1, 2]).keep();
    t.dispose();
    t.dispose();
    expect(memorySnapshot()).toMatchObject({ liveBytes: before.liveBytes, liveBuffers: before.liveBuffers });
  });
});

describe('views', () => {
  it('reshape and flatten share the buffer; the buffer stays alive until the last view is released', async () => {
    const before = memorySnapshot();
    const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]).keep();
    const v = reshape(x, [3, 2]).keep();
    const f = scope(() => flatten(reshape(x, [2, 1, 3])).keep()); // the intermediate view is released
    expect(v.buffer).toBe(x.buffer);
    expect(f.buffer).toBe(x.buffer);
    expect(f.shape).toEqual([2, 3]);
    expect(memorySnapshot().liveBuffers).toBe(before.liveBuffers + 1);
    x.dispose();
    expect(x.released).toBe(true);
    expect(v.released).toBe(false);
    assertEqual(await v.toArray(), [1, 2, 3, 4, 5, 6]);
    v.dispose();
    expect(memorySnapshot().liveBuffers).toBe(before.liveBuffers + 1);
    f.dispose();
    expect(memorySnapshot().liveBytes).toBe(before.liveBytes);
  });

  it('a write through one view is seen through the other (they are the same memory)', async () => {
    await scopeAsync(async () => {
      const x = tensor([1, 2, 3, 4], [2, 2]);
      accumulate_(reshape(x, [4]), tensor([10, 20, 30, 40]));
      assertEqual(await x.toArray(), [11, 22, 33, 44]);
    });
  });

  it('rejects a view of a different size, and a reshape with two -1s, naming the shapes', () => {
    scope(() => {
      const x = Tensor.empty([2, 3]);
      expect(() => reshape(x, [4, 2])).toThrow(/cannot reshape \[2, 3\] f32 to \[4, 2\]/);
      expect(() => reshape(x, [-1, -1])).toThrow(/at most one -1/);
      expect(() => x.viewAs([5])).toThrow(/\[2, 3\] f32 as \[5\]: sizes differ \(6 vs 5\)/);
      expect(reshape(x, [-1]).shape).toEqual([6]);
    });
  });
});
