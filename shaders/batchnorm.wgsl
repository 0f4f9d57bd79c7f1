// Batch normalisation over NCHW (see src/ops/batchnorm.ts), optionally fused with a following ReLU.
// Per-channel sums are split reductions: `*_partial` entry points sum a chunk of samples of one channel
// each, `*_final` entry points add the chunks up (one invocation per channel), so no invocation walks a
// whole channel of a 128-image batch alone.

struct Dims {
  batch: u32, channels: u32, hw: u32, chunks: u32, samples_per_chunk: u32,
  eps: f32, momentum: f32, update_running: u32, training: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
// stats[c] = mean, stats[C + c] = 1 / sqrt(var + eps)
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(6) var<storage, read> gamma: array<f32>;
@group(0) @binding(7) var<storage, read> beta: array<f32>;
@group(0) @binding(8) var<storage, read_write> y: array<f32>;
@group(0) @binding(9) var<storage, read> dy: array<f32>;
@group(0) @binding(10) var<storage, read_write> dx: array<f32>;
// dparams[c] = dgamma, dparams[C + c] = dbeta
@group(0) @binding(11) var<storage, read_write> dparams: array<f32>;
@group(0) @binding(12) var<storage, read> saved_stats: array<f32>;

override WG: u32 = 64u;
override RELU: bool = false;

// partial[(c * chunks + k) * 2 + {0, 1}] = Σ (x − shift), Σ (x − shift)² over chunk k of channel c.
// The shift (the channel's first value) keeps Σx² − (Σx)²/n from cancelling when |mean| ≫ std.
@compute @workgroup_size(WG)
fn stats_partial(@builtin(global_invocation_id) gid: vec3u) {
  let index = gid.x;
  if (index >= dims.channels * dims.chunks) { return; }
  let c = index / dims.chunks;
  let k = index % dims.chunks;
  let shift = x[c * dims.hw];
  var s = 0.0;
  var s2 = 0.0;
  let n_end = min((k + 1u) * dims.samples_per_chunk, dims.batch);
  for (var n = k * dims.samples_per_chunk; n < n_end; n++) {
    let base = (n * dims.channels + c) * dims.hw;
    for (var i = 0u; i < dims.hw; i++) {
      let v = x[base + i] - shift;
      s += v;
      s2 += v * v;
    }
  }
  partial[index * 2u] = s;
  partial[index * 2u + 1u] = s2;
}

// Mean and 1/std per channel from the partial sums (biased variance, as PyTorch normalises); the running
// statistics move by `momentum` towards the batch mean and the unbiased variance.
@compute @workgroup_size(WG)
fn stats_final(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= dims.channels) { return; }
  var s = 0.0;
  var s2 = 0.0;
  for (var k = 0u; k < dims.chunks; k++) {
    s += partial[(c * dims.chunks + k) * 2u];
    s2 += partial[(c * dims.chunks + k) * 2u + 1u];
  }
  let count = f32(dims.batch * dims.hw);
  let shifted_mean = s / count;
  let variance = max(s2 / count - shifted_mean * shifted_mean, 0.0);
  let mean = shifted_mean + x[c * dims.hw];
  stats[c] = mean;
  stats[dims.channels + c] = 1.0 / sqrt(variance + dims.eps);
  if (dims.update_running != 0u) {
    let unbiased = variance * count / max(count - 1.0, 1.0);
    running_mean[c] = (1.0 - dims.momentum) * running_mean[c] + dims.momentum * mean;
    running_var[c] = (1.0 - dims.momentum) * running_var[c] + dims.momentum * unbiased;
  }
}

// Evaluation: the statistics are the running ones.
@compute @workgroup_size(WG)
fn eval_stats(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= dims.channels) { return; }
  stats[c] = running_mean[c];
  stats[dims.channels + c] = 1.0 / sqrt(running_var[c] + dims.eps);
}

// Elementwise passes work on segments of SEGMENT consecutive values of one (sample, channel) plane, so the
// channel's statistics are loaded once per segment and no per-element division finds the channel (on CPU
// drivers each load with a varying index, and each integer division, costs more than the arithmetic).
const SEGMENT = 16u;

struct Segment { base: u32, end: u32, c: u32 }

fn segment_of(index: u32) -> Segment {
  let per_plane = (dims.hw + SEGMENT - 1u) / SEGMENT;
  let plane = index / per_plane;
  let start = (index % per_plane) * SEGMENT;
  let base = plane * dims.hw + start;
  return Segment(base, base + min(SEGMENT, dims.hw - start), plane % dims.channels);
}

