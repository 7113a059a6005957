;; Layer operations over the tfjs wasm backend's own heap (imported memory), in 128-bit SIMD:
;; column sums (bias gradients), LayerNorm forward and backward over rows, and exact GELU forward
;; and backward (Φ from an erfc fit, exp by range reduction: no libm call per element).
;; Pointers are byte addresses into the heap, counts are float32 elements; arithmetic is float32.
;; One of the sources of flat-kernels.wasm.ts: regenerate with
;; `npx tsx tools/wasm/build-flat-kernels.ts` (heap-ops.test.ts fails when they differ). The
;; generator puts the import of a shared or unshared memory in place of the marker below.
(module
  ;; @memory

  ;; Column sums of a row-major [rows, cols] matrix: out[j] ← Σᵢ x[i, j] in float32, adding the
  ;; rows in order into `out` (which stays in cache) while x streams through once.
  (func (export "colsum") (param $out i32) (param $x i32) (param $rows i32) (param $cols i32)
    (local $cols4 i32) (local $j i32) (local $i i32) (local $o i32)
    (local.set $cols4 (i32.and (local.get $cols) (i32.const -4)))
    (memory.fill (local.get $out) (i32.const 0) (i32.shl (local.get $cols) (i32.const 2)))
    (block $done
      (loop $row
        (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
        (local.set $j (i32.const 0))
        (block $vec_done
          (loop $vec
            (br_if $vec_done (i32.ge_u (local.get $j) (local.get $cols4)))
            (local.set $o (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2))))
            (v128.store align=4 (local.get $o)
              (f32x4.add (v128.load align=4 (local.get $o))
                (v128.load align=4 (i32.add (local.get $x) (i32.shl (local.get $j) (i32.const 2))))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $vec)))
        (block $tail_done
          (loop $tail
            (br_if $tail_done (i32.ge_u (local.get $j) (local.get $cols)))
            (local.set $o (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2))))
            (f32.store (local.get $o)
              (f32.add (f32.load (local.get $o))
                (f32.load (i32.add (local.get $x) (i32.shl (local.get $j) (i32.const 2))))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $tail)))
        (local.set $x (i32.add (local.get $x) (i32.shl (local.get $cols) (i32.const 2))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $row))))

  ;; Sum of the four lanes of a float32 vector, as (l0 + l1) + (l2 + l3).
  (func $hsum (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; LayerNorm forward over the rows of x [rows, cols]: μ and σ² of each row (two passes),
  ;; rstd = 1/√(σ² + eps), x̂ = (x − μ)·rstd, y = x̂·γ + β. Writes y, x̂ and rstd (one per row).
  (func (export "ln_fwd")
    (param $y i32) (param $xh i32) (param $rstd i32) (param $x i32) (param $g i32) (param $b i32)
    (param $rows i32) (param $cols i32) (param $eps f32)
    (local $i i32) (local $j i32) (local $cols4 i32) (local $n f32) (local $o i32)
    (local $acc v128) (local $t v128) (local $vmean v128) (local $vr v128)
    (local $s f32) (local $d f32) (local $mean f32) (local $r f32)
    (local.set $cols4 (i32.and (local.get $cols) (i32.const -4)))
    (local.set $n (f32.convert_i32_u (local.get $cols)))
    (block $done
      (loop $row
        (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
        ;; mean
        (local.set $acc (v128.const f32x4 0 0 0 0))
        (local.set $s (f32.const 0))
        (local.set $j (i32.const 0))
        (block $a (loop $l
          (br_if $a (i32.ge_u (local.get $j) (local.get $cols4)))
          (local.set $acc (f32x4.add (local.get $acc)
            (v128.load align=4 (i32.add (local.get $x) (i32.shl (local.get $j) (i32.const 2))))))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $l)))
        (block $a (loop $l
          (br_if $a (i32.ge_u (local.get $j) (local.get $cols)))
          (local.set $s (f32.add (local.get $s)
            (f32.load (i32.add (local.get $x) (i32.shl (local.get $j) (i32.const 2))))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $l)))
        (local.set $mean (f32.div (f32.add (call $hsum (local.get $acc)) (local.get $s)) (local.get $n)))
        (local.set $vmean (f32x4.splat (local.get $mean)))
        ;; variance of the centred row
        (local.set $acc (v128.const f32x4 0 0 0 0))
        (local.set $s (f32.const 0))
        (local.set $j (i32.const 0))
        (block $a (loop $l
          (br_if $a (i32.ge_u (local.get $j) (local.get $cols4)))
          (local.set $t (f32x4.sub
            (v128.load align=4 (i32.add (local.get $x) (i32.shl (local.get $j) (i32.const 2))))
            (local.get $vmean)))
          (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $t) (local.get $t))))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $l)))
        (block $a (loop $l
          (br_if $a (i32.ge_u (local.get $j) (local.get $cols)))
          (local.set $d (f32.sub
            (f32.load (i32.add (local.get $x) (i32.shl (local.get $j) (i32.const 2))))
            (local.get $mean)))
          (local.set $s (f32.add (local.get $s) (f32.mul (local.get $d) (local.get $d))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $l)))
        (local.set $r (f32.div (f32.const 1) (f32.sqrt (f32.add
          (f32.div (f32.add (call $hsum (local.get $acc)) (local.get $s)) (local.get $n))
          (local.get $eps)))))
        (f32.store (i32.add (local.get $rstd) (i32.shl (local.get $i) (i32.const 2))) (local.get $r))
        (local.set $vr (f32x4.splat (local.get $r)))
        ;; x̂ and y
        (local.set $j (i32.const 0))
        (block $a (loop $l
          (br_if $a (i32.ge_u (local.get $j) (local.get $cols4)))
          (local.set $o (i32.shl (local.get $j) (i32.const 2)))
          (local.set $t (f32x4.mul (f32x4.sub
            (v128.load align=4 (i32.add (local.get $x) (local.get $o))) (local.get $vmean))
            (local.get $vr)))
          (v128.store align=4 (i32.add (local.get $xh) (local.get $o)) (local.get $t))
          (v128.store align=4 (i32.add (local.get $y) (local.get $o))
            (f32x4.add (f32x4.mul (local.get $t) (v128.load align=4 (i32.add (local.get $g) (local.get $o))))
              (v128.load align=4 (i32.add (local.get $b) (local.get $o)))))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $l)))
        (block $a (loop $l
          (br_if $a (i32.ge_u (local.get $j) (local.get $cols)))
          (local.set $o (i32.shl (local.get $j) (i32.const 2)))
          (local.set $d (f32.mul (f32.sub
            (f32.load (i32.add (local.get $x) (local.get $o))) (local.get $mean)) (local.get $r)))
          (f32.store (i32.add (local.get $xh) (local.get $o)) (local.get $d))
          (f32.store (i32.add (local.get $y) (local.get $o))
            (f32.add (f32.mul (local.get $d) (f32.load (i32.add (local.get $g) (local.get $o))))
              (f32.load (i32.add (local.get $b) (local.get $o)))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $l)))
        (local.set $x (i32.add (local.get $x) (i32.shl (local.get $cols) (i32.const 2))))
        (local.set $xh (i32.add (local.get $xh) (i32.shl (local.get $cols) (i32.const 2))))
        (local.set $y (i32.add (local.get $y) (i32.shl (local.get $cols) (i32.const 2))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $row))))

  ;; LayerNorm backward over rows: with d = dy·γ, m₁ = mean(d), m₂ = mean(d·x̂):
  ;; dx = (d − m₁ − x̂·m₂)·rstd; dγ = Σ_rows dy·x̂; dβ = Σ_rows dy (dγ, dβ zeroed first).
  (func (export "ln_bwd")
    (param $dx i32) (param $dg i32) (param $db i32) (param $dy i32) (param $xh i32)
    (param $rstd i32) (param $g i32) (param $rows i32) (param $cols i32)
    (local $i i32) (local $j i32) (local $cols4 i32) (local $n f32) (local $o i32)
    (local $a1 v128) (local $a2 v128) (local $t v128) (local $vdy v128) (local $vxh v128)
    (local $vm1 v128) (local $vm2 v128) (local $vr v128)
    (local $s1 f32) (local $s2 f32) (local $d f32) (local $sdy f32) (local $sxh f32)
    (local $m1 f32) (local $m2 f32) (local $r f32)
    (local.set $cols4 (i32.and (local.get $cols) (i32.const -4)))
    (local.set $n (f32.convert_i32_u (local.get $cols)))
    (memory.fill (local.get $dg) (i32.const 0) (i32.shl (local.get $cols) (i32.const 2)))
    (memory.fill (local.get $db) (i32.const 0) (i32.shl (local.get $cols) (i32.const 2)))
    (block $done
      (loop $row
        (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
        (local.set $a1 (v128.const f32x4 0 0 0 0))
        (local.set $a2 (v128.const f32x4 0 0 0 0))
        (local.set $s1 (f32.const 0))
        (local.set $s2 (f32.const 0))
        (local.set $j (i32.const 0))
        (block $a (loop $l
          (br_if $a (i32.ge_u (local.get $j) (local.get $cols4)))
          (local.set $o (i32.shl (local.get $j) (i32.const 2)))
          (local.set $t (f32x4.mul (v128.load align=4 (i32.add (local.get $dy) (local.get $o)))
            (v128.load align=4 (i32.add (local.get $g) (local.get $o)))))
          (local.set $a1 (f32x4.add (local.get $a1) (local.get $t)))
          (local.set $a2 (f32x4.add (local.get $a2)
            (f32x4.mul (local.get $t) (v128.load align=4 (i32.add (local.get $xh) (local.get $o))))))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $l)))
        (block $a (loop $l
          (br_if $a (i32.ge_u (local.get $j) (local.get $cols)))
          (local.set $o (i32.shl (local.get $j) (i32.const 2)))
          (local.set $d (f32.mul (f32.load (i32.add (local.get $dy) (local.get $o)))
            (f32.load (i32.add (local.get $g) (local.get $o)))))
          (local.set $s1 (f32.add (local.get $s1) (local.get $d)))
          (local.set $s2 (f32.add (local.get $s2)
            (f32.mul (local.get $d) (f32.load (i32.add (local.get $xh) (local.get $o))))))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $l)))
        (local.set $m1 (f32.div (f32.add (call $hsum (local.get $a1)) (local.get $s1)) (local.get $n)))
        (local.set $m2 (f32.div (f32.add (call $hsum (local.get $a2)) (local.get $s2)) (local.get $n)))
        (local.set $r (f32.load (i32.add (local.get $rstd) (i32.shl (local.get $i) (i32.const 2)))))
        (local.set $vm1 (f32x4.splat (local.get $m1)))
        (local.set $vm2 (f32x4.splat (local.get $m2)))
        (local.set $vr (f32x4.splat (local.get $r)))
        (local.set $j (i32.const 0))
        (block $a (loop $l
          (br_if $a (i32.ge_u (local.get $j) (local.get $cols4)))
          (local.set $o (i32.shl (local.get $j) (i32.const 2)))
          (local.set $vdy (v128.load align=4 (i32.add (local.get $dy) (local.get $o))))
          (local.set $vxh (v128.load align=4 (i32.add (local.get $xh) (local.get $o))))
          (v128.store align=4 (i32.add (local.get $dx) (local.get $o))
            (f32x4.mul
              (f32x4.sub
                (f32x4.sub
                  (f32x4.mul (local.get $vdy) (v128.load align=4 (i32.add (local.get $g) (local.get $o))))
                  (local.get $vm1))
                (f32x4.mul (local.get $vxh) (local.get $vm2)))
              (local.get $vr)))
          (v128.store align=4 (i32.add (local.get $dg) (local.get $o))
            (f32x4.add (v128.load align=4 (i32.add (local.get $dg) (local.get $o)))
              (f32x4.mul (local.get $vdy) (local.get $vxh))))
          (v128.store align=4 (i32.add (local.get $db) (local.get $o))
            (f32x4.add (v128.load align=4 (i32.add (local.get $db) (local.get $o))) (local.get $vdy)))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $l)))
        (block $a (loop $l
          (br_if $a (i32.ge_u (local.get $j) (local.get $cols)))
          (local.set $o (i32.shl (local.get $j) (i32.const 2)))
          (local.set $sdy (f32.load (i32.add (local.get $dy) (local.get $o))))
          (local.set $sxh (f32.load (i32.add (local.get $xh) (local.get $o))))
          (f32.store (i32.add (local.get $dx) (local.get $o))
            (f32.mul
              (f32.sub
                (f32.sub
                  (f32.mul (local.get $sdy) (f32.load (i32.add (local.get $g) (local.get $o))))
                  (local.get $m1))
                (f32.mul (local.get $sxh) (local.get $m2)))
              (local.get $r)))
          (f32.store (i32.add (local.get $dg) (local.get $o))
            (f32.add (f32.load (i32.add (local.get $dg) (local.get $o)))
              (f32.mul (local.get $sdy) (local.get $sxh))))
          (f32.store (i32.add (local.get $db) (local.get $o))
            (f32.add (f32.load (i32.add (local.get $db) (local.get $o))) (local.get $sdy)))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $l)))
        (local.set $dy (i32.add (local.get $dy) (i32.shl (local.get $cols) (i32.const 2))))
        (local.set $xh (i32.add (local.get $xh) (i32.shl (local.get $cols) (i32.const 2))))
        (local.set $dx (i32.add (local.get $dx) (i32.shl (local.get $cols) (i32.const 2))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $row))))

  ;; exp(x) for x ≤ 0.1, four lanes: x = n·ln 2 + r with n = round(x·log₂e) and |r| ≤ ln 2 / 2,
  ;; e^r by its Taylor polynomial to r⁶ (relative error < 2e-7), times 2ⁿ built in the exponent
  ;; bits; 0 below −87.3 (where 2ⁿ would leave float32's normal range).
  (func $exp4 (param $x v128) (result v128)
    (local $n v128) (local $r v128) (local $p v128) (local $xc v128)
    (local.set $xc (f32x4.max (local.get $x) (v128.const f32x4 -87.3 -87.3 -87.3 -87.3)))
    (local.set $n (f32x4.nearest (f32x4.mul (local.get $xc)
      (v128.const f32x4 1.44269504 1.44269504 1.44269504 1.44269504))))
    (local.set $r (f32x4.sub
      (f32x4.sub (local.get $xc)
        (f32x4.mul (local.get $n) (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375)))
      (f32x4.mul (local.get $n) (v128.const f32x4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4))))
    (local.set $p (v128.const f32x4 1.38888889e-3 1.38888889e-3 1.38888889e-3 1.38888889e-3))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 8.33333333e-3 8.33333333e-3 8.33333333e-3 8.33333333e-3)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 4.16666667e-2 4.16666667e-2 4.16666667e-2 4.16666667e-2)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 0.166666667 0.166666667 0.166666667 0.166666667)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 0.5 0.5 0.5 0.5)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 1 1 1 1)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r))
      (v128.const f32x4 1 1 1 1)))
    (v128.and
      (f32x4.mul (local.get $p)
        (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n)) (v128.const i32x4 127 127 127 127))
          (i32.const 23)))
      (f32x4.gt (local.get $x) (v128.const f32x4 -87.3 -87.3 -87.3 -87.3))))

  ;; Φ(x), the standard normal CDF: erfc(|x|/√2)/2 from the Chebyshev fit of Numerical Recipes'
  ;; erfcc (fractional error < 1.2e-7), mirrored for x ≥ 0 — the same formula as the WGSL kernel.
  (func $phi4 (param $x v128) (result v128)
    (local $z v128) (local $t v128) (local $p v128) (local $r v128)
    (local.set $z (f32x4.mul (f32x4.abs (local.get $x))
      (v128.const f32x4 0.707106781 0.707106781 0.707106781 0.707106781)))
    (local.set $t (f32x4.div (v128.const f32x4 1 1 1 1)
      (f32x4.add (v128.const f32x4 1 1 1 1)
        (f32x4.mul (v128.const f32x4 0.5 0.5 0.5 0.5) (local.get $z)))))
    (local.set $p (v128.const f32x4 0.17087277 0.17087277 0.17087277 0.17087277))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 -0.82215223 -0.82215223 -0.82215223 -0.82215223)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 1.48851587 1.48851587 1.48851587 1.48851587)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 -1.13520398 -1.13520398 -1.13520398 -1.13520398)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 0.27886807 0.27886807 0.27886807 0.27886807)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 -0.18628806 -0.18628806 -0.18628806 -0.18628806)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 0.09678418 0.09678418 0.09678418 0.09678418)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 0.37409196 0.37409196 0.37409196 0.37409196)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 1.00002368 1.00002368 1.00002368 1.00002368)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 -1.26551223 -1.26551223 -1.26551223 -1.26551223)))
    (local.set $r (f32x4.mul (v128.const f32x4 0.5 0.5 0.5 0.5)
      (f32x4.mul (local.get $t)
        (call $exp4 (f32x4.add (f32x4.neg (f32x4.mul (local.get $z) (local.get $z))) (local.get $p))))))
    (v128.bitselect
      (f32x4.sub (v128.const f32x4 1 1 1 1) (local.get $r))
      (local.get $r)
      (f32x4.ge (local.get $x) (v128.const f32x4 0 0 0 0))))

  ;; Load n − i < 4 trailing floats from p into the low lanes (the rest 0); store them back.
  (func $loadTail (param $p i32) (param $k i32) (result v128)
    (local $v v128)
    (local.set $v (f32x4.replace_lane 0 (local.get $v) (f32.load (local.get $p))))
    (if (i32.gt_u (local.get $k) (i32.const 1))
      (then (local.set $v (f32x4.replace_lane 1 (local.get $v) (f32.load offset=4 (local.get $p))))))
    (if (i32.gt_u (local.get $k) (i32.const 2))
      (then (local.set $v (f32x4.replace_lane 2 (local.get $v) (f32.load offset=8 (local.get $p))))))
    (local.get $v))
  (func $storeTail (param $p i32) (param $k i32) (param $v v128)
    (f32.store (local.get $p) (f32x4.extract_lane 0 (local.get $v)))
    (if (i32.gt_u (local.get $k) (i32.const 1))
      (then (f32.store offset=4 (local.get $p) (f32x4.extract_lane 1 (local.get $v)))))
    (if (i32.gt_u (local.get $k) (i32.const 2))
      (then (f32.store offset=8 (local.get $p) (f32x4.extract_lane 2 (local.get $v))))))

  ;; Exact GELU forward on n floats: Φ = Φ(x) (kept for the backward pass), y = x·Φ.
  (func (export "gelu_fwd") (param $y i32) (param $cdf i32) (param $x i32) (param $n i32)
    (local $i i32) (local $n4 i32) (local $k i32) (local $xv v128) (local $c v128)
    (local.set $n4 (i32.and (local.get $n) (i32.const -4)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n4)))
      (local.set $xv (v128.load align=4 (local.get $x)))
      (local.set $c (call $phi4 (local.get $xv)))
      (v128.store align=4 (local.get $cdf) (local.get $c))
      (v128.store align=4 (local.get $y) (f32x4.mul (local.get $xv) (local.get $c)))
      (local.set $x (i32.add (local.get $x) (i32.const 16)))
      (local.set $y (i32.add (local.get $y) (i32.const 16)))
      (local.set $cdf (i32.add (local.get $cdf) (i32.const 16)))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $l)))
    (local.set $k (i32.sub (local.get $n) (local.get $n4)))
    (if (local.get $k)
      (then
        (local.set $xv (call $loadTail (local.get $x) (local.get $k)))
        (local.set $c (call $phi4 (local.get $xv)))
        (call $storeTail (local.get $cdf) (local.get $k) (local.get $c))
        (call $storeTail (local.get $y) (local.get $k) (f32x4.mul (local.get $xv) (local.get $c))))))

  ;; Exact GELU backward on n floats: dx = dy·(Φ + x·e^(−x²/2)/√(2π)).
  (func (export "gelu_bwd") (param $dx i32) (param $dy i32) (param $x i32) (param $cdf i32) (param $n i32)
    (local $i i32) (local $n4 i32) (local $k i32)
    (local.set $n4 (i32.and (local.get $n) (i32.const -4)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n4)))
      (v128.store align=4 (local.get $dx)
        (call $geluGrad (v128.load align=4 (local.get $dy)) (v128.load align=4 (local.get $x))
          (v128.load align=4 (local.get $cdf))))
      (local.set $dx (i32.add (local.get $dx) (i32.const 16)))
      (local.set $dy (i32.add (local.get $dy) (i32.const 16)))
      (local.set $x (i32.add (local.get $x) (i32.const 16)))
      (local.set $cdf (i32.add (local.get $cdf) (i32.const 16)))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $l)))
    (local.set $k (i32.sub (local.get $n) (local.get $n4)))
    (if (local.get $k)
      (then
        (call $storeTail (local.get $dx) (local.get $k)
          (call $geluGrad (call $loadTail (local.get $dy) (local.get $k))
            (call $loadTail (local.get $x) (local.get $k))
            (call $loadTail (local.get $cdf) (local.get $k)))))))

  (func $geluGrad (param $dy v128) (param $x v128) (param $c v128) (result v128)
    (f32x4.mul (local.get $dy)
      (f32x4.add (local.get $c)
        (f32x4.mul
          (f32x4.mul (local.get $x) (v128.const f32x4 0.398942280 0.398942280 0.398942280 0.398942280))
          (call $exp4 (f32x4.mul (f32x4.mul (local.get $x) (local.get $x))
            (v128.const f32x4 -0.5 -0.5 -0.5 -0.5)))))))
)
