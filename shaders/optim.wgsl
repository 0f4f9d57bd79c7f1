// Optimizer updates, one kernel per parameter tensor (see src/optim/sgd.ts). One invocation per element.

struct Dims { n: u32, lr: f32, momentum: f32, dampening: f32, weight_decay: f32, nesterov: u32, first_step: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> velocity: array<f32>;

override WG: u32 = 256u;

// PyTorch's SGD: g = grad + wd·w; v = g on the first step, else momentum·v + (1 − dampening)·g;
// the step is g + momentum·v with Nesterov, else v; w -= lr · step.
@compute @workgroup_size(WG)
fn sgd_momentum(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= dims.n) { return; }
  let w = param[i];
  let g = grad[i] + dims.weight_decay * w;
  var v = g;
  if (dims.first_step == 0u) { v = dims.momentum * velocity[i] + (1.0 - dims.dampening) * g; }
  velocity[i] = v;
  var step = v;
  if (dims.nesterov != 0u) { step = g + dims.momentum * v; }
  param[i] = w - dims.lr * step;
}

// Plain SGD without momentum: w -= lr · (grad + wd·w).
@compute @workgroup_size(WG)
fn sgd(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= dims.n) { return; }
  let w = param[i];
  param[i] = w - dims.lr * (grad[i] + dims.weight_decay * w);
}
