/**
 * Float64 reference for the CIFAR ResNet of src/models/resnet.ts (SFP's resnet.py with torchvision
 * names): conv1 → bn1+ReLU → 3 stages of n = (depth − 2)/6 basic blocks (conv → BN+ReLU → conv → BN,
 * plus the identity or the option-A shortcut, then ReLU) → global average pool → fc.
 *
 * It composes the op references (batchnorm.ts, pool.ts, shortcut.ts) and records a tape, so that one
 * backward gives the gradient of Σ dlogits ⊙ logits for every parameter; the model test checks that
 * backward against finite differences of the forward at sampled coordinates. The convolution is a
 * private plain loop here: test/reference/conv2d.ts belongs to the conv2d work.
 */
import * as bn from './batchnorm.js';
import * as pool from './pool.js';
import * as shortcut from './shortcut.js';

export interface RefTensor {
  data: Float64Array;
  shape: number[];
}

export interface CifarResNetConfig {
  depth: number;
  widths: readonly number[];
  numClasses: number;
}

/** A value on the tape: its data and, after backward, the gradient of the loss with respect to it. */
interface Value extends RefTensor {
  grad: Float64Array | null;
}

function gradOf(v: Value): Float64Array {
  return (v.grad ??= new Float64Array(v.data.length));
}

/** y[n, co, oy, ox] = Σ_ci,ky,kx w[co, ci, ky, kx] · x[n, ci, oy·s − p + ky, ox·s − p + kx] (zero outside). */
function conv2dForward(x: RefTensor, w: RefTensor, stride: number, padding: number): RefTensor {
  const [batch, inC, inH, inW] = x.shape;
  const [outC, , k] = w.shape;
  const outH = Math.floor((inH + 2 * padding - k) / stride) + 1;
  const outW = Math.floor((inW + 2 * padding - k) / stride) + 1;
  const y = new Float64Array(batch * outC * outH * outW);
  for (let n = 0; n < batch; n++) {
    for (let co = 0; co < outC; co++) {
      for (let oy = 0; oy < outH; oy++) {
        for (let ox = 0; ox < outW; ox++) {
          let acc = 0;
          for (let ci = 0; ci < inC; ci++) {
            for (let ky = 0; ky < k; ky++) {
              const iy = oy * stride - padding + ky;
              if (iy < 0 || iy >= inH) continue;
              for (let kx = 0; kx < k; kx++) {
                const ix = ox * stride - padding + kx;
                if (ix < 0 || ix >= inW) continue;
                acc += w.data[((co * inC + ci) * k + ky) * k + kx] * x.data[((n * inC + ci) * inH + iy) * inW + ix];
              }
            }
          }
          y[((n * outC + co) * outH + oy) * outW + ox] = acc;
        }
      }
    }
  }
  return { data: y, shape: [batch, outC, outH, outW] };
}

/** Calls f(output index, input index, weight index) for every product the convolution sums (the backward's loop). */
function forEachTap(xShape: number[], wShape: number[], stride: number, padding: number, f: (yi: number, xi: number, wi: number) => void): void {
  const [batch, inC, inH, inW] = xShape;
  const [outC, , k] = wShape;
  const outH = Math.floor((inH + 2 * padding - k) / stride) + 1;
  const outW = Math.floor((inW + 2 * padding - k) / stride) + 1;
  for (let n = 0; n < batch; n++) {
    for (let co = 0; co < outC; co++) {
      for (let oy = 0; oy < outH; oy++) {
        for (let ox = 0; ox < outW; ox++) {
          const yi = ((n * outC + co) * outH + oy) * outW + ox;
          for (let ci = 0; ci < inC; ci++) {
            for (let ky = 0; ky < k; ky++) {
              const iy = oy * stride - padding + ky;
              if (iy < 0 || iy >= inH) continue;
              for (let kx = 0; kx < k; kx++) {
                const ix = ox * stride - padding + kx;
                if (ix < 0 || ix >= inW) continue;
                f(yi, ((n * inC + ci) * inH + iy) * inW + ix, ((co * inC + ci) * k + ky) * k + kx);
              }
            }
          }
        }
      }
    }
  }
}

export interface ReferenceRun {
  logits: RefTensor;
  /** running_mean / running_var after this forward (training mode moves them). */
  buffers: Map<string, Float64Array>;
  /** Gradients of Σ dlogits ⊙ logits for every parameter, by state-dict name (call once per run). */
  backward(dlogits: ArrayLike<number>): Map<string, Float64Array>;
}

/**
 * Runs the model on x with the parameters and buffers of `state` (state-dict names → values).
 * `training` selects batch statistics (and updates the returned running statistics) or running ones.
 */
