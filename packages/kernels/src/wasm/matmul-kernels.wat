;; A matrix product for a few rows over the tfjs wasm backend's own heap (imported memory), in
;; 128-bit SIMD: out[M, N] = bias + x[M, K]·w[K, N], row-major, for M ≤ 16 and N a multiple of 4.
;; Why: XNNPACK packs the right-hand matrix before it multiplies and keeps the packed copy per
;; tensor; a weight that changes every step (AdamW, EMA) is packed anew every step, and for SiT's
;; 4096 × 4096 projection layer at batch 4 that packing (≈ 70 ms) costs several times the product.
;; Here w streams through once, unpacked.
;; Pointers are byte addresses into the heap, counts are float32 elements; arithmetic is float32,
;; each product rounded and then added (no fused multiply-add), k in increasing order for every
;; output, so the JavaScript twin in flat-kernels.ts gives the same bits.
;; One of the sources of flat-kernels.wasm.ts: regenerate with
;; `npx tsx tools/wasm/build-flat-kernels.ts` (flat-updates.test.ts fails when they differ). The
;; generator puts the import of a shared or unshared memory in place of the marker below.
(module
  ;; @memory

  ;; Columns go in chunks of 256 (1 KB of each row): a chunk of out [M, 256] (≤ 16 KB) and the
  ;; four rows of w in use (4 KB) stay in the L1 cache while the chunk sees every k.
  (func (export "gemm_small")
    (param $out i32) (param $x i32) (param $w i32) (param $bias i32) (param $hasBias i32)
    (param $m i32) (param $k i32) (param $n i32)
    (local $j0 i32) (local $jn i32) (local $kk i32) (local $i i32) (local $row i32)
    (local $o i32) (local $end i32) (local $wp i32) (local $xp i32)
    (local $r1 i32) (local $r2 i32) (local $r3 i32)
    (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128) (local $acc v128)
    (local.set $row (i32.shl (local.get $n) (i32.const 2)))
    (local.set $r1 (local.get $row))
    (local.set $r2 (i32.shl (local.get $row) (i32.const 1)))
    (local.set $r3 (i32.add (local.get $r2) (local.get $row)))
    (block $chunks_done (loop $chunk
      (br_if $chunks_done (i32.ge_u (local.get $j0) (local.get $n)))
      (local.set $jn (select (i32.add (local.get $j0) (i32.const 256)) (local.get $n)
        (i32.lt_u (i32.add (local.get $j0) (i32.const 256)) (local.get $n))))
      ;; out[:, j0..jn] ← bias[j0..jn] (or 0)
      (local.set $i (i32.const 0))
      (block $init_done (loop $init
        (br_if $init_done (i32.ge_u (local.get $i) (local.get $m)))
        (local.set $o (i32.add (local.get $out)
          (i32.shl (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $j0)) (i32.const 2))))
        (if (local.get $hasBias)
          (then (memory.copy (local.get $o)
            (i32.add (local.get $bias) (i32.shl (local.get $j0) (i32.const 2)))
            (i32.shl (i32.sub (local.get $jn) (local.get $j0)) (i32.const 2))))
          (else (memory.fill (local.get $o) (i32.const 0)
            (i32.shl (i32.sub (local.get $jn) (local.get $j0)) (i32.const 2)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $init)))
      ;; four rows of w at a time: out[i, j] += x[i,k]·w[k,j], then k+1, k+2, k+3
      (local.set $kk (i32.const 0))
      (block $k4_done (loop $k4
        (br_if $k4_done (i32.gt_u (i32.add (local.get $kk) (i32.const 4)) (local.get $k)))
        (local.set $i (i32.const 0))
        (block $rows_done (loop $rows
          (br_if $rows_done (i32.ge_u (local.get $i) (local.get $m)))
          (local.set $xp (i32.add (local.get $x)
            (i32.shl (i32.add (i32.mul (local.get $i) (local.get $k)) (local.get $kk)) (i32.const 2))))
          (local.set $s0 (v128.load32_splat (local.get $xp)))
          (local.set $s1 (v128.load32_splat offset=4 (local.get $xp)))
          (local.set $s2 (v128.load32_splat offset=8 (local.get $xp)))
          (local.set $s3 (v128.load32_splat offset=12 (local.get $xp)))
          (local.set $o (i32.add (local.get $out)
            (i32.shl (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $j0)) (i32.const 2))))
          (local.set $end (i32.add (local.get $o)
            (i32.shl (i32.sub (local.get $jn) (local.get $j0)) (i32.const 2))))
          (local.set $wp (i32.add (local.get $w)
            (i32.shl (i32.add (i32.mul (local.get $kk) (local.get $n)) (local.get $j0)) (i32.const 2))))
          (block $cols_done (loop $cols
            (br_if $cols_done (i32.ge_u (local.get $o) (local.get $end)))
            (local.set $acc (f32x4.add (v128.load align=4 (local.get $o))
              (f32x4.mul (local.get $s0) (v128.load align=4 (local.get $wp)))))
            (local.set $acc (f32x4.add (local.get $acc)
              (f32x4.mul (local.get $s1) (v128.load align=4 (i32.add (local.get $wp) (local.get $r1))))))
            (local.set $acc (f32x4.add (local.get $acc)
              (f32x4.mul (local.get $s2) (v128.load align=4 (i32.add (local.get $wp) (local.get $r2))))))
            (v128.store align=4 (local.get $o) (f32x4.add (local.get $acc)
              (f32x4.mul (local.get $s3) (v128.load align=4 (i32.add (local.get $wp) (local.get $r3))))))
            (local.set $o (i32.add (local.get $o) (i32.const 16)))
            (local.set $wp (i32.add (local.get $wp) (i32.const 16)))
            (br $cols)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $rows)))
        (local.set $kk (i32.add (local.get $kk) (i32.const 4)))
        (br $k4)))
      ;; the remaining k < 4 rows of w, one at a time
      (block $k1_done (loop $k1
        (br_if $k1_done (i32.ge_u (local.get $kk) (local.get $k)))
        (local.set $i (i32.const 0))
        (block $rows_done (loop $rows
          (br_if $rows_done (i32.ge_u (local.get $i) (local.get $m)))
          (local.set $s0 (v128.load32_splat (i32.add (local.get $x)
            (i32.shl (i32.add (i32.mul (local.get $i) (local.get $k)) (local.get $kk)) (i32.const 2)))))
          (local.set $o (i32.add (local.get $out)
            (i32.shl (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $j0)) (i32.const 2))))
          (local.set $end (i32.add (local.get $o)
            (i32.shl (i32.sub (local.get $jn) (local.get $j0)) (i32.const 2))))
          (local.set $wp (i32.add (local.get $w)
            (i32.shl (i32.add (i32.mul (local.get $kk) (local.get $n)) (local.get $j0)) (i32.const 2))))
          (block $cols_done (loop $cols
            (br_if $cols_done (i32.ge_u (local.get $o) (local.get $end)))
            (v128.store align=4 (local.get $o) (f32x4.add (v128.load align=4 (local.get $o))
              (f32x4.mul (local.get $s0) (v128.load align=4 (local.get $wp)))))
            (local.set $o (i32.add (local.get $o) (i32.const 16)))
            (local.set $wp (i32.add (local.get $wp) (i32.const 16)))
            (br $cols)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $rows)))
        (local.set $kk (i32.add (local.get $kk) (i32.const 1)))
        (br $k1)))
      (local.set $j0 (local.get $jn))
      (br $chunk))))
)
