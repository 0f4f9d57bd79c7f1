// 2-D convolution, NCHW, f32, with subgroup shuffles (see src/ops/conv2d.ts; the portable fallback is
// conv2d.wgsl). Implicit GEMM: rows are channels, columns are positions (or weight taps for
// backward_weight). The operand shared by a row block (weights, or dy for backward_weight) is loaded
// once per subgroup, one row per lane, and handed to every lane with subgroupShuffle: on lavapipe a
// load whose index is not a compile-time constant costs a loop over the SIMD lanes, a shuffle with a
// constant lane after unrolling costs a register permute.
//
// Kernel size and stride are override constants, so the tap loops have constant trip counts and the
// compiler unrolls them; channel counts and spatial sizes stay uniforms (one pipeline per kernel shape
// serves every width, compacted ones included). Correct for any subgroup size SG, which must equal the
// pipeline's (one that runs at another width writes NaN); every subgroup op sits in uniform control flow
// (no early return).
enable subgroups;

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

override WG: u32 = 64u;
override SG: u32 = 8u;
override KH: u32 = 3u;
override KW: u32 = 3u;
override STRIDE: u32 = 1u;
// Consecutive output columns per invocation (≤ TN_MAX); forward needs (TN − 1)·STRIDE + KW ≤ X_MAX.
override TN: u32 = 4u;
// Channel rows per workgroup (≤ TM_MAX); each lane loads ceil(TM / SG) of them.
override TM: u32 = 16u;
const TM_MAX = 16u;
const TN_MAX = 8u;
const X_MAX = 32u;
const KW_MAX = 8u;

// A driver may run a pipeline in subgroups of another width than the adapter reports (register pressure can
// make it compile one narrower), or number its lanes otherwise than lane = local index mod SG (the start-up
// check also tests that neighbouring lanes are consecutive invocations; each invocation here tests only its
// own number); every index below assumes both, so such a pipeline writes NaN, loudly, instead of numbers
// from lanes that do not hold what the indexing expects.
fn lanes_checked(v: f32, sg_size: u32, lane: u32, li: u32) -> f32 {
  return select(bitcast<f32>(0x7fc00000u | (sg_size & 0u)), v, sg_size == SG && lane == li % SG);
}
fn lanes_checked4(v: vec4f, sg_size: u32, lane: u32, li: u32) -> vec4f {
  return select(vec4f(bitcast<f32>(0x7fc00000u | (sg_size & 0u))), v, sg_size == SG && lane == li % SG);
}

