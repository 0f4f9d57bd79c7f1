// C[M, N] = op(A) · op(B) with subgroup shuffles (see src/ops/matmul.ts; the portable fallback is
// matmul.wgsl). A workgroup computes TM = 16 rows of C; each invocation 4 consecutive columns of
// those rows. Per block of 4 values of k, each lane loads ceil(TM / SG) rows of A (4 values each)
// and its own 4 × 4 block of B; the A values reach every lane through subgroupShuffle with a lane
// index that is constant after unrolling. On lavapipe a load whose index is not a compile-time
// constant is a loop over the SIMD lanes, a shuffle a register permute: this cuts the loads per
// multiply-add from 1/4 (matmul.wgsl) to about 1/40.
//
// Any M, N, K and both transposes: rows and columns past the edge are clamped for loads and skipped
// for stores; k runs in blocks of 4 and a tail of single steps. VEC_A / VEC_B select vec4 loads along
// the contiguous axis where the sizes allow (set by src/ops/matmul.ts). Correct for any subgroup size
// SG, which must equal the device's; WG must be a multiple of SG; every subgroup op sits in uniform
// control flow (no early return).
enable subgroups;

struct Dims { m: u32, n: u32, k: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
// The same buffers as a and b, read four floats at a time.
@group(0) @binding(4) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> b4: array<vec4<f32>>;

override WG: u32 = 64u;
override SG: u32 = 8u;
override TRANS_A: bool = false;
override TRANS_B: bool = false;
// A not transposed and K % 4 == 0: a row of A as vec4 along k.
override VEC_A: bool = false;
// B not transposed and N % 4 == 0: a row of B as vec4 along n; B transposed and K % 4 == 0: a row of
// Bᵀ (a column of op(B)) as vec4 along k.
override VEC_B: bool = false;
const TM = 16u;
// Rows of A a lane loads per k: ceil(TM / SG) ≤ TM (subgroups of 1 included).
const LOADS_MAX = 16u;

// A driver may run a pipeline in subgroups of another width than the adapter reports (register pressure can
// make it compile one narrower), or number its lanes otherwise than lane = local index mod SG (the start-up
// check also tests that neighbouring lanes are consecutive invocations; each invocation here tests only its
// own number); every index below assumes both, so such a pipeline writes NaN, loudly, instead of numbers
// from lanes that do not hold what the indexing expects.
fn lanes_checked(v: f32, sg_size: u32, lane: u32, li: u32) -> f32 {
  return select(bitcast<f32>(0x7fc00000u | (sg_size & 0u)), v, sg_size == SG && lane == li % SG);
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32,
           @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sg_size: u32) {
  let m = dims.m;
  let n = dims.n;
  let kk = dims.k;
  let row0 = wid.y * TM;
  let col = (wid.x * WG + li) * 4u;
  let loads = (TM + SG - 1u) / SG;
  // Clamped rows this lane loads, and clamped columns this invocation computes.
  var rows: array<u32, LOADS_MAX>;
  for (var q = 0u; q < loads; q++) { rows[q] = min(row0 + q * SG + lane, m - 1u); }
  var cols: array<u32, 4>;
  for (var t = 0u; t < 4u; t++) { cols[t] = min(col + t, n - 1u); }
  let col4 = min(col, n - 1u) / 4u;

  var acc: array<vec4<f32>, TM>;
  let blocks = kk / 4u;
  for (var kb = 0u; kb < blocks; kb++) {
    let k0 = kb * 4u;
    // al[q][s] = A(rows[q], k0 + s)
    var al: array<vec4<f32>, LOADS_MAX>;
    for (var q = 0u; q < loads; q++) {
      let i = rows[q];
      if (VEC_A) {
        al[q] = a4[(i * kk + k0) / 4u];
      } else if (TRANS_A) {
        al[q] = vec4<f32>(a[k0 * m + i], a[(k0 + 1u) * m + i], a[(k0 + 2u) * m + i], a[(k0 + 3u) * m + i]);
      } else {
        let base = i * kk + k0;
        al[q] = vec4<f32>(a[base], a[base + 1u], a[base + 2u], a[base + 3u]);
      }
    }
    // bl[s] = B(k0 + s, cols[0..4])
    var bl: array<vec4<f32>, 4>;
    if (TRANS_B) {
      // B stored [N, K]: column t of op(B) is row cols[t] of B.
      var bt: array<vec4<f32>, 4>;
      for (var t = 0u; t < 4u; t++) {
        let base = cols[t] * kk + k0;
        if (VEC_B) {
          bt[t] = b4[base / 4u];
        } else {
          bt[t] = vec4<f32>(b[base], b[base + 1u], b[base + 2u], b[base + 3u]);
        }
      }
      for (var s = 0u; s < 4u; s++) { bl[s] = vec4<f32>(bt[0][s], bt[1][s], bt[2][s], bt[3][s]); }
    } else {
      for (var s = 0u; s < 4u; s++) {
        let base = (k0 + s) * n;
        if (VEC_B) {
          bl[s] = b4[base / 4u + col4];
        } else {
          bl[s] = vec4<f32>(b[base + cols[0]], b[base + cols[1]], b[base + cols[2]], b[base + cols[3]]);
        }
      }
    }
    for (var s = 0u; s < 4u; s++) {
      for (var r = 0u; r < TM; r++) {
        let x = subgroupShuffle(al[r / SG][s], r % SG);
        acc[r] = fma(vec4<f32>(x), bl[s], acc[r]);
      }
    }
  }
  // The last K % 4 values of k, one at a time.
  for (var k = blocks * 4u; k < kk; k++) {
    var al: array<f32, LOADS_MAX>;
    for (var q = 0u; q < loads; q++) {
      if (TRANS_A) { al[q] = a[k * m + rows[q]]; } else { al[q] = a[rows[q] * kk + k]; }
    }
    var bv: vec4<f32>;
    for (var t = 0u; t < 4u; t++) {
      if (TRANS_B) { bv[t] = b[cols[t] * kk + k]; } else { bv[t] = b[k * n + cols[t]]; }
    }
    for (var r = 0u; r < TM; r++) {
      let x = subgroupShuffle(al[r / SG], r % SG);
      acc[r] = fma(vec4<f32>(x), bv, acc[r]);
    }
  }

  for (var r = 0u; r < TM; r++) {
    let i = row0 + r;
    if (i >= m) { break; }
    for (var t = 0u; t < 4u; t++) {
      if (col + t < n) { c[i * n + col + t] = lanes_checked(acc[r][t], sg_size, lane, li); }
    }
  }
}
