// Softmax cross-entropy, fused and numerically stable, with its backward; argmax and correct counts
// (see src/ops/loss.ts). One invocation per row (a row is one sample's logits).

struct Dims { rows: u32, classes: u32, scale: f32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> probs: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> indices: array<u32>;
@group(0) @binding(8) var<storage, read_write> hits: array<f32>;

override WG: u32 = 64u;

// loss = logsumexp(x) - x[label], with the max subtracted before exp; saves softmax(x) for backward.
// An out-of-range label gives a NaN loss rather than reading another row.
@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.x;
  if (row >= dims.rows) { return; }
  let base = row * dims.classes;
  var m = bitcast<f32>(0xff7fffffu);
  for (var c = 0u; c < dims.classes; c++) { m = max(m, logits[base + c]); }
  var s = 0.0;
  for (var c = 0u; c < dims.classes; c++) {
    let e = exp(logits[base + c] - m);
    probs[base + c] = e;
    s += e;
  }
  let inv = 1.0 / s;
  for (var c = 0u; c < dims.classes; c++) { probs[base + c] *= inv; }
  let label = labels[row];
  if (label >= dims.classes) {
    losses[row] = bitcast<f32>(0x7fc00000u | (label & 0u));
    return;
  }
  losses[row] = m + log(s) - logits[base + label];
}

// dx = (softmax(x) - onehot(label)) · dy[row] · scale.
@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.x;
  if (row >= dims.rows) { return; }
  let base = row * dims.classes;
  let g = dy[row] * dims.scale;
  let label = labels[row];
  for (var c = 0u; c < dims.classes; c++) {
    let onehot = select(0.0, 1.0, c == label);
    dx[base + c] = (probs[base + c] - onehot) * g;
  }
}

// Index of the largest logit in a row (the first one on ties).
fn row_argmax(row: u32) -> u32 {
  let base = row * dims.classes;
  var best = 0u;
  var value = logits[base];
  for (var c = 1u; c < dims.classes; c++) {
    let v = logits[base + c];
    if (v > value) { value = v; best = c; }
  }
  return best;
}

// indices[row] = argmax of the row.
@compute @workgroup_size(WG)
fn argmax(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.x;
  if (row >= dims.rows) { return; }
  indices[row] = row_argmax(row);
}

// 1 where the row's argmax equals its label, else 0.
@compute @workgroup_size(WG)
fn correct(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.x;
  if (row >= dims.rows) { return; }
  hits[row] = select(0.0, 1.0, row_argmax(row) == labels[row]);
}
