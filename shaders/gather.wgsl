// Channel gathers for compaction (see src/ops/gather.ts): index_select along one axis, and the residual
// join of a compacted ResNet block, out = relu(y[y_index] + r[r_index] (subsampled) + constants).
// Every entry point runs one invocation per element of the tensor it writes; the grid is folded into
// two dimensions for large tensors, so the linear index is gid.x + gid.y * nwg.x * WG.

struct Dims {
  // index_select: x seen as [outer, dim, inner], y as [outer, count, inner].
  outer: u32, dim: u32, inner: u32, count: u32,
  // residual join: out [batch, out_channels, h, w]; y [batch, y_channels, h, w];
  // r [batch, r_channels, r_h, r_w], read at (oy·stride, ox·stride).
  batch: u32, out_channels: u32, h: u32, w: u32, y_channels: u32, r_channels: u32, r_h: u32, r_w: u32, stride: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> index: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read> y_index: array<i32>;
@group(0) @binding(7) var<storage, read> r_index: array<i32>;
@group(0) @binding(8) var<storage, read> constants: array<f32>;
@group(0) @binding(9) var<storage, read> r: array<f32>;
@group(0) @binding(10) var<storage, read> out: array<f32>;
@group(0) @binding(11) var<storage, read_write> joined: array<f32>;

override WG: u32 = 256u;

fn linear_index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// y[o, i, k] = x[o, index[i], k]: one invocation per element of y.
@compute @workgroup_size(WG)
fn index_select(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg);
  if (i >= dims.outer * dims.count * dims.inner) { return; }
  let k = i % dims.inner;
  let c = (i / dims.inner) % dims.count;
  let o = i / (dims.inner * dims.count);
  y[i] = x[(o * dims.dim + index[c]) * dims.inner + k];
}

// dx[o, j, k] = Σ_{i: index[i] = j} dy[o, i, k]: one invocation per element of dx, looping over the
// `count` indices (duplicates add up; no atomics, so the sum order is fixed).
@compute @workgroup_size(WG)
fn index_select_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg);
  if (i >= dims.outer * dims.dim * dims.inner) { return; }
  let k = i % dims.inner;
  let j = (i / dims.inner) % dims.dim;
  let o = i / (dims.inner * dims.dim);
  var acc = 0.0;
  for (var c = 0u; c < dims.count; c++) {
    if (index[c] == j) { acc += dy[(o * dims.count + c) * dims.inner + k]; }
  }
  dx[i] = acc;
}

// joined[n, c, oy, ox] = max(y[n, y_index[c], oy, ox] + r[n, r_index[c], oy·s, ox·s] + constants[c], 0),
// where an index of −1 contributes nothing. One invocation per output element.
@compute @workgroup_size(WG)
fn residual_join(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg);
  let plane = dims.h * dims.w;
  if (i >= dims.batch * dims.out_channels * plane) { return; }
  let p = i % plane;
  let c = (i / plane) % dims.out_channels;
  let n = i / (plane * dims.out_channels);
  var v = constants[c];
  let yc = y_index[c];
  if (yc >= 0) { v += x[(n * dims.y_channels + u32(yc)) * plane + p]; }
  let rc = r_index[c];
  if (rc >= 0) {
    let oy = p / dims.w;
    let ox = p % dims.w;
    v += r[((n * dims.r_channels + u32(rc)) * dims.r_h + oy * dims.stride) * dims.r_w + ox * dims.stride];
  }
  joined[i] = max(v, 0.0);
}

// dy_in[n, k, p] = Σ_{c: y_index[c] = k, out > 0} dy[n, c, p]: one invocation per element of the y input.
@compute @workgroup_size(WG)
fn residual_join_backward_y(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg);
  let plane = dims.h * dims.w;
  if (i >= dims.batch * dims.y_channels * plane) { return; }
  let p = i % plane;
  let k = i32((i / plane) % dims.y_channels);
  let n = i / (plane * dims.y_channels);
  var acc = 0.0;
  for (var c = 0u; c < dims.out_channels; c++) {
    let o = (n * dims.out_channels + c) * plane + p;
    if (y_index[c] == k && out[o] > 0.0) { acc += dy[o]; }
  }
  dx[i] = acc;
}

