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
