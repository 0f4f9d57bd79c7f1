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
override WX: u32 = 16u;
override WY: u32 = 4u;
const TM = 8u;
const TN = 8u;

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

// Invocation (x, y) computes rows y*TM .. +TM and columns x*TN .. +TN of C, in blocks of 4 values
// of k (then a tail of single steps). Rows and columns past the edge are clamped for loads (no
// branches in the loop) and skipped for stores.
@compute @workgroup_size(WX, WY)
fn forward(@builtin(global_invocation_id) gid: vec3u) {
  let m = dims.m;
  let n = dims.n;
  let kk = dims.k;
  let row0 = gid.y * TM;
  let col0 = gid.x * TN;
  if (row0 >= m || col0 >= n) { return; }
  var rows: array<u32, TM>;
  for (var r = 0u; r < TM; r++) { rows[r] = min(row0 + r, m - 1u); }
  var cols: array<u32, TN>;
  for (var t = 0u; t < TN; t++) { cols[t] = min(col0 + t, n - 1u); }
  var acc: array<array<vec4<f32>, 2>, TM>;
  let blocks = kk / 4u;
  for (var kb = 0u; kb < blocks; kb++) {
    let k0 = kb * 4u;
    // al[r][s] = A(rows[r], k0 + s); bl[s][h] = B(k0 + s, cols[4h .. 4h+4]). Scalar loads: vec4 views
    // of a and b (two more bindings) measured only ~20% cheaper per float on lavapipe.
    var al: array<vec4<f32>, TM>;
    for (var r = 0u; r < TM; r++) {
      for (var s = 0u; s < 4u; s++) {
        if (TRANS_A) { al[r][s] = a[(k0 + s) * m + rows[r]]; } else { al[r][s] = a[rows[r] * kk + k0 + s]; }
      }
    }
    var bl: array<array<vec4<f32>, 2>, 4>;
    for (var s = 0u; s < 4u; s++) {
      for (var t = 0u; t < TN; t++) {
        if (TRANS_B) { bl[s][t / 4u][t % 4u] = b[cols[t] * kk + k0 + s]; } else { bl[s][t / 4u][t % 4u] = b[(k0 + s) * n + cols[t]]; }
      }
    }
    for (var s = 0u; s < 4u; s++) {
      for (var r = 0u; r < TM; r++) {
        acc[r][0] = fma(vec4<f32>(al[r][s]), bl[s][0], acc[r][0]);
        acc[r][1] = fma(vec4<f32>(al[r][s]), bl[s][1], acc[r][1]);
      }
    }
  }
  for (var k = blocks * 4u; k < kk; k++) {
    var bv: array<vec4<f32>, 2>;
    for (var t = 0u; t < TN; t++) {
      if (TRANS_B) { bv[t / 4u][t % 4u] = b[cols[t] * kk + k]; } else { bv[t / 4u][t % 4u] = b[k * n + cols[t]]; }
    }
    for (var r = 0u; r < TM; r++) {
      var x: f32;
      if (TRANS_A) { x = a[k * m + rows[r]]; } else { x = a[rows[r] * kk + k]; }
      acc[r][0] = fma(vec4<f32>(x), bv[0], acc[r][0]);
      acc[r][1] = fma(vec4<f32>(x), bv[1], acc[r][1]);
    }
  }

  for (var r = 0u; r < TM; r++) {
    let i = row0 + r;
    if (i >= m) { break; }
    for (var t = 0u; t < TN; t++) {
      if (col0 + t < n) { c[i * n + col0 + t] = acc[r][t / 4u][t % 4u]; }
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