export function cifarResNet(state: ReadonlyMap<string, RefTensor>, config: CifarResNetConfig, x: RefTensor, training: boolean): ReferenceRun {
  const { depth, widths } = config;
  const steps: (() => void)[] = [];
  const paramGrads = new Map<string, Float64Array>();
  const buffers = new Map<string, Float64Array>();
  const get = (name: string): RefTensor => {
    const t = state.get(name);
    if (!t) throw new Error(`reference ResNet: no ${name} in the state`);
    return t;
  };
  const paramGrad = (name: string): Float64Array => {
    let g = paramGrads.get(name);
    if (!g) paramGrads.set(name, (g = new Float64Array(get(name).data.length)));
    return g;
  };
  const value = (t: RefTensor): Value => ({ ...t, grad: null });

  const conv = (v: Value, name: string, stride: number, padding: number): Value => {
    const w = get(`${name}.weight`);
    const out = value(conv2dForward(v, w, stride, padding));
    steps.push(() => {
      if (!out.grad) return;
      const dy = out.grad;
      const dx = gradOf(v);
      const dw = paramGrad(`${name}.weight`);
      forEachTap(v.shape, w.shape, stride, padding, (yi, xi, wi) => {
        dx[xi] += w.data[wi] * dy[yi];
        dw[wi] += v.data[xi] * dy[yi];
      });
    });
    return out;
  };

  const batchNorm = (v: Value, name: string, relu: boolean): Value => {
    const gamma = get(`${name}.weight`).data;
    const beta = get(`${name}.bias`).data;
    const result = bn.batchNorm2d(v.data, v.shape, gamma, beta, get(`${name}.running_mean`).data, get(`${name}.running_var`).data, { training, relu });
    buffers.set(`${name}.running_mean`, result.runningMean);
    buffers.set(`${name}.running_var`, result.runningVar);
    const out = value({ data: result.y, shape: v.shape });
    steps.push(() => {
      if (!out.grad) return;
      const g = bn.batchNorm2dBackward(v.data, v.shape, gamma, beta, result, out.grad, { training, relu });
      const dx = gradOf(v);
      for (let i = 0; i < dx.length; i++) dx[i] += g.dx[i];
      const dgamma = paramGrad(`${name}.weight`);
      const dbeta = paramGrad(`${name}.bias`);
      for (let c = 0; c < gamma.length; c++) {
        dgamma[c] += g.dgamma[c];
        dbeta[c] += g.dbeta[c];
      }
    });
    return out;
  };

  /** relu(a + b): the gradient passes to both where the sum is positive. */
  const addRelu = (a: Value, b: Value): Value => {
    const out = value({ data: a.data.map((v, i) => Math.max(v + b.data[i], 0)), shape: a.shape });
    steps.push(() => {
      if (!out.grad) return;
      const da = gradOf(a);
      const db = gradOf(b);
      for (let i = 0; i < da.length; i++) {
        if (a.data[i] + b.data[i] > 0) {
          da[i] += out.grad[i];
          db[i] += out.grad[i];
        }
      }
    });
    return out;
  };

  const downsample = (v: Value, outChannels: number, stride: number): Value => {
    const out = value(shortcut.shortcutA(v.data, v.shape, outChannels, stride));
    steps.push(() => {
      if (!out.grad) return;
      const d = shortcut.shortcutABackward(out.grad, v.shape, outChannels, stride);
      const dx = gradOf(v);
      for (let i = 0; i < dx.length; i++) dx[i] += d[i];
    });
    return out;
  };

  const globalAvgPool = (v: Value): Value => {
    const out = value({ data: pool.globalAvgPool(v.data, v.shape), shape: v.shape.slice(0, 2) });
    steps.push(() => {
      if (!out.grad) return;
      const d = pool.globalAvgPoolBackward(out.grad, v.shape);
      const dx = gradOf(v);
      for (let i = 0; i < dx.length; i++) dx[i] += d[i];
    });
    return out;
  };

  /** y = v·Wᵀ + b with W [out, in]. */
  const linear = (v: Value, name: string): Value => {
    const w = get(`${name}.weight`);
    const b = get(`${name}.bias`).data;
    const [rows, inF] = v.shape;
    const outF = w.shape[0];
    const y = new Float64Array(rows * outF);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < outF; o++) {
        let acc = b[o];
        for (let i = 0; i < inF; i++) acc += v.data[r * inF + i] * w.data[o * inF + i];
        y[r * outF + o] = acc;
      }
    }
    const out = value({ data: y, shape: [rows, outF] });
    steps.push(() => {
      if (!out.grad) return;
      const dx = gradOf(v);
      const dw = paramGrad(`${name}.weight`);
      const db = paramGrad(`${name}.bias`);
      for (let r = 0; r < rows; r++) {
        for (let o = 0; o < outF; o++) {
          const g = out.grad[r * outF + o];
          db[o] += g;
          for (let i = 0; i < inF; i++) {
            dx[r * inF + i] += g * w.data[o * inF + i];
            dw[o * inF + i] += g * v.data[r * inF + i];
          }
        }
      }
    });
    return out;
  };

  const n = (depth - 2) / 6;
  let h = batchNorm(conv(value(x), 'conv1', 1, 1), 'bn1', true);
  widths.forEach((width, s) => {
    for (let b = 0; b < n; b++) {
      const name = `layer${s + 1}.${b}`;
      const stride = s > 0 && b === 0 ? 2 : 1;
      const inChannels = h.shape[1];
      const t = batchNorm(conv(h, `${name}.conv1`, stride, 1), `${name}.bn1`, true);
      const out = batchNorm(conv(t, `${name}.conv2`, 1, 1), `${name}.bn2`, false);
      const residual = stride !== 1 || inChannels !== width ? downsample(h, width, stride) : h;
      h = addRelu(out, residual);
    }
  });
  const logits = linear(globalAvgPool(h), 'fc');

  return {
    logits: { data: logits.data, shape: logits.shape },
    buffers,
    backward(dlogits) {
      logits.grad = Float64Array.from(dlogits);
      for (let i = steps.length - 1; i >= 0; i--) steps[i]();
      return paramGrads;
    },
  };
}
