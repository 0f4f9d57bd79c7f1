/** Float64 reference for src/ops/conv2d.ts: 2-D convolution, NCHW, and its two gradients, as plain loops. */

export interface Conv2dShape {
  batch: number;
  inChannels: number;
  inH: number;
  inW: number;
  outChannels: number;
  kernel: number;
  stride: number;
  padding: number;
}

export function outSize(s: Conv2dShape): { outH: number; outW: number } {
  return {
    outH: Math.floor((s.inH + 2 * s.padding - s.kernel) / s.stride) + 1,
    outW: Math.floor((s.inW + 2 * s.padding - s.kernel) / s.stride) + 1,
  };
}

/**
 * Visits every (n, co, oy, ox, ci, ky, kx) whose input position iy = oy·s + ky − p, ix = ox·s + kx − p
 * lies inside the image, with the flat indices of y, x and w: all three functions are this one sum.
 */
function eachTerm(s: Conv2dShape, visit: (yi: number, xi: number, wi: number) => void): void {
  const { batch, inChannels: cin, inH, inW, outChannels: cout, kernel: k, stride, padding } = s;
  const { outH, outW } = outSize(s);
  for (let n = 0; n < batch; n++) {
    for (let co = 0; co < cout; co++) {
      for (let oy = 0; oy < outH; oy++) {
        for (let ox = 0; ox < outW; ox++) {
          const yi = ((n * cout + co) * outH + oy) * outW + ox;
          for (let ci = 0; ci < cin; ci++) {
            for (let ky = 0; ky < k; ky++) {
              const iy = oy * stride + ky - padding;
              if (iy < 0 || iy >= inH) continue;
              for (let kx = 0; kx < k; kx++) {
                const ix = ox * stride + kx - padding;
                if (ix < 0 || ix >= inW) continue;
                visit(yi, ((n * cin + ci) * inH + iy) * inW + ix, ((co * cin + ci) * k + ky) * k + kx);
              }
            }
          }
        }
      }
    }
  }
}

/** y[n, co, oy, ox] = Σ_{ci, ky, kx} x[n, ci, oy·s + ky − p, ox·s + kx − p] · w[co, ci, ky, kx]. */
export function conv2d(x: ArrayLike<number>, w: ArrayLike<number>, s: Conv2dShape): Float64Array {
  const { outH, outW } = outSize(s);
  const y = new Float64Array(s.batch * s.outChannels * outH * outW);
  eachTerm(s, (yi, xi, wi) => (y[yi] += x[xi] * w[wi]));
  return y;
}

/** dx = ∂(Σ dy ⊙ y)/∂x: each term x·w sends dy·w back to its x. */
export function conv2dBackwardInput(dy: ArrayLike<number>, w: ArrayLike<number>, s: Conv2dShape): Float64Array {
  const dx = new Float64Array(s.batch * s.inChannels * s.inH * s.inW);
  eachTerm(s, (yi, xi, wi) => (dx[xi] += dy[yi] * w[wi]));
  return dx;
}

/** dw = ∂(Σ dy ⊙ y)/∂w: each term x·w sends dy·x back to its w. */
export function conv2dBackwardWeight(dy: ArrayLike<number>, x: ArrayLike<number>, s: Conv2dShape): Float64Array {
  const dw = new Float64Array(s.outChannels * s.inChannels * s.kernel * s.kernel);
  eachTerm(s, (yi, xi, wi) => (dw[wi] += dy[yi] * x[xi]));
  return dw;
}

/**
 * A bias map [C, H, W] by border class (row and column: first, between, last): [C, 3, 4] with
 * (left, middle, right, ok) per row class, each value taken at the class's first position; ok = 1 where
 * every position of the channel holds its class's value exactly (bit for bit, so −0 ≠ +0).
 */
export function biasMapClasses(map: Float32Array, channels: number, h: number, w: number): Float32Array {
  const cls = (i: number, size: number) => (i === 0 ? 0 : i === size - 1 ? 2 : 1);
  const first = (k: number, size: number) => Math.min(k === 2 ? size - 1 : k, size - 1);
  const bits = new Uint32Array(map.buffer, map.byteOffset, map.length);
  const table = new Float32Array(channels * 12);
  for (let c = 0; c < channels; c++) {
    const at = (y: number, x: number) => c * h * w + y * w + x;
    let ok = true;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (bits[at(y, x)] !== bits[at(first(cls(y, h), h), first(cls(x, w), w))]) ok = false;
      }
    }
    for (let r = 0; r < 3; r++) {
      for (let k = 0; k < 3; k++) table[c * 12 + r * 4 + k] = map[at(first(r, h), first(k, w))];
      table[c * 12 + r * 4 + 3] = ok ? 1 : 0;
    }
  }
  return table;
}
