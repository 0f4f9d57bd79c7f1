// 2-D convolution, NCHW, f32, any kernel size, stride and padding (see src/ops/conv2d.ts).
// Implicit GEMM: no im2col buffer; each invocation keeps a small block of outputs in registers.
// Shapes come in `dims`, so one pipeline serves every layer, compacted ones included.

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
// Outputs per invocation: CO_BLOCK channels × X_BLOCK consecutive columns.
const CO_BLOCK = 4u;
const X_BLOCK = 4u;

fn x_at(n: u32, c: u32, iy: i32, ix: i32) -> f32 {
  if (iy < 0 || ix < 0 || iy >= i32(dims.in_h) || ix >= i32(dims.in_w)) { return 0.0; }
  return x[((n * dims.in_channels + c) * dims.in_h + u32(iy)) * dims.in_w + u32(ix)];
}

fn w_at(co: u32, ci: u32, ky: u32, kx: u32) -> f32 {
  if (co >= dims.out_channels) { return 0.0; }
  return w[((co * dims.in_channels + ci) * dims.kernel_h + ky) * dims.kernel_w + kx];
}

// y[n, co, oy, ox]: invocation = (n, oy, a block of X_BLOCK columns, a block of CO_BLOCK channels).
@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let x_blocks = (dims.out_w + X_BLOCK - 1u) / X_BLOCK;
  let co_blocks = (dims.out_channels + CO_BLOCK - 1u) / CO_BLOCK;
  let index = gid.x + gid.y * nwg.x * WG;
  if (index >= dims.batch * dims.out_h * x_blocks * co_blocks) { return; }
  let xb = index % x_blocks;
  var rest = index / x_blocks;
  let oy = rest % dims.out_h;
  rest = rest / dims.out_h;
  let cb = rest % co_blocks;
  let n = rest / co_blocks;
  let ox0 = xb * X_BLOCK;
  let co0 = cb * CO_BLOCK;
  var acc: array<vec4<f32>, 4>;
  let s = i32(dims.stride);
  let iy0 = i32(oy) * s - i32(dims.padding);
  let ix0 = i32(ox0) * s - i32(dims.padding);
  for (var ci = 0u; ci < dims.in_channels; ci++) {
    for (var ky = 0u; ky < dims.kernel_h; ky++) {
      let iy = iy0 + i32(ky);
      for (var kx = 0u; kx < dims.kernel_w; kx++) {
        let ix = ix0 + i32(kx);
        let xv = vec4<f32>(x_at(n, ci, iy, ix), x_at(n, ci, iy, ix + s), x_at(n, ci, iy, ix + 2 * s), x_at(n, ci, iy, ix + 3 * s));
        for (var j = 0u; j < CO_BLOCK; j++) {
          acc[j] = fma(vec4<f32>(w_at(co0 + j, ci, ky, kx)), xv, acc[j]);
        }
      }
    }
  }
  for (var j = 0u; j < CO_BLOCK; j++) {
    let co = co0 + j;
    if (co >= dims.out_channels) { break; }
    let base = ((n * dims.out_channels + co) * dims.out_h + oy) * dims.out_w;
    for (var t = 0u; t < X_BLOCK; t++) {
      if (ox0 + t < dims.out_w) { y[base + ox0 + t] = acc[j][t]; }
    }
  }
}

fn dy_at(n: u32, co: u32, oy: i32, ox: i32) -> f32 {
  if (oy < 0 || ox < 0 || oy >= i32(dims.out_h) || ox >= i32(dims.out_w)) { return 0.0; }
  return dy[((n * dims.out_channels + co) * dims.out_h + u32(oy)) * dims.out_w + u32(ox)];
}

