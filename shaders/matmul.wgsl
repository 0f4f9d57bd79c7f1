// C[M, N] = op(A) · op(B), op = optional transpose (see src/ops/matmul.ts).
// Register-blocked: each invocation computes a TM × TN block of C, keeping the block's accumulators in
// registers and reusing every loaded value of A TN times and of B TM times. No workgroup memory: on
// CPU drivers (lavapipe) the caches do that job and barriers cost more than they save.

struct Dims { m: u32, n: u32, k: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
const TM = 4u;
const TN = 4u;

fn load_a(i: u32, k: u32) -> f32 {
  if (i >= dims.m) { return 0.0; }
  if (TRANS_A) { return a[k * dims.m + i]; }
  return a[i * dims.k + k];
}

fn load_b(k: u32, j: u32) -> f32 {
  if (j >= dims.n) { return 0.0; }
  if (TRANS_B) { return b[j * dims.k + k]; }
  return b[k * dims.n + j];
}

// Workgroup 8 × 8; invocation (x, y) computes rows y*TM.. and columns x*TN.. of its 32 × 32 tile.
@compute @workgroup_size(8, 8)
fn forward(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.y * TM;
  let col = gid.x * TN;
  if (row >= dims.m || col >= dims.n) { return; }
  var acc: array<vec4<f32>, 4>;
  for (var k = 0u; k < dims.k; k++) {
    let bv = vec4<f32>(load_b(k, col), load_b(k, col + 1u), load_b(k, col + 2u), load_b(k, col + 3u));
    for (var r = 0u; r < TM; r++) {
      acc[r] = fma(vec4<f32>(load_a(row + r, k)), bv, acc[r]);
    }
  }
  for (var r = 0u; r < TM; r++) {
    let i = row + r;
    if (i >= dims.m) { break; }
    for (var s = 0u; s < TN; s++) {
      let j = col + s;
      if (j < dims.n) { c[i * dims.n + j] = acc[r][s]; }
    }
  }
}

// For comparison only (bench/matmul.bench.ts): the textbook kernel, one invocation per element of C,
// workgroup 8 × 8, every operand read straight from memory.
@compute @workgroup_size(8, 8)
fn naive(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.y;
  let j = gid.x;
  if (i >= dims.m || j >= dims.n) { return; }
  var acc = 0.0;
  for (var k = 0u; k < dims.k; k++) {
    acc = fma(load_a(i, k), load_b(k, j), acc);
  }
  c[i * dims.n + j] = acc;
}