// dr[n, k, ry, rx] = Σ_{c: r_index[c] = k, out > 0} dy[n, c, ry/s, rx/s] at the sampled positions, 0
// elsewhere: one invocation per element of r.
@compute @workgroup_size(WG)
fn residual_join_backward_r(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg);
  let rplane = dims.r_h * dims.r_w;
  if (i >= dims.batch * dims.r_channels * rplane) { return; }
  let rx = i % dims.r_w;
  let ry = (i / dims.r_w) % dims.r_h;
  let k = i32((i / rplane) % dims.r_channels);
  let n = i / (rplane * dims.r_channels);
  var acc = 0.0;
  if (ry % dims.stride == 0u && rx % dims.stride == 0u && ry / dims.stride < dims.h && rx / dims.stride < dims.w) {
    let p = (ry / dims.stride) * dims.w + rx / dims.stride;
    for (var c = 0u; c < dims.out_channels; c++) {
      let o = (n * dims.out_channels + c) * dims.h * dims.w + p;
      if (r_index[c] == k && out[o] > 0.0) { acc += dy[o]; }
    }
  }
  dx[i] = acc;
}

// residual_join over segments of JOIN_SEGMENT vec4s of one (sample, channel) plane, where a plane row
// holds a multiple of 4 outputs and r is read at stride 1 (same size) or 2 (r_w = 2·w): the channel's
// indices and constant are loaded once per segment, positions found by one set of divisions, values
// moved as vec4s. An absent residual channel (index −1) is a select; an absent y channel a branch, since a
// block whose filters are all pruned has no y to read.
@group(0) @binding(12) var<storage, read> x4: array<vec4f>;
@group(0) @binding(13) var<storage, read> r4: array<vec4f>;
@group(0) @binding(14) var<storage, read_write> joined4: array<vec4f>;

const JOIN_SEGMENT = 4u;

@compute @workgroup_size(WG)
fn residual_join_vec4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let index = linear_index(gid, nwg);
  let plane4 = dims.h * dims.w / 4u;
  let per_plane = (plane4 + JOIN_SEGMENT - 1u) / JOIN_SEGMENT;
  if (index >= dims.batch * dims.out_channels * per_plane) { return; }
  let start = (index % per_plane) * JOIN_SEGMENT;
  let c = (index / per_plane) % dims.out_channels;
  let n = index / (per_plane * dims.out_channels);
  let yc = y_index[c];
  let rc = r_index[c];
  let constant = vec4f(constants[c]);
  let y_plane = (n * dims.y_channels + u32(max(yc, 0))) * plane4;
  let r_plane = n * dims.r_channels + u32(max(rc, 0));
  let out_plane = (n * dims.out_channels + c) * plane4;
  for (var p4 = start; p4 < min(start + JOIN_SEGMENT, plane4); p4++) {
    var from_r: vec4f;
    if (dims.stride == 1u) {
      from_r = r4[r_plane * plane4 + p4];
    } else {
      // Outputs (oy, ox .. ox + 3) read r at row 2·oy, columns 2·ox, 2·ox + 2, ...: the even halves of two vec4s.
      let p = 4u * p4;
      let first = ((r_plane * dims.r_h + 2u * (p / dims.w)) * dims.r_w + 2u * (p % dims.w)) / 4u;
      let a = r4[first];
      let b = r4[first + 1u];
      from_r = vec4f(a.x, a.z, b.x, b.z);
    }
    var v = constant + select(vec4f(0.0), from_r, rc >= 0);
    // Read y only where it contributes: with every filter of the block pruned, y has no channel to read.
    if (yc >= 0) { v += x4[y_plane + p4]; }
    joined4[out_plane + p4] = max(v, vec4f(0.0));
  }
}