// dx[n, ci, iy, ix] = Σ dy[n, co, oy, ox] · w[co, ci, ky, kx] over iy = oy·s + ky − p (the transposed
// convolution). Invocation = (n, iy, X_BLOCK columns, one input channel); taps whose oy or ox is not
// an integer are skipped.
@compute @workgroup_size(WG)
fn backward_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let x_blocks = (dims.in_w + X_BLOCK - 1u) / X_BLOCK;
  let index = gid.x + gid.y * nwg.x * WG;
  if (index >= dims.batch * dims.in_h * x_blocks * dims.in_channels) { return; }
  let xb = index % x_blocks;
  var rest = index / x_blocks;
  let iy = rest % dims.in_h;
  rest = rest / dims.in_h;
  let ci = rest % dims.in_channels;
  let n = rest / dims.in_channels;
  let ix0 = xb * X_BLOCK;
  let s = i32(dims.stride);
  var acc = vec4<f32>(0.0);
  for (var ky = 0u; ky < dims.kernel_h; ky++) {
    let ty = i32(iy) + i32(dims.padding) - i32(ky);
    if (ty < 0 || ty % s != 0) { continue; }
    let oy = ty / s;
    if (oy >= i32(dims.out_h)) { continue; }
    for (var kx = 0u; kx < dims.kernel_w; kx++) {
      var ox: array<i32, 4>;
      for (var t = 0u; t < X_BLOCK; t++) {
        let tx = i32(ix0 + t) + i32(dims.padding) - i32(kx);
        ox[t] = select(-1, tx / s, tx >= 0 && tx % s == 0);
      }
      for (var co = 0u; co < dims.out_channels; co++) {
        let wv = w[((co * dims.in_channels + ci) * dims.kernel_h + ky) * dims.kernel_w + kx];
        let dv = vec4<f32>(dy_at(n, co, oy, ox[0]), dy_at(n, co, oy, ox[1]), dy_at(n, co, oy, ox[2]), dy_at(n, co, oy, ox[3]));
        acc = fma(vec4<f32>(wv), dv, acc);
      }
    }
  }
  let base = ((n * dims.in_channels + ci) * dims.in_h + iy) * dims.in_w;
  for (var t = 0u; t < X_BLOCK; t++) {
    if (ix0 + t < dims.in_w) { dx[base + ix0 + t] = acc[t]; }
  }
}

// Partial weight gradients: dw_part[split, co, ci, ky, kx] = Σ over the split's samples and all output
// positions of dy[n, co, oy, ox] · x[n, ci, oy·s + ky − p, ox·s + kx − p]. Invocation = (split, CO_BLOCK
// output channels, ci, ky, kx). A second pass (reduce.wgsl) sums the splits, deterministically.
@compute @workgroup_size(WG)
fn backward_weight(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let co_blocks = (dims.out_channels + CO_BLOCK - 1u) / CO_BLOCK;
  let taps = dims.in_channels * dims.kernel_h * dims.kernel_w;
  let splits = (dims.batch + dims.samples_per_split - 1u) / dims.samples_per_split;
  let index = gid.x + gid.y * nwg.x * WG;
  if (index >= splits * co_blocks * taps) { return; }
  let tap = index % taps;
  var rest = index / taps;
  let cb = rest % co_blocks;
  let split = rest / co_blocks;
  let kx = tap % dims.kernel_w;
  let ky = (tap / dims.kernel_w) % dims.kernel_h;
  let ci = tap / (dims.kernel_w * dims.kernel_h);
  let co0 = cb * CO_BLOCK;
  let s = i32(dims.stride);
  var acc = vec4<f32>(0.0);
  let n_end = min((split + 1u) * dims.samples_per_split, dims.batch);
  for (var n = split * dims.samples_per_split; n < n_end; n++) {
    for (var oy = 0u; oy < dims.out_h; oy++) {
      let iy = i32(oy) * s + i32(ky) - i32(dims.padding);
      if (iy < 0 || iy >= i32(dims.in_h)) { continue; }
      for (var ox = 0u; ox < dims.out_w; ox++) {
        let xv = x_at(n, ci, iy, i32(ox) * s + i32(kx) - i32(dims.padding));
        let dv = vec4<f32>(dy_at(n, co0, i32(oy), i32(ox)),
                           select(0.0, dy_at(n, co0 + 1u, i32(oy), i32(ox)), co0 + 1u < dims.out_channels),
                           select(0.0, dy_at(n, co0 + 2u, i32(oy), i32(ox)), co0 + 2u < dims.out_channels),
                           select(0.0, dy_at(n, co0 + 3u, i32(oy), i32(ox)), co0 + 3u < dims.out_channels));
        acc = fma(vec4<f32>(xv), dv, acc);
      }
    }
  }
  let per_co = taps;
  let base = split * dims.out_channels * per_co;
  for (var j = 0u; j < CO_BLOCK; j++) {
    let co = co0 + j;
    if (co < dims.out_channels) { dw[base + co * per_co + tap] = acc[j]; }
  }
}