fn segments() -> u32 {
  return dims.batch * dims.channels * ((dims.hw + SEGMENT - 1u) / SEGMENT);
}

// Channel c's normalization as one fma, y = x · scale + shift, with scale = invstd · γ and shift = β − mean · scale.
// Every pass that needs y computes it this way, so the fused ReLU's backward masks exactly the values the forward
// clamped (as PyTorch's ReLU backward reads its output).
struct Affine { scale: f32, shift: f32 }

fn affine(c: u32) -> Affine {
  let scale = saved_stats[dims.channels + c] * gamma[c];
  return Affine(scale, beta[c] - saved_stats[c] * scale);
}

// y = (x − mean) · invstd · γ + β, then ReLU when fused. One invocation per segment.
@compute @workgroup_size(WG)
fn normalize(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let index = gid.x + gid.y * nwg.x * WG;
  if (index >= segments()) { return; }
  let seg = segment_of(index);
  let a = affine(seg.c);
  for (var i = seg.base; i < seg.end; i++) {
    var v = fma(x[i], a.scale, a.shift);
    if (RELU) { v = max(v, 0.0); }
    y[i] = v;
  }
}

// The incoming gradient with the fused ReLU's mask applied (y recomputed from x as the forward computed it).
// A select, not a branch: lanes that diverge on a branch run both sides one after the other.
fn masked_dy(i: u32, xi: f32, a: Affine) -> f32 {
  return select(dy[i], 0.0, RELU && fma(xi, a.scale, a.shift) <= 0.0);
}

// partial[(c * chunks + k) * 2 + {0, 1}] = Σ dy, Σ dy · x̂ over chunk k of channel c.
@compute @workgroup_size(WG)
fn backward_partial(@builtin(global_invocation_id) gid: vec3u) {
  let index = gid.x;
  if (index >= dims.channels * dims.chunks) { return; }
  let c = index / dims.chunks;
  let k = index % dims.chunks;
  let mean = saved_stats[c];
  let invstd = saved_stats[dims.channels + c];
  let a = affine(c);
  var sdy = 0.0;
  var sdyx = 0.0;
  let n_end = min((k + 1u) * dims.samples_per_chunk, dims.batch);
  for (var n = k * dims.samples_per_chunk; n < n_end; n++) {
    let base = (n * dims.channels + c) * dims.hw;
    for (var i = 0u; i < dims.hw; i++) {
      let xi = x[base + i];
      let xhat = (xi - mean) * invstd;
      let d = masked_dy(base + i, xi, a);
      sdy += d;
      sdyx += d * xhat;
    }
  }
  partial[index * 2u] = sdy;
  partial[index * 2u + 1u] = sdyx;
}

// dγ = Σ dy · x̂ and dβ = Σ dy per channel.
@compute @workgroup_size(WG)
fn backward_final(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= dims.channels) { return; }
  var sdy = 0.0;
  var sdyx = 0.0;
  for (var k = 0u; k < dims.chunks; k++) {
    sdy += partial[(c * dims.chunks + k) * 2u];
    sdyx += partial[(c * dims.chunks + k) * 2u + 1u];
  }
  dparams[c] = sdyx;
  dparams[dims.channels + c] = sdy;
}

// Training: dx = γ · invstd / M · (M · dy − Σdy − x̂ · Σdy·x̂), M = batch · hw (the batch statistics depend
// on x too). Evaluation: dx = γ · invstd · dy. One invocation per segment.
@compute @workgroup_size(WG)
fn backward_input(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let index = gid.x + gid.y * nwg.x * WG;
  if (index >= segments()) { return; }
  let seg = segment_of(index);
  let c = seg.c;
  let mean = saved_stats[c];
  let invstd = saved_stats[dims.channels + c];
  let a = affine(c);
  let m = f32(dims.batch * dims.hw);
  let training = dims.training != 0u;
  let mean_dy = select(0.0, dparams[dims.channels + c] / m, training);
  let mean_dyx = select(0.0, dparams[c] / m, training);
  for (var i = seg.base; i < seg.end; i++) {
    let xi = x[i];
    let xhat = (xi - mean) * invstd;
    let d = masked_dy(i, xi, a);
    dx[i] = a.scale * (d - mean_dy - xhat * mean_dyx);
  }
}

