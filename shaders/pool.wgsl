// Average and max pooling over NCHW windows (see src/ops/pool.ts). One invocation per output element
// (forward) or input element (backward, which gathers from the windows that cover it: no atomics).

struct Dims {
  batch: u32, channels: u32, in_h: u32, in_w: u32, out_h: u32, out_w: u32,
  kernel: u32, stride: u32, padding: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

override WG: u32 = 256u;
// 0 average (padding counts as zeros, as PyTorch's count_include_pad), 1 max
override OP: u32 = 0u;

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= dims.batch * dims.channels * dims.out_h * dims.out_w) { return; }
  let ox = i % dims.out_w;
  let oy = (i / dims.out_w) % dims.out_h;
  let nc = i / (dims.out_w * dims.out_h);
  let y0 = i32(oy * dims.stride) - i32(dims.padding);
  let x0 = i32(ox * dims.stride) - i32(dims.padding);
  var acc = select(0.0, bitcast<f32>(0xff7fffffu), OP == 1u);
  for (var ky = 0u; ky < dims.kernel; ky++) {
    for (var kx = 0u; kx < dims.kernel; kx++) {
      let iy = y0 + i32(ky);
      let ix = x0 + i32(kx);
      if (iy < 0 || ix < 0 || iy >= i32(dims.in_h) || ix >= i32(dims.in_w)) { continue; }
      let v = x[(nc * dims.in_h + u32(iy)) * dims.in_w + u32(ix)];
      if (OP == 1u) { acc = max(acc, v); } else { acc += v; }
    }
  }
  if (OP == 0u) { acc /= f32(dims.kernel * dims.kernel); }
  y[i] = acc;
}

// dx[i] = Σ over windows containing i of: dy / k² (average) or dy where x[i] is the window's first
// maximum (max; recomputed from x, so no index buffer is stored).
@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= dims.batch * dims.channels * dims.in_h * dims.in_w) { return; }
  let ix = i32(i % dims.in_w);
  let iy = i32((i / dims.in_w) % dims.in_h);
  let nc = i / (dims.in_w * dims.in_h);
  let k = i32(dims.kernel);
  let s = i32(dims.stride);
  let p = i32(dims.padding);
  var acc = 0.0;
  for (var ky = 0; ky < k; ky++) {
    let ty = iy + p - ky;
    if (ty < 0 || ty % s != 0 || ty / s >= i32(dims.out_h)) { continue; }
    let oy = ty / s;
    for (var kx = 0; kx < k; kx++) {
      let tx = ix + p - kx;
      if (tx < 0 || tx % s != 0 || tx / s >= i32(dims.out_w)) { continue; }
      let ox = tx / s;
      let g = dy[(nc * dims.out_h + u32(oy)) * dims.out_w + u32(ox)];
      if (OP == 0u) {
        acc += g / f32(dims.kernel * dims.kernel);
      } else {
        // Is this element the first maximum of window (oy, ox)?
        var best = bitcast<f32>(0xff7fffffu);
        var best_at = -1;
        for (var wy = 0; wy < k; wy++) {
          for (var wx = 0; wx < k; wx++) {
            let yy = oy * s - p + wy;
            let xx = ox * s - p + wx;
            if (yy < 0 || xx < 0 || yy >= i32(dims.in_h) || xx >= i32(dims.in_w)) { continue; }
            let v = x[(nc * dims.in_h + u32(yy)) * dims.in_w + u32(xx)];
            if (v > best) { best = v; best_at = yy * i32(dims.in_w) + xx; }
          }
        }
        if (best_at == iy * i32(dims.in_w) + ix) { acc += g; }
      }
    }
  }
  dx[i] = acc;
}
