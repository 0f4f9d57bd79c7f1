// Reductions along one axis of a tensor seen as [outer, reduce, inner] (see src/ops/reduce.ts).
// One invocation per output; a long axis with few outputs is split into `chunks` partial results
// first (a second pass reduces them), so no single invocation walks millions of elements.

struct Dims { outer: u32, reduce: u32, inner: u32, chunk: u32, chunks: u32, scale: f32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

override WG: u32 = 256u;
// 0 sum, 1 max
override OP: u32 = 0u;

// y[(o * chunks + c) * inner + i] = scale * reduce_{r in chunk c} x[(o * reduce + r) * inner + i]
@compute @workgroup_size(WG)
fn reduce_axis(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let index = gid.x + gid.y * nwg.x * WG;
  let total = dims.outer * dims.chunks * dims.inner;
  if (index >= total) { return; }
  let i = index % dims.inner;
  let oc = index / dims.inner;
  let c = oc % dims.chunks;
  let o = oc / dims.chunks;
  let begin = c * dims.chunk;
  let end = min(begin + dims.chunk, dims.reduce);
  var base = (o * dims.reduce + begin) * dims.inner + i;
  var acc = select(0.0, bitcast<f32>(0xff7fffffu), OP == 1u);
  for (var r = begin; r < end; r++) {
    let v = x[base];
    if (OP == 1u) { acc = max(acc, v); } else { acc += v; }
    base += dims.inner;
  }
  y[index] = acc * dims.scale;
}
