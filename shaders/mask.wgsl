// Filter norms and masks for Soft Filter Pruning (see src/ops/mask.ts). A conv weight [out, in, kh, kw]
// is seen as `filters` rows of `filter_size` values each.

struct Dims { filters: u32, filter_size: u32, norm_p: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> norms: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<u32>;
@group(0) @binding(4) var<storage, read_write> masked: array<f32>;

override WG: u32 = 64u;

// norms[f] = ‖weight[f, :]‖_p for p = 1 or 2. One invocation per filter.
@compute @workgroup_size(WG)
fn filter_norms(@builtin(global_invocation_id) gid: vec3u) {
  let f = gid.x;
  if (f >= dims.filters) { return; }
  let base = f * dims.filter_size;
  var acc = 0.0;
  for (var i = 0u; i < dims.filter_size; i++) {
    let v = weight[base + i];
    if (dims.norm_p == 1u) { acc += abs(v); } else { acc += v * v; }
  }
  norms[f] = select(sqrt(acc), acc, dims.norm_p == 1u);
}

// norms[f] = Σ_g ‖weight[f] − weight[g]‖₂: the filters nearest the geometric median have the smallest
// sum and are the most replaceable (FPGM). One invocation per filter.
@compute @workgroup_size(WG)
fn distance_sums(@builtin(global_invocation_id) gid: vec3u) {
  let f = gid.x;
  if (f >= dims.filters) { return; }
  var total = 0.0;
  for (var g = 0u; g < dims.filters; g++) {
    var d = 0.0;
    for (var i = 0u; i < dims.filter_size; i++) {
      let diff = weight[f * dims.filter_size + i] - weight[g * dims.filter_size + i];
      d += diff * diff;
    }
    total += sqrt(d);
  }
  norms[f] = total;
}

// masked[f, :] = 0 where mask[f] == 0, in place. One invocation per element.
@compute @workgroup_size(WG)
fn apply_filter_mask(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= dims.filters * dims.filter_size) { return; }
  if (mask[i / dims.filter_size] == 0u) { masked[i] = 0.0; }
}
