// The CIFAR ResNet "option A" shortcut (see src/ops/shortcut.ts): subsample by `stride` (a 1×1 average
// pool) and append zero channels up to out_channels. One invocation per output (forward) or input
// (backward) element.

struct Dims { batch: u32, in_channels: u32, out_channels: u32, in_h: u32, in_w: u32, out_h: u32, out_w: u32, stride: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= dims.batch * dims.out_channels * dims.out_h * dims.out_w) { return; }
  let ox = i % dims.out_w;
  let oy = (i / dims.out_w) % dims.out_h;
  let c = (i / (dims.out_w * dims.out_h)) % dims.out_channels;
  let n = i / (dims.out_w * dims.out_h * dims.out_channels);
  if (c >= dims.in_channels) {
    y[i] = 0.0;
    return;
  }
  y[i] = x[((n * dims.in_channels + c) * dims.in_h + oy * dims.stride) * dims.in_w + ox * dims.stride];
}

// dx is dy at the sampled positions of the kept channels, 0 elsewhere.
@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= dims.batch * dims.in_channels * dims.in_h * dims.in_w) { return; }
  let ix = i % dims.in_w;
  let iy = (i / dims.in_w) % dims.in_h;
  let c = (i / (dims.in_w * dims.in_h)) % dims.in_channels;
  let n = i / (dims.in_w * dims.in_h * dims.in_channels);
  let oy = iy / dims.stride;
  let ox = ix / dims.stride;
  if (iy % dims.stride != 0u || ix % dims.stride != 0u || oy >= dims.out_h || ox >= dims.out_w) {
    dx[i] = 0.0;
    return;
  }
  dx[i] = dy[((n * dims.out_channels + c) * dims.out_h + oy) * dims.out_w + ox];
}

// Stride 2 with out_w a multiple of 4 (CIFAR's 32→16 and 16→8): four outputs, or four inputs, per
// invocation as one vec4, so the position is found by one set of divisions per four values and the
// loads and stores of the dense side are 16 bytes each.
@group(0) @binding(5) var<storage, read> x4: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> y4: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> dx4: array<vec4f>;

@compute @workgroup_size(WG)
fn forward_s2_vec4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  let chunks_w = dims.out_w / 4u;
  if (i >= dims.batch * dims.out_channels * dims.out_h * chunks_w) { return; }
  let t = i % chunks_w;
  let row = i / chunks_w;
  let oy = row % dims.out_h;
  let c = (row / dims.out_h) % dims.out_channels;
  let n = row / (dims.out_h * dims.out_channels);
  if (c >= dims.in_channels) {
    y4[i] = vec4f(0.0);
    return;
  }
  // Input columns 8t .. 8t + 7 of row 2·oy: the even ones are the samples.
  let source = (((n * dims.in_channels + c) * dims.in_h + oy * 2u) * dims.in_w) / 4u + 2u * t;
  let a = x4[source];
  let b = x4[source + 1u];
  y4[i] = vec4f(a.x, a.z, b.x, b.z);
}

@compute @workgroup_size(WG)
fn backward_s2_vec4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  let chunks_w = dims.in_w / 4u;
  if (i >= dims.batch * dims.in_channels * dims.in_h * chunks_w) { return; }
  let t = i % chunks_w;
  let row = i / chunks_w;
  let iy = row % dims.in_h;
  let c = (row / dims.in_h) % dims.in_channels;
  let n = row / (dims.in_h * dims.in_channels);
  if (iy % 2u != 0u) {
    dx4[i] = vec4f(0.0);
    return;
  }
  // Input columns 4t .. 4t + 3 take dy at output columns 2t and 2t + 1 of row iy / 2.
  let source = ((n * dims.out_channels + c) * dims.out_h + iy / 2u) * dims.out_w + 2u * t;
  dx4[i] = vec4f(dy[source], 0.0, dy[source + 1u], 0.0);
}