// The same passes four values at a time where hw is a multiple of 4 (every plane starts on a vec4):
// one 16-byte load per lane instead of four scalar ones, which on a CPU driver are a loop over the
// lanes each. Segments are SEGMENT values as SEGMENT / 4 vec4s.
@group(0) @binding(13) var<storage, read> x4: array<vec4f>;
@group(0) @binding(14) var<storage, read_write> y4: array<vec4f>;
@group(0) @binding(15) var<storage, read> dy4: array<vec4f>;
@group(0) @binding(16) var<storage, read_write> dx4: array<vec4f>;

fn sum4(v: vec4f) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

@compute @workgroup_size(WG)
fn stats_partial_vec4(@builtin(global_invocation_id) gid: vec3u) {
  let index = gid.x;
  if (index >= dims.channels * dims.chunks) { return; }
  let c = index / dims.chunks;
  let k = index % dims.chunks;
  let shift = vec4f(x4[c * dims.hw / 4u].x);
  var s = vec4f(0.0);
  var s2 = vec4f(0.0);
  let n_end = min((k + 1u) * dims.samples_per_chunk, dims.batch);
  let hw4 = dims.hw / 4u;
  for (var n = k * dims.samples_per_chunk; n < n_end; n++) {
    let base = (n * dims.channels + c) * hw4;
    for (var i = 0u; i < hw4; i++) {
      let v = x4[base + i] - shift;
      s += v;
      s2 = fma(v, v, s2);
    }
  }
  partial[index * 2u] = sum4(s);
  partial[index * 2u + 1u] = sum4(s2);
}

@compute @workgroup_size(WG)
fn normalize_vec4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let index = gid.x + gid.y * nwg.x * WG;
  if (index >= segments()) { return; }
  let seg = segment_of(index);
  let a = affine(seg.c);
  for (var i = seg.base / 4u; i < seg.end / 4u; i++) {
    var v = fma(x4[i], vec4f(a.scale), vec4f(a.shift));
    if (RELU) { v = max(v, vec4f(0.0)); }
    y4[i] = v;
  }
}

fn masked_dy4(i: u32, xi: vec4f, a: Affine) -> vec4f {
  return select(dy4[i], vec4f(0.0), vec4<bool>(RELU) & (fma(xi, vec4f(a.scale), vec4f(a.shift)) <= vec4f(0.0)));
}

@compute @workgroup_size(WG)
fn backward_partial_vec4(@builtin(global_invocation_id) gid: vec3u) {
  let index = gid.x;
  if (index >= dims.channels * dims.chunks) { return; }
  let c = index / dims.chunks;
  let k = index % dims.chunks;
  let mean = vec4f(saved_stats[c]);
  let invstd = saved_stats[dims.channels + c];
  let a = affine(c);
  var sdy = vec4f(0.0);
  var sdyx = vec4f(0.0);
  let n_end = min((k + 1u) * dims.samples_per_chunk, dims.batch);
  let hw4 = dims.hw / 4u;
  for (var n = k * dims.samples_per_chunk; n < n_end; n++) {
    let base = (n * dims.channels + c) * hw4;
    for (var i = 0u; i < hw4; i++) {
      let xi = x4[base + i];
      let xhat = (xi - mean) * invstd;
      let d = masked_dy4(base + i, xi, a);
      sdy += d;
      sdyx = fma(d, xhat, sdyx);
    }
  }
  partial[index * 2u] = sum4(sdy);
  partial[index * 2u + 1u] = sum4(sdyx);
}

@compute @workgroup_size(WG)
fn backward_input_vec4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let index = gid.x + gid.y * nwg.x * WG;
  if (index >= segments()) { return; }
  let seg = segment_of(index);
  let c = seg.c;
  let mean = vec4f(saved_stats[c]);
  let invstd = saved_stats[dims.channels + c];
  let a = affine(c);
  let m = f32(dims.batch * dims.hw);
  let training = dims.training != 0u;
  let mean_dy = vec4f(select(0.0, dparams[dims.channels + c] / m, training));
  let mean_dyx = select(0.0, dparams[c] / m, training);
  for (var i = seg.base / 4u; i < seg.end / 4u; i++) {
    let xi = x4[i];
    let xhat = (xi - mean) * invstd;
    let d = masked_dy4(i, xi, a);
    dx4[i] = a.scale * (d - mean_dy - xhat * mean_dyx);
  }
}
