// 2-D convolution, NCHW, f32, on any WebGPU device (see src/ops/conv2d.ts). conv2d_subgroup.wgsl has
// the same kernels with the shared operand exchanged by subgroup shuffles; these load it in every lane.
// Implicit GEMM: rows are channels, columns are positions (or weight taps for backward_weight); each
// invocation keeps a TM × TN block of outputs in registers. No workgroup memory: on CPU drivers
// (lavapipe) it costs as much as a storage load, and the caches already do its job.
//
// Kernel size and stride are override constants, so the tap loops have constant trip counts and the
// compiler unrolls them; channel counts and spatial sizes stay uniforms (one pipeline per kernel shape
// serves every width, compacted ones included).

struct Dims {
  batch: u32, in_channels: u32, out_channels: u32,
  in_h: u32, in_w: u32, out_h: u32, out_w: u32,
  kernel_h: u32, kernel_w: u32, stride: u32, padding: u32,
  // backward_weight: how many samples each partial sum covers.
  samples_per_split: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> dw: array<f32>;
@group(0) @binding(7) var<storage, read_write> wt: array<f32>;
@group(0) @binding(8) var<storage, read> w_quads: array<vec4f>;
@group(0) @binding(9) var<storage, read_write> wt4: array<vec4f>;

override WG: u32 = 64u;
override KH: u32 = 3u;
override KW: u32 = 3u;
override STRIDE: u32 = 1u;
// Consecutive output columns per invocation (≤ TN_MAX); forward needs (TN − 1)·STRIDE + KW ≤ X_MAX.
override TN: u32 = 8u;
// Channel rows per invocation (≤ TM_MAX); every lane loads all of them.
override TM: u32 = 4u;
const TM_MAX = 8u;
const TN_MAX = 8u;
const X_MAX = 32u;
const KW_MAX = 8u;

// y[n, co, oy, ox0 .. ox0+TN) for co in a block of TM. Workgroup = TM output channels (wid.y) × WG
// tiles of TN columns of one output row. Per (ci, ky) a lane loads the (TN−1)·STRIDE + KW inputs its
// tile touches once and reuses them across the KW taps.
@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let tiles_w = (dims.out_w + TN - 1u) / TN;
  let tiles = dims.batch * dims.out_h * tiles_w;
  let index = wid.x * WG + li;
  let tile = min(index, tiles - 1u);
  let ox0 = (tile % tiles_w) * TN;
  let oy = (tile / tiles_w) % dims.out_h;
  let n = tile / (tiles_w * dims.out_h);
  let m0 = wid.y * TM;
  let cin = dims.in_channels;
  let iy0 = i32(oy * STRIDE) - i32(dims.padding);
  let ix0 = i32(ox0 * STRIDE) - i32(dims.padding);
  let xn = (TN - 1u) * STRIDE + KW;
  var wrow: array<u32, TM_MAX>;
  for (var q = 0u; q < TM; q++) {
    wrow[q] = min(m0 + q, dims.out_channels - 1u) * cin * KH * KW;
  }
  var acc: array<array<f32, TN_MAX>, TM_MAX>;
  for (var ci = 0u; ci < cin; ci++) {
    for (var ky = 0u; ky < KH; ky++) {
      let iy = iy0 + i32(ky);
      let row_ok = iy >= 0 && iy < i32(dims.in_h);
      let row = ((n * cin + ci) * dims.in_h + u32(clamp(iy, 0, i32(dims.in_h) - 1))) * dims.in_w;
      var xv: array<f32, X_MAX>;
      for (var j = 0u; j < xn; j++) {
        let ix = ix0 + i32(j);
        let ok = row_ok && ix >= 0 && ix < i32(dims.in_w);
        xv[j] = select(0.0, x[select(0u, row + u32(ix), ok)], ok);
      }
      let tap = (ci * KH + ky) * KW;
      for (var kx = 0u; kx < KW; kx++) {
        var wl: array<f32, TM_MAX>;
        for (var q = 0u; q < TM; q++) { wl[q] = w[wrow[q] + tap + kx]; }
        for (var r = 0u; r < TM; r++) {
          let a = wl[r];
          for (var t = 0u; t < TN; t++) { acc[r][t] = fma(a, xv[t * STRIDE + kx], acc[r][t]); }
        }
      }
    }
  }
  if (index >= tiles) { return; }
  for (var r = 0u; r < TM; r++) {
    let co = m0 + r;
    if (co >= dims.out_channels) { break; }
    let base = ((n * dims.out_channels + co) * dims.out_h + oy) * dims.out_w;
    for (var t = 0u; t < TN; t++) {
      if (ox0 + t < dims.out_w) { y[base + ox0 + t] = acc[r][t]; }
    }
  }
}

