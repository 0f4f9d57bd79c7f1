// Elementwise kernels (see src/ops/elementwise.ts). One invocation per output element; the grid is
// folded into two dimensions for large tensors, so the linear index is gid.x + gid.y * nwg.x * WG.
// The op is an override constant, so each pipeline compiles to a single expression.

struct Dims {
  n: u32, alpha: f32,
  out0: u32, out1: u32, out2: u32, out3: u32, out4: u32, out5: u32,
  a0: u32, a1: u32, a2: u32, a3: u32, a4: u32, a5: u32,
  b0: u32, b1: u32, b2: u32, b3: u32, b4: u32, b5: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
// The same buffers as vec4s, for the *_vec4 entry points (element counts that are multiples of 4, with
// dims.n counting vec4s): one 16-byte load per lane instead of four scalar ones, which on a CPU
// driver are a loop over the lanes each.
@group(0) @binding(4) var<storage, read> a4: array<vec4f>;
@group(0) @binding(5) var<storage, read> b4: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> y4: array<vec4f>;

override WG: u32 = 256u;
// Binary: 0 add, 1 sub, 2 mul, 3 div, 4 equal (1 or 0), 5 a where b > 0 else 0 (relu backward),
//         6 a (with b = a: broadcast a copy), 7 max(a + b, 0) (residual add fused with ReLU).
// Unary:  0 relu, 1 exp, 2 log, 3 neg, 4 scale by alpha, 5 add alpha.
override OP: u32 = 0u;

fn binary_op(x: f32, z: f32) -> f32 {
  switch OP {
    case 0u: { return x + z; }
    case 1u: { return x - z; }
    case 2u: { return x * z; }
    case 3u: { return x / z; }
    case 4u: { return select(0.0, 1.0, x == z); }
    case 5u: { return select(0.0, x, z > 0.0); }
    case 6u: { return x; }
    case 7u: { return max(x + z, 0.0); }
    default: { return 0.0; }
  }
}

fn unary_op(x: f32) -> f32 {
  switch OP {
    case 0u: { return max(x, 0.0); }
    case 1u: { return exp(x); }
    case 2u: { return log(x); }
    case 3u: { return -x; }
    case 4u: { return x * dims.alpha; }
    case 5u: { return x + dims.alpha; }
    default: { return 0.0; }
  }
}

fn binary_op4(x: vec4f, z: vec4f) -> vec4f {
  return vec4f(binary_op(x.x, z.x), binary_op(x.y, z.y), binary_op(x.z, z.z), binary_op(x.w, z.w));
}

fn unary_op4(x: vec4f) -> vec4f {
  return vec4f(unary_op(x.x), unary_op(x.y), unary_op(x.z), unary_op(x.w));
}

fn linear_index(gid: vec3u, nwg: vec3u) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// y = a op b, same shape: one invocation per element.
@compute @workgroup_size(WG)
fn binary_same(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg);
  if (i >= dims.n) { return; }
  y[i] = binary_op(a[i], b[i]);
}

// y = a op b with broadcasting: the output index is split into up to 6 coordinates and each input is
// read through its strides (0 along a stretched dimension).
@compute @workgroup_size(WG)
fn binary_broadcast(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg);
  if (i >= dims.n) { return; }
  let shape = array<u32, 6>(dims.out0, dims.out1, dims.out2, dims.out3, dims.out4, dims.out5);
  let sa = array<u32, 6>(dims.a0, dims.a1, dims.a2, dims.a3, dims.a4, dims.a5);
  let sb = array<u32, 6>(dims.b0, dims.b1, dims.b2, dims.b3, dims.b4, dims.b5);
  var rest = i;
  var ia = 0u;
  var ib = 0u;
  for (var d = 5i; d >= 0; d--) {
    let size = shape[d];
    let coord = rest % size;
    rest = rest / size;
    ia += coord * sa[d];
    ib += coord * sb[d];
  }
  y[i] = binary_op(a[ia], b[ib]);
}

// y = f(a): one invocation per element.
@compute @workgroup_size(WG)
fn unary(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg);
  if (i >= dims.n) { return; }
  y[i] = unary_op(a[i]);
}

// y += a, in place (gradient accumulation).
@compute @workgroup_size(WG)
fn accumulate(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg);
  if (i >= dims.n) { return; }
  y[i] = y[i] + a[i];
}

// y = alpha everywhere.
@compute @workgroup_size(WG)
fn fill(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg);
  if (i >= dims.n) { return; }
  y[i] = dims.alpha;
}

@compute @workgroup_size(WG)
fn binary_same_vec4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg);
  if (i >= dims.n) { return; }
  y4[i] = binary_op4(a4[i], b4[i]);
}

@compute @workgroup_size(WG)
fn unary_vec4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg);
  if (i >= dims.n) { return; }
  y4[i] = unary_op4(a4[i]);
}

@compute @workgroup_size(WG)
fn accumulate_vec4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg);
  if (i >= dims.n) { return; }
  y4[i] = y4[i] + a4[i];
}

@compute @workgroup_size(WG)
fn fill_vec4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg);
  if (i >= dims.n) { return; }
  y4[i] = vec4f(dims.alpha);
}

// y = a op b where b is repeated whole along a's leading axes (dims.out0 = b's length in vec4s).
@compute @workgroup_size(WG)
fn binary_tiled_vec4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = linear_index(gid, nwg);
  if (i >= dims.n) { return; }
  y4[i] = binary_op4(a4[i], b4[i % dims.out0]);
}