// y[n, co, oy, ox0 .. ox0+TN) for co in a block of TM. Workgroup = TM output channels (wid.y) × WG
// tiles of TN columns of one output row. Per (ci, ky) a lane loads the (TN−1)·STRIDE + KW inputs its
// tile touches once and reuses them across the KW taps.
@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32,
           @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sg_size: u32) {
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
  let loads = (TM + SG - 1u) / SG;
  var wrow: array<u32, TM_MAX>;
  for (var q = 0u; q < loads; q++) {
    wrow[q] = min(m0 + q * SG + lane, dims.out_channels - 1u) * cin * KH * KW;
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
        for (var q = 0u; q < loads; q++) { wl[q] = w[wrow[q] + tap + kx]; }
        for (var r = 0u; r < TM; r++) {
          let a = subgroupShuffle(wl[r / SG], r % SG);
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
      if (ox0 + t < dims.out_w) { y[base + ox0 + t] = lanes_checked(acc[r][t], sg_size, lane, li); }
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
fn backward_input(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32,
                  @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sg_size: u32) {
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
  let loads = (TM + SG - 1u) / SG;
  var wrow: array<u32, TM_MAX>;
  for (var q = 0u; q < loads; q++) {
    wrow[q] = min(m0 + q * SG + lane, cin - 1u) * KH * KW;
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
        for (var q = 0u; q < loads; q++) { wl[q] = w[co * cin * KH * KW + wrow[q] + ky * KW + kx]; }
        for (var r = 0u; r < TM; r++) {
          let v = subgroupShuffle(wl[r / SG], r % SG);
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
      if (ix < dims.in_w) { dx[base + ix] = lanes_checked(acc[r][t], sg_size, lane, li); }
    }
  }
}

// Partial weight gradients dw_part[split, co, ci, ky, kx] = Σ over the split's samples and all output
// positions of dy[n, co, oy, ox] · x[n, ci, oy·STRIDE + ky − p, ox·STRIDE + kx − p]. Workgroup = TM
// output channels (wid.y) × WG columns (ci, ky), each holding the KW taps of one kernel row, for split
// wid.z. Walking ox in order, a lane keeps the KW inputs of its row in a sliding window and loads only
// the STRIDE new ones per position. src/ops/conv2d.ts sums the splits in a fixed order (reduce.wgsl).
@compute @workgroup_size(WG)
fn backward_weight(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32,
                   @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sg_size: u32) {
  let cin = dims.in_channels;
  let cout = dims.out_channels;
  let columns = cin * KH;
  let index = wid.x * WG + li;
  let column = min(index, columns - 1u);
  let ci = column / KH;
  let ky = column % KH;
  let m0 = wid.y * TM;
  let loads = (TM + SG - 1u) / SG;
  var rows: array<u32, TM_MAX>;
  for (var q = 0u; q < loads; q++) { rows[q] = min(m0 + q * SG + lane, cout - 1u); }
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
        for (var q = 0u; q < loads; q++) {
          dl[q] = dy[((n * cout + rows[q]) * dims.out_h + oy) * dims.out_w + ox];
        }
        for (var r = 0u; r < TM; r++) {
          let d = subgroupShuffle(dl[r / SG], r % SG);
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
    for (var kx = 0u; kx < KW; kx++) { dw[base + kx] = lanes_checked(acc[r][kx], sg_size, lane, li); }
  }
}

// The 3×3, padding 1 convolutions that make up most of a CIFAR ResNet (stride 1, and stride 2 with
// in_w = 2·out_w), where out_w is a multiple of 4 and a subgroup covers whole rows (SG a multiple of
// out_w / 4). A lane owns 4 consecutive output columns of a row and reads the inputs under them as
// vec4s; the columns just outside, which the 3-wide taps also need, come from the neighbouring lanes by
// subgroupShuffleUp/Down (zero at the row's ends: the padding). One or two vec4 loads replace six or
// nine scalar ones, and scalar loads at varying addresses are what lavapipe pays for. Weights are packed by conv2d.wgsl's pack_3x3: w4[(co·cin + ci)·3
// + ky] = (w[co, ci, ky, 0..2], 0).
@group(0) @binding(7) var<storage, read> x4: array<vec4f>;
@group(0) @binding(8) var<storage, read> w4: array<vec4f>;
@group(0) @binding(12) var<storage, read_write> y4: array<vec4f>;

// Output rows per lane of forward_3x3 at stride 1 (1 or 2; stride 2 always runs 1). Two rows share the
// middle two of their four input rows and every weight shuffle: per input channel 4 row loads, 3
// weight loads and 3·TM shuffles serve 2·TM·9 vec4 multiply-adds instead of half as many.
override ROWS: u32 = 1u;

// The four output columns (of ROWS rows from oy) a lane of forward_3x3 owns; lanes past the end
// (valid = false) take the last tile's position so they still join the subgroup's shuffles.
struct Tile3x3 { valid: bool, n: u32, oy: u32, t: u32 }

fn tile_3x3(wid: vec3u, li: u32) -> Tile3x3 {
  let tiles_w = dims.out_w / 4u;
  let row_groups = dims.out_h / ROWS;
  let tiles = dims.batch * row_groups * tiles_w;
  let index = wid.x * WG + li;
  let tile = min(index, tiles - 1u);
  return Tile3x3(index < tiles, tile / (tiles_w * row_groups), ((tile / tiles_w) % row_groups) * ROWS, tile % tiles_w);
}

// The inputs under taps kx = 0, 1, 2 of a lane's four output columns, from input row iy (zeros outside).
struct Taps3 { x0: vec4f, x1: vec4f, x2: vec4f }

fn row_taps_3x3(tile: Tile3x3, ci: u32, iy: i32) -> Taps3 {
  let tiles_w = dims.out_w / 4u;
  let has_left = tile.t > 0u;
  let has_right = tile.t + 1u < tiles_w;
  let row_ok = iy >= 0 && iy < i32(dims.in_h);
  let row = ((tile.n * dims.in_channels + ci) * dims.in_h + u32(clamp(iy, 0, i32(dims.in_h) - 1))) * (dims.in_w / 4u) + tile.t * STRIDE;
  if (STRIDE == 1u) {
    // Columns 4t − 1 .. 4t + 4: one vec4 and a column from each neighbour.
    let x1 = select(vec4f(0.0), x4[row], row_ok);
    let l = subgroupShuffleUp(x1.w, 1u);
    let r = subgroupShuffleDown(x1.x, 1u);
    return Taps3(vec4f(select(0.0, l, has_left), x1.xyz), x1, vec4f(x1.yzw, select(0.0, r, has_right)));
  }
  // Stride 2: columns 8t − 1 .. 8t + 7, two vec4s and the left neighbour's last column.
  let a = select(vec4f(0.0), x4[row], row_ok);
  let b = select(vec4f(0.0), x4[row + 1u], row_ok);
  let l = subgroupShuffleUp(b.w, 1u);
  return Taps3(vec4f(select(0.0, l, has_left), a.y, a.w, b.y), vec4f(a.x, a.z, b.x, b.z), vec4f(a.y, a.w, b.y, b.w));
}

fn fma_taps(w: vec3f, x: Taps3, acc: vec4f) -> vec4f {
  return fma(vec4f(w.x), x.x0, fma(vec4f(w.y), x.x1, fma(vec4f(w.z), x.x2, acc)));
}

// Sums of rows m0 .. m0 + TM for the lane's outputs: `top` at row oy, `bottom` at oy + 1 (ROWS = 2).
struct Acc3x3 { top: array<vec4f, TM_MAX>, bottom: array<vec4f, TM_MAX> }

fn accumulate_3x3(tile: Tile3x3, m0: u32, lane: u32) -> Acc3x3 {
  let cin = dims.in_channels;
  let loads = (TM + SG - 1u) / SG;
  var wrow: array<u32, TM_MAX>;
  for (var q = 0u; q < loads; q++) {
    wrow[q] = min(m0 + q * SG + lane, dims.out_channels - 1u) * cin * 3u;
  }
  let iy0 = i32(tile.oy * STRIDE) - 1;
  var acc: Acc3x3;
  for (var ci = 0u; ci < cin; ci++) {
    // Input row iy0 + ky feeds row oy through tap ky and (two rows) row oy + 1 through tap ky − 1,
    // so with two rows each input row is loaded once and handed from `lower` to `upper`.
    var upper: Taps3;
    if (ROWS == 2u) { upper = row_taps_3x3(tile, ci, iy0); }
    for (var ky = 0u; ky < 3u; ky++) {
      var lower: Taps3;
      if (ROWS == 2u) {
        lower = row_taps_3x3(tile, ci, iy0 + i32(ky) + 1);
      } else {
        upper = row_taps_3x3(tile, ci, iy0 + i32(ky));
      }
      var wl: array<vec4f, TM_MAX>;
      for (var q = 0u; q < loads; q++) { wl[q] = w4[wrow[q] + ci * 3u + ky]; }
      for (var m = 0u; m < TM; m++) {
        let wv = subgroupShuffle(wl[m / SG].xyz, m % SG);
        acc.top[m] = fma_taps(wv, upper, acc.top[m]);
        if (ROWS == 2u) { acc.bottom[m] = fma_taps(wv, lower, acc.bottom[m]); }
      }
      if (ROWS == 2u) { upper = lower; }
    }
  }
  return acc;
}

// The epilogue, chosen by override constants: HAS_MAP adds a map [out_channels, out_h, out_w] to every
// sample (the bias that a compacted conv's constant input channels leave, prune/compact.ts); HAS_BN
// normalizes with batch norm's running statistics (evaluation mode) by the arithmetic of batchnorm.wgsl's
// eval_stats and normalize, so the values are those of the separate passes, and RELU follows it. Bindings
// an epilogue does not use still need a buffer (any will do).
@group(0) @binding(11) var<storage, read> bias_map4: array<vec4f>;
@group(0) @binding(13) var<storage, read> bn_mean: array<f32>;
@group(0) @binding(14) var<storage, read> bn_var: array<f32>;
@group(0) @binding(15) var<storage, read> bn_gamma: array<f32>;
@group(0) @binding(16) var<storage, read> bn_beta: array<f32>;
// With MAP_CLASSES (and HAS_MAP), the map's values by border class, as bias_map_classes writes them.
@group(0) @binding(17) var<storage, read> map_classes: array<vec4f>;
override HAS_MAP: bool = false;
override MAP_CLASSES: bool = false;
override HAS_BN: bool = false;
override RELU: bool = false;
override EPS: f32 = 1e-5;

// Border class of an output row or column of a 3×3, padding-1 conv: 0 first, 2 last, 1 between.
fn border_class(i: u32, size: u32) -> u32 {
  return select(select(1u, 2u, i + 1u == size), 0u, i == 0u);
}

@group(0) @binding(18) var<storage, read_write> map_classes_out: array<vec4f>;

// A bias map of constant input channels takes one value per border class of row and column (which taps
// fall on the padding): map_classes_out[c·3 + row class] = (left, middle, right, ok), ok = 1 where every
// position of channel c holds, bit for bit, its class's value. forward_3x3 then adds class values
// handed round by shuffles instead of loading the map for every output row (a gather per row on
// lavapipe), and loads it where ok = 0. One invocation per channel.
@compute @workgroup_size(WG)
fn bias_map_classes(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= dims.out_channels) { return; }
  let h = dims.out_h;
  let w = dims.out_w;
  let plane = c * h * w;
  // Each class's first position: row or column 0, 1 and the last (the last where the size leaves no 1).
  var values: array<array<f32, 3>, 3>;
  for (var r = 0u; r < 3u; r++) {
    let y = min(select(r, h - 1u, r == 2u), h - 1u);
    for (var k = 0u; k < 3u; k++) {
      let x = min(select(k, w - 1u, k == 2u), w - 1u);
      let i = plane + y * w + x;
      values[r][k] = bias_map4[i / 4u][i % 4u];
    }
  }
  var ok = true;
  for (var y = 0u; y < h; y++) {
    let r = border_class(y, h);
    for (var x = 0u; x < w; x++) {
      let i = plane + y * w + x;
      ok = ok && bitcast<u32>(bias_map4[i / 4u][i % 4u]) == bitcast<u32>(values[r][border_class(x, w)]);
    }
  }
  for (var r = 0u; r < 3u; r++) {
    map_classes_out[c * 3u + r] = vec4f(values[r][0], values[r][1], values[r][2], select(0.0, 1.0, ok));
  }
}

@compute @workgroup_size(WG)
fn forward_3x3(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32,
               @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sg_size: u32) {
  let tile = tile_3x3(wid, li);
  let m0 = wid.y * TM;
  let acc = accumulate_3x3(tile, m0, lane);
  // BN's scale and shift and the map's class values: each lane loads those of its rows (as it loads
  // weights), and every row gets them by shuffles, in uniform control flow; loading them per row would
  // cost a gather a row.
  var scale: array<f32, TM_MAX>;
  var shift: array<f32, TM_MAX>;
  if (HAS_BN) {
    var own_scale: array<f32, TM_MAX>;
    var own_shift: array<f32, TM_MAX>;
    for (var q = 0u; q < (TM + SG - 1u) / SG; q++) {
      let c = min(m0 + q * SG + lane, dims.out_channels - 1u);
      own_scale[q] = (1.0 / sqrt(bn_var[c] + EPS)) * bn_gamma[c];
      own_shift[q] = bn_beta[c] - bn_mean[c] * own_scale[q];
    }
    for (var m = 0u; m < TM; m++) {
      scale[m] = subgroupShuffle(own_scale[m / SG], m % SG);
      shift[m] = subgroupShuffle(own_shift[m / SG], m % SG);
    }
  }
  var own_classes: array<array<vec4f, 3>, TM_MAX>;
  if (HAS_MAP && MAP_CLASSES) {
    for (var q = 0u; q < (TM + SG - 1u) / SG; q++) {
      let c = min(m0 + q * SG + lane, dims.out_channels - 1u);
      for (var r = 0u; r < 3u; r++) { own_classes[q][r] = map_classes[c * 3u + r]; }
    }
  }
  let first_column = tile.t == 0u;
  let last_column = tile.t + 1u == dims.out_w / 4u;
  for (var m = 0u; m < TM; m++) {
    let co = m0 + m;
    if (co >= dims.out_channels) { break; }
    var classes: array<vec4f, 3>;
    if (HAS_MAP && MAP_CLASSES) {
      for (var r = 0u; r < 3u; r++) { classes[r] = subgroupShuffle(own_classes[m / SG][r], m % SG); }
    }
    for (var j = 0u; j < select(0u, ROWS, tile.valid); j++) {
      let position = ((co * dims.out_h + tile.oy + j) * dims.out_w) / 4u + tile.t;
      var v = select(acc.top[m], acc.bottom[m], j == 1u);
      if (HAS_MAP) {
        // classes[·].w (ok) is the same in every lane: the branch is uniform.
        if (MAP_CLASSES && classes[0].w != 0.0) {
          let row = classes[border_class(tile.oy + j, dims.out_h)];
          v = v + vec4f(select(row.y, row.x, first_column), row.y, row.y, select(row.y, row.z, last_column));
        } else {
          v = v + bias_map4[position];
        }
      }
      if (HAS_BN) { v = fma(v, vec4f(scale[m]), vec4f(shift[m])); }
      if (RELU) { v = max(v, vec4f(0.0)); }
      y4[tile.n * dims.out_channels * dims.out_h * dims.out_w / 4u + position] = lanes_checked4(v, sg_size, lane, li);
    }
  }
}

@group(0) @binding(9) var<storage, read> dy4: array<vec4f>;

// Partial weight gradients as in backward_weight, for the shapes of forward_3x3: a lane owns one
// (ci, ky) kernel row and walks the row of x four columns (one vec4) at a time, carrying the column
// left of the chunk from the previous step and loading the next chunk one step ahead; dy arrives as
// vec4 chunks too, one TM row block per subgroup, handed round by shuffles.

@compute @workgroup_size(WG)
fn backward_weight_3x3(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32,
                   @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sg_size: u32) {
  let cin = dims.in_channels;
  let cout = dims.out_channels;
  let columns = cin * 3u;
  let index = wid.x * WG + li;
  let column = min(index, columns - 1u);
  let ci = column / 3u;
  let ky = column % 3u;
  let m0 = wid.y * TM;
  let loads = (TM + SG - 1u) / SG;
  let tiles_w = dims.out_w / 4u;
  var rows: array<u32, TM_MAX>;
  for (var q = 0u; q < loads; q++) { rows[q] = min(m0 + q * SG + lane, cout - 1u); }
  var acc: array<vec3f, TM_MAX>;
  let n_end = min((wid.z + 1u) * dims.samples_per_split, dims.batch);
  for (var n = wid.z * dims.samples_per_split; n < n_end; n++) {
    for (var oy = 0u; oy < dims.out_h; oy++) {
      let iy = i32(oy * STRIDE + ky) - 1;
      let row_ok = iy >= 0 && iy < i32(dims.in_h);
      let row = ((n * cin + ci) * dims.in_h + u32(clamp(iy, 0, i32(dims.in_h) - 1))) * (dims.in_w / 4u);
      // Inputs under taps kx = 0, 1, 2 of output columns 4t .. 4t + 3; `left` is column 4t·STRIDE − 1.
      var cur = select(vec4f(0.0), x4[row], row_ok);
      var left = 0.0;
      for (var t = 0u; t < tiles_w; t++) {
        var x0: vec4f;
        var x1: vec4f;
        var x2: vec4f;
        if (STRIDE == 1u) {
          var next = vec4f(0.0);
          if (t + 1u < tiles_w) { next = select(vec4f(0.0), x4[row + t + 1u], row_ok); }
          x0 = vec4f(left, cur.xyz);
          x1 = cur;
          x2 = vec4f(cur.yzw, next.x);
          left = cur.w;
          cur = next;
        } else {
          let a = select(vec4f(0.0), x4[row + 2u * t], row_ok);
          let b = select(vec4f(0.0), x4[row + 2u * t + 1u], row_ok);
          x0 = vec4f(left, a.y, a.w, b.y);
          x1 = vec4f(a.x, a.z, b.x, b.z);
          x2 = vec4f(a.y, a.w, b.y, b.w);
          left = b.w;
        }
        var dl: array<vec4f, TM_MAX>;
        for (var q = 0u; q < loads; q++) {
          dl[q] = dy4[((n * cout + rows[q]) * dims.out_h + oy) * tiles_w + t];
        }
        for (var m = 0u; m < TM; m++) {
          let d = subgroupShuffle(dl[m / SG], m % SG);
          acc[m] += vec3f(dot(d, x0), dot(d, x1), dot(d, x2));
        }
      }
    }
  }
  if (index >= columns) { return; }
  let taps = cin * 9u;
  for (var m = 0u; m < TM; m++) {
    let co = m0 + m;
    if (co >= cout) { break; }
    let base = (wid.z * cout + co) * taps + column * 3u;
    dw[base] = lanes_checked(acc[m].x, sg_size, lane, li);
    dw[base + 1u] = lanes_checked(acc[m].y, sg_size, lane, li);
    dw[base + 2u] = lanes_checked(acc[m].z, sg_size, lane, li);
  }
}

@group(0) @binding(10) var<storage, read> dy2: array<vec2f>;

// dx of a 3×3, padding 1, stride 2 convolution with in_w = 2·out_w a multiple of 4 (the entry convs of
// CIFAR ResNet stages 2 and 3). Rows split by parity (wid.z): an even row iy meets only tap ky = 1 at
// oy = iy / 2, an odd one taps ky = 0 and 2 at oy = (iy + 1) / 2 and (iy − 1) / 2. A lane owns input
// columns 4t .. 4t + 3: the even ones meet tap kx = 1 at ox = 2t, 2t + 1, the odd ones taps kx = 0 and 2
// at ox = 2t + 1, 2t + 2 and 2t, 2t + 1, so one vec2 of dy and the next lane's first column cover them
// and no multiply-add is spent on a zero. Rows are input channels ci (TM per workgroup), weights the
// packed w4 of the forward.
@compute @workgroup_size(WG)
fn backward_input_3x3_s2(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32,
                         @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sg_size: u32) {
  let py = wid.z;
  let half_h = dims.in_h / 2u;
  let tiles_w = dims.in_w / 4u;
  let tiles = dims.batch * half_h * tiles_w;
  let index = wid.x * WG + li;
  let tile = min(index, tiles - 1u);
  let t = tile % tiles_w;
  let a = (tile / tiles_w) % half_h;
  let n = tile / (tiles_w * half_h);
  let m0 = wid.y * TM;
  let cin = dims.in_channels;
  let cout = dims.out_channels;
  let has_right = t + 1u < tiles_w;
  let loads = (TM + SG - 1u) / SG;
  var wrow: array<u32, TM_MAX>;
  for (var q = 0u; q < loads; q++) { wrow[q] = min(m0 + q * SG + lane, cin - 1u) * 3u; }
  // Input columns (4t, 4t + 2) and (4t + 1, 4t + 3) of each row block.
  var even: array<vec2f, TM_MAX>;
  var odd: array<vec2f, TM_MAX>;
  for (var co = 0u; co < cout; co++) {
    for (var k = 0u; k < 1u + py; k++) {
      // py = 0: ky = 1 at oy = a. py = 1: ky = 0 at oy = a + 1, then ky = 2 at oy = a.
      let ky = select(1u, 2u * k, py == 1u);
      let oy = a + select(0u, 1u - k, py == 1u);
      let row_ok = oy < dims.out_h;
      let d01 = select(vec2f(0.0), dy2[((n * cout + co) * dims.out_h + min(oy, dims.out_h - 1u)) * (dims.out_w / 2u) + t], row_ok);
      let d2 = select(0.0, subgroupShuffleDown(d01.x, 1u), has_right);
      let d12 = vec2f(d01.y, d2);
      var wl: array<vec4f, TM_MAX>;
      for (var q = 0u; q < loads; q++) { wl[q] = w4[co * cin * 3u + wrow[q] + ky]; }
      for (var m = 0u; m < TM; m++) {
        let wv = subgroupShuffle(wl[m / SG].xyz, m % SG);
        even[m] = fma(vec2f(wv.y), d01, even[m]);
        odd[m] = fma(vec2f(wv.x), d12, fma(vec2f(wv.z), d01, odd[m]));
      }
    }
  }
  if (index >= tiles) { return; }
  let iy = 2u * a + py;
  for (var m = 0u; m < TM; m++) {
    let ci = m0 + m;
    if (ci >= cin) { break; }
    let base = ((n * cin + ci) * dims.in_h + iy) * dims.in_w + 4u * t;
    let checked = lanes_checked4(vec4f(even[m].x, odd[m].x, even[m].y, odd[m].y), sg_size, lane, li);
    dx[base] = checked.x; dx[base + 1u] = checked.y; dx[base + 2u] = checked.z; dx[base + 3u] = checked.w;
  }
}

// Start-up check (GpuRuntime.create): the kernels above find a tile's neighbouring columns in the lanes
// next to it, which holds where every subgroup is SG consecutive invocations of the workgroup, lane =
// local index mod SG. No spec promises that, so y[i] = 1 where invocation i sees it, else 0.
@compute @workgroup_size(WG)
fn subgroup_layout(@builtin(global_invocation_id) gid: vec3u, @builtin(local_invocation_index) li: u32,
                   @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) size: u32) {
  let below = subgroupShuffleUp(li, 1u);
  let above = subgroupShuffleDown(li, 1u);
  let ok = size == SG && lane == li % SG && (lane == 0u || below == li - 1u) && (lane + 1u == SG || above == li + 1u);
  y[gid.x] = select(0.0, 1.0, ok);
}