// dx[n, ci, iy, ix] = Σ dy[n, co, oy, ox] · w[co, ci, ky, kx] over iy = oy·STRIDE + ky − p (any stride;
// stride 1 goes through forward with flipped weights instead). The positions are split into the
// STRIDE² classes (iy mod STRIDE, ix mod STRIDE) = wid.z: within a class, whether a tap (ky, kx) meets
// an integer oy, ox does not depend on the position, so taps that never do are skipped for the whole
// workgroup instead of being computed as zeros. Workgroup = TM input channels (wid.y) × WG tiles of
// TN columns ix = px + STRIDE·j of one class row.
@compute @workgroup_size(WG)
fn backward_input(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let s = i32(STRIDE);
  let py = wid.z / STRIDE;
  let px = wid.z % STRIDE;
  let class_h = (dims.in_h + STRIDE - 1u) / STRIDE;
  let class_w = (dims.in_w + STRIDE - 1u) / STRIDE;
  let tiles_w = (class_w + TN - 1u) / TN;
  let tiles = dims.batch * class_h * tiles_w;
  let index = wid.x * WG + li;
  let tile = min(index, tiles - 1u);
  let j0 = (tile % tiles_w) * TN;
  let a = (tile / tiles_w) % class_h;
  let n = tile / (tiles_w * class_h);
  let m0 = wid.y * TM;
  let cin = dims.in_channels;
  let cout = dims.out_channels;
  var wrow: array<u32, TM_MAX>;
  for (var q = 0u; q < TM; q++) {
    wrow[q] = min(m0 + q, cin - 1u) * KH * KW;
  }
  var acc: array<array<f32, TN_MAX>, TM_MAX>;
  for (var co = 0u; co < cout; co++) {
    let plane = (n * cout + co) * dims.out_h;
    for (var ky = 0u; ky < KH; ky++) {
      // iy + p − ky = a·STRIDE + dky: a multiple of STRIDE for every row of the class, or for none.
      let dky = i32(py + dims.padding) - i32(ky);
      if (((dky % s) + s) % s != 0) { continue; }
      let oy = i32(a) + dky / s;
      let row_ok = oy >= 0 && oy < i32(dims.out_h);
      let row = (plane + u32(clamp(oy, 0, i32(dims.out_h) - 1))) * dims.out_w;
      for (var kx = 0u; kx < KW; kx++) {
        let dkx = i32(px + dims.padding) - i32(kx);
        if (((dkx % s) + s) % s != 0) { continue; }
        let ox0 = i32(j0) + dkx / s;
        var dv: array<f32, TN_MAX>;
        for (var t = 0u; t < TN; t++) {
          let ox = ox0 + i32(t);
          let ok = row_ok && ox >= 0 && ox < i32(dims.out_w);
          dv[t] = select(0.0, dy[select(0u, row + u32(ox), ok)], ok);
        }
        var wl: array<f32, TM_MAX>;
        for (var q = 0u; q < TM; q++) { wl[q] = w[co * cin * KH * KW + wrow[q] + ky * KW + kx]; }
        for (var r = 0u; r < TM; r++) {
          let v = wl[r];
          for (var t = 0u; t < TN; t++) { acc[r][t] = fma(v, dv[t], acc[r][t]); }
        }
      }
    }
  }
  let iy = py + a * STRIDE;
  if (index >= tiles || iy >= dims.in_h) { return; }
  for (var r = 0u; r < TM; r++) {
    let ci = m0 + r;
    if (ci >= cin) { break; }
    let base = ((n * cin + ci) * dims.in_h + iy) * dims.in_w;
    for (var t = 0u; t < TN; t++) {
      let ix = px + (j0 + t) * STRIDE;
      if (ix < dims.in_w) { dx[base + ix] = acc[r][t]; }
    }
  }
}

// Partial weight gradients dw_part[split, co, ci, ky, kx] = Σ over the split's samples and all output
// positions of dy[n, co, oy, ox] · x[n, ci, oy·STRIDE + ky − p, ox·STRIDE + kx − p]. Workgroup = TM
// output channels (wid.y) × WG columns (ci, ky), each holding the KW taps of one kernel row, for split
// wid.z. Walking ox in order, a lane keeps the KW inputs of its row in a sliding window and loads only
// the STRIDE new ones per position. src/ops/conv2d.ts sums the splits in a fixed order (reduce.wgsl).
@compute @workgroup_size(WG)
fn backward_weight(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32) {
  let cin = dims.in_channels;
  let cout = dims.out_channels;
  let columns = cin * KH;
  let index = wid.x * WG + li;
  let column = min(index, columns - 1u);
  let ci = column / KH;
  let ky = column % KH;
  let m0 = wid.y * TM;
  var rows: array<u32, TM_MAX>;
  for (var q = 0u; q < TM; q++) { rows[q] = min(m0 + q, cout - 1u); }
  let s = i32(STRIDE);
  let p = i32(dims.padding);
  var acc: array<array<f32, KW_MAX>, TM_MAX>;
  let n_end = min((wid.z + 1u) * dims.samples_per_split, dims.batch);
  for (var n = wid.z * dims.samples_per_split; n < n_end; n++) {
    for (var oy = 0u; oy < dims.out_h; oy++) {
      let iy = i32(oy) * s + i32(ky) - p;
      let row_ok = iy >= 0 && iy < i32(dims.in_h);
      let row = ((n * cin + ci) * dims.in_h + u32(clamp(iy, 0, i32(dims.in_h) - 1))) * dims.in_w;
      // The window for "ox = −1", so that the first step shifts in the inputs of ox = 0.
      var xw: array<f32, KW_MAX>;
      for (var kx = 0u; kx < KW; kx++) {
        let ix = i32(kx) - s - p;
        let ok = row_ok && ix >= 0 && ix < i32(dims.in_w);
        xw[kx] = select(0.0, x[select(0u, row + u32(ix), ok)], ok);
      }
      for (var ox = 0u; ox < dims.out_w; ox++) {
        for (var kx = 0u; kx < KW; kx++) {
          if (kx + STRIDE < KW) {
            xw[kx] = xw[kx + STRIDE];
          } else {
            let ix = i32(ox) * s + i32(kx) - p;
            let ok = row_ok && ix >= 0 && ix < i32(dims.in_w);
            xw[kx] = select(0.0, x[select(0u, row + u32(ix), ok)], ok);
          }
        }
        var dl: array<f32, TM_MAX>;
        for (var q = 0u; q < TM; q++) {
          dl[q] = dy[((n * cout + rows[q]) * dims.out_h + oy) * dims.out_w + ox];
        }
        for (var r = 0u; r < TM; r++) {
          let d = dl[r];
          for (var kx = 0u; kx < KW; kx++) { acc[r][kx] = fma(d, xw[kx], acc[r][kx]); }
        }
      }
    }
  }
  if (index >= columns) { return; }
  let taps = cin * KH * KW;
  for (var r = 0u; r < TM; r++) {
    let co = m0 + r;
    if (co >= cout) { break; }
    let base = (wid.z * cout + co) * taps + column * KW;
    for (var kx = 0u; kx < KW; kx++) { dw[base + kx] = acc[r][kx]; }
  }
}

// wt[ci, co, ky, kx] = w[co, ci, KH−1−ky, KW−1−kx]: the weights of the stride-1 backward_input, which
// is then a forward convolution of dy with wt and padding KH−1−p. One invocation per element.
@compute @workgroup_size(WG)
fn backward_input_weights(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  let kk = KH * KW;
  if (i >= dims.out_channels * dims.in_channels * kk) { return; }
  let tap = i % kk;
  let co = (i / kk) % dims.out_channels;
  let ci = i / (kk * dims.out_channels);
  wt[i] = w[(co * dims.in_channels + ci) * kk + kk - 1u - tap];
}

// w4 for conv2d_subgroup.wgsl's 3×3 kernels: packed[(a·B + b)·12 + ky·4 + kx] = w[a, b, ky, kx] and 0 for
// kx = 3. With FLIP, a = ci and b = co and the taps are rotated by 180° (the weights of backward_input
// as a forward convolution, like backward_input_weights).
override FLIP: bool = false;

@compute @workgroup_size(WG)
fn pack_3x3(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= dims.out_channels * dims.in_channels * 12u) { return; }
  let kx = i % 4u;
  let ky = (i / 4u) % 3u;
  let pair = i / 12u;
  var source: u32;
  if (FLIP) {
    let co = pair % dims.out_channels;
    let ci = pair / dims.out_channels;
    source = (co * dims.in_channels + ci) * 9u + (2u - ky) * 3u + 2u - min(kx, 2u);
  } else {
    source = pair * 9u + ky * 3u + min(kx, 2u);
  }
  wt[i] = select(w[source], 0.0, kx == 3u);
}

// pack_3x3 four filters at a time, where out_channels · in_channels is a multiple of 4: the 36 weights of
// four consecutive (co, ci) pairs of w are 9 vec4s, and each pair's packed weights 3 vec4s, so an
// invocation makes 9 loads and 12 stores where pack_3x3 makes 48 of each (on lavapipe a storage access
// costs the same at any width, and packing took a third of a batch-1 forward).
@compute @workgroup_size(WG)
fn pack_3x3_quads(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let quad = gid.x + gid.y * nwg.x * WG;
  if (quad * 4u >= dims.out_channels * dims.in_channels) { return; }
  var f: array<f32, 36>;
  for (var j = 0u; j < 9u; j++) {
    let v = w_quads[quad * 9u + j];
    f[4u * j] = v.x;
    f[4u * j + 1u] = v.y;
    f[4u * j + 2u] = v.z;
    f[4u * j + 3u] = v.w;
  }
  for (var p = 0u; p < 4u; p++) {
    let source = quad * 4u + p;
    let t = 9u * p;
    if (FLIP) {
      let co = source / dims.in_channels;
      let ci = source % dims.in_channels;
      let dest = 3u * (ci * dims.out_channels + co);
      wt4[dest] = vec4f(f[t + 8u], f[t + 7u], f[t + 6u], 0.0);
      wt4[dest + 1u] = vec4f(f[t + 5u], f[t + 4u], f[t + 3u], 0.0);
      wt4[dest + 2u] = vec4f(f[t + 2u], f[t + 1u], f[t], 0.0);
    } else {
      let dest = 3u * source;
      wt4[dest] = vec4f(f[t], f[t + 1u], f[t + 2u], 0.0);
      wt4[dest + 1u] = vec4f(f[t + 3u], f[t + 4u], f[t + 5u], 0.0);
      wt4[dest + 2u] = vec4f(f[t + 6u], f[t + 7u], f[t + 8u], 0.0);
    }
  }
}
