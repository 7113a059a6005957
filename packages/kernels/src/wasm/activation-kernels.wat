;; Activations over the tfjs wasm backend's own heap (imported memory), in 128-bit SIMD: exact GELU
;; forward and backward (Φ from an erfc fit), and the attention softmax over rows of scaled scores
;; with its backward — exp by range reduction, no libm call per element.
;; Pointers are byte addresses into the heap, counts are float32 elements; arithmetic is float32.
;; One of the sources of flat-kernels.wasm.ts: regenerate with
;; `npx tsx tools/wasm/build-flat-kernels.ts` (flat-updates.test.ts fails when they differ). The
;; generator puts the import of a shared or unshared memory in place of the marker below.
(module
  ;; @memory

  ;; exp(x) for x ≤ 0.1, four lanes: x = n·ln 2 + r with n = round(x·log₂e) and |r| ≤ ln 2 / 2,
  ;; e^r by its Taylor polynomial to r⁶ (relative error < 2e-7), times 2ⁿ built in the exponent
  ;; bits; 0 below −87.3 (where 2ⁿ would leave float32's normal range).
  (func $exp4 (param $x v128) (result v128)
    (local $n v128) (local $r v128) (local $r2 v128) (local $p v128) (local $xc v128)
    (local.set $xc (f32x4.max (local.get $x) (v128.const f32x4 -87.3 -87.3 -87.3 -87.3)))
    (local.set $n (f32x4.nearest (f32x4.mul (local.get $xc)
      (v128.const f32x4 1.44269504 1.44269504 1.44269504 1.44269504))))
    (local.set $r (f32x4.sub
      (f32x4.sub (local.get $xc)
        (f32x4.mul (local.get $n) (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375)))
      (f32x4.mul (local.get $n) (v128.const f32x4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4))))
    ;; The polynomial by Estrin's scheme, (1 + r) + r²·(1/2 + r/6) + r⁴·((1/24 + r/120) + r²/720):
    ;; short independent chains instead of six dependent multiply-adds.
    (local.set $r2 (f32x4.mul (local.get $r) (local.get $r)))
    (local.set $p (f32x4.add
      (f32x4.add
        (f32x4.add (v128.const f32x4 1 1 1 1) (local.get $r))
        (f32x4.mul
          (f32x4.add (v128.const f32x4 0.5 0.5 0.5 0.5) (f32x4.mul (v128.const f32x4 0.166666667 0.166666667 0.166666667 0.166666667) (local.get $r)))
          (local.get $r2)))
      (f32x4.mul
        (f32x4.add
          (f32x4.add (v128.const f32x4 4.16666667e-2 4.16666667e-2 4.16666667e-2 4.16666667e-2) (f32x4.mul (v128.const f32x4 8.33333333e-3 8.33333333e-3 8.33333333e-3 8.33333333e-3) (local.get $r)))
          (f32x4.mul (v128.const f32x4 1.38888889e-3 1.38888889e-3 1.38888889e-3 1.38888889e-3) (local.get $r2)))
        (f32x4.mul (local.get $r2) (local.get $r2)))))
    (v128.and
      (f32x4.mul (local.get $p)
        (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $n)) (v128.const i32x4 127 127 127 127))
          (i32.const 23)))
      (f32x4.gt (local.get $x) (v128.const f32x4 -87.3 -87.3 -87.3 -87.3))))

  ;; Φ(x), the standard normal CDF: erfc(|x|/√2)/2 from the Chebyshev fit of Numerical Recipes'
  ;; erfcc (fractional error < 1.2e-7), mirrored for x ≥ 0 — the same formula as the WGSL kernel
  ;; (its polynomial grouped differently: the results differ in rounding only).
  (func $phi4 (param $x v128) (result v128)
    (local $z v128) (local $t v128) (local $t2 v128) (local $t4 v128) (local $p v128) (local $r v128)
    (local.set $z (f32x4.mul (f32x4.abs (local.get $x))
      (v128.const f32x4 0.707106781 0.707106781 0.707106781 0.707106781)))
    (local.set $t (f32x4.div (v128.const f32x4 1 1 1 1)
      (f32x4.add (v128.const f32x4 1 1 1 1)
        (f32x4.mul (v128.const f32x4 0.5 0.5 0.5 0.5) (local.get $z)))))
    ;; The polynomial in t by Estrin's scheme (pairs, then t², t⁴, t⁸): four short independent
    ;; chains instead of one of nine multiply-adds, which left the core waiting on each result.
    (local.set $t2 (f32x4.mul (local.get $t) (local.get $t)))
    (local.set $t4 (f32x4.mul (local.get $t2) (local.get $t2)))
    (local.set $p (f32x4.add
      (f32x4.add
        (f32x4.add (f32x4.add (v128.const f32x4 -1.26551223 -1.26551223 -1.26551223 -1.26551223) (f32x4.mul (v128.const f32x4 1.00002368 1.00002368 1.00002368 1.00002368) (local.get $t)))
          (f32x4.mul (f32x4.add (v128.const f32x4 0.37409196 0.37409196 0.37409196 0.37409196) (f32x4.mul (v128.const f32x4 0.09678418 0.09678418 0.09678418 0.09678418) (local.get $t))) (local.get $t2)))
        (f32x4.mul
          (f32x4.add (f32x4.add (v128.const f32x4 -0.18628806 -0.18628806 -0.18628806 -0.18628806) (f32x4.mul (v128.const f32x4 0.27886807 0.27886807 0.27886807 0.27886807) (local.get $t)))
            (f32x4.mul (f32x4.add (v128.const f32x4 -1.13520398 -1.13520398 -1.13520398 -1.13520398) (f32x4.mul (v128.const f32x4 1.48851587 1.48851587 1.48851587 1.48851587) (local.get $t))) (local.get $t2)))
          (local.get $t4)))
      (f32x4.mul (f32x4.add (v128.const f32x4 -0.82215223 -0.82215223 -0.82215223 -0.82215223) (f32x4.mul (v128.const f32x4 0.17087277 0.17087277 0.17087277 0.17087277) (local.get $t)))
        (f32x4.mul (local.get $t4) (local.get $t4)))))
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

  ;; Sum of the four lanes of a float32 vector, as (l0 + l1) + (l2 + l3).
  (func $hsum (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; Sum of the first k (1..3) lanes, in lane order.
  (func $tailSum (param $v v128) (param $k i32) (result f32)
    (local $s f32)
    (local.set $s (f32x4.extract_lane 0 (local.get $v)))
    (if (i32.gt_u (local.get $k) (i32.const 1))
      (then (local.set $s (f32.add (local.get $s) (f32x4.extract_lane 1 (local.get $v))))))
    (if (i32.gt_u (local.get $k) (i32.const 2))
      (then (local.set $s (f32.add (local.get $s) (f32x4.extract_lane 2 (local.get $v))))))
    (local.get $s))

  ;; Softmax over the rows of scores x [rows, n], scaled first (attention's 1/√d):
  ;; z = s·x, p = e^(z − max z) / Σ e^(z − max z), the sum as four lane sums, (l0 + l1) + (l2 + l3),
  ;; plus the tail in order; p = e·(1/Σ). One pass to find the maximum, one to exponentiate and
  ;; sum, one to scale: tfjs's Softmax and the scaling Multiply before it read the scores twice more.
  (func (export "softmax_fwd") (param $p i32) (param $x i32) (param $rows i32) (param $n i32) (param $scale f32)
    (local $i i32) (local $j i32) (local $n4 i32) (local $k i32) (local $o i32)
    (local $vs v128) (local $vmax v128) (local $vm v128) (local $acc v128) (local $e v128) (local $vr v128)
    (local $m f32) (local $sum f32)
    (local.set $n4 (i32.and (local.get $n) (i32.const -4)))
    (local.set $k (i32.sub (local.get $n) (local.get $n4)))
    (local.set $vs (f32x4.splat (local.get $scale)))
    (block $done (loop $row
      (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
      ;; the row's maximum of s·x
      (local.set $vmax (v128.const f32x4 -inf -inf -inf -inf))
      (local.set $j (i32.const 0))
      (block $a (loop $l
        (br_if $a (i32.ge_u (local.get $j) (local.get $n4)))
        (local.set $vmax (f32x4.max (local.get $vmax) (f32x4.mul (local.get $vs)
          (v128.load align=4 (i32.add (local.get $x) (i32.shl (local.get $j) (i32.const 2)))))))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $l)))
      (local.set $m (f32.max
        (f32.max (f32x4.extract_lane 0 (local.get $vmax)) (f32x4.extract_lane 1 (local.get $vmax)))
        (f32.max (f32x4.extract_lane 2 (local.get $vmax)) (f32x4.extract_lane 3 (local.get $vmax)))))
      (block $a (loop $l
        (br_if $a (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $m (f32.max (local.get $m) (f32.mul (local.get $scale)
          (f32.load (i32.add (local.get $x) (i32.shl (local.get $j) (i32.const 2)))))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $l)))
      (local.set $vm (f32x4.splat (local.get $m)))
      ;; e = exp(s·x − max) into p, and its sum
      (local.set $acc (v128.const f32x4 0 0 0 0))
      (local.set $j (i32.const 0))
      (block $a (loop $l
        (br_if $a (i32.ge_u (local.get $j) (local.get $n4)))
        (local.set $o (i32.shl (local.get $j) (i32.const 2)))
        (local.set $e (call $exp4 (f32x4.sub (f32x4.mul (local.get $vs)
          (v128.load align=4 (i32.add (local.get $x) (local.get $o)))) (local.get $vm))))
        (v128.store align=4 (i32.add (local.get $p) (local.get $o)) (local.get $e))
        (local.set $acc (f32x4.add (local.get $acc) (local.get $e)))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $l)))
      (local.set $sum (call $hsum (local.get $acc)))
      (if (local.get $k)
        (then
          (local.set $o (i32.shl (local.get $n4) (i32.const 2)))
          (local.set $e (call $exp4 (f32x4.sub (f32x4.mul (local.get $vs)
            (call $loadTail (i32.add (local.get $x) (local.get $o)) (local.get $k))) (local.get $vm))))
          (call $storeTail (i32.add (local.get $p) (local.get $o)) (local.get $k) (local.get $e))
          (local.set $sum (f32.add (local.get $sum) (call $tailSum (local.get $e) (local.get $k))))))
      ;; p = e·(1/Σ)
      (local.set $vr (f32x4.splat (f32.div (f32.const 1) (local.get $sum))))
      (local.set $j (i32.const 0))
      (block $a (loop $l
        (br_if $a (i32.ge_u (local.get $j) (local.get $n4)))
        (local.set $o (i32.add (local.get $p) (i32.shl (local.get $j) (i32.const 2))))
        (v128.store align=4 (local.get $o) (f32x4.mul (v128.load align=4 (local.get $o)) (local.get $vr)))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $l)))
      (block $a (loop $l
        (br_if $a (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $o (i32.add (local.get $p) (i32.shl (local.get $j) (i32.const 2))))
        (f32.store (local.get $o) (f32.mul (f32.load (local.get $o)) (f32x4.extract_lane 0 (local.get $vr))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $l)))
      (local.set $x (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
      (local.set $p (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $row))))

  ;; Its backward, to the unscaled scores: dx = s·(p ⊙ (dp − Σⱼ dpⱼ·pⱼ)), per row; the dot product
  ;; as four lane sums, (l0 + l1) + (l2 + l3), plus the tail in order.
  (func (export "softmax_bwd") (param $dx i32) (param $dp i32) (param $p i32) (param $rows i32) (param $n i32) (param $scale f32)
    (local $i i32) (local $j i32) (local $n4 i32) (local $o i32)
    (local $acc v128) (local $vd v128) (local $vs v128) (local $dot f32) (local $t f32)
    (local.set $n4 (i32.and (local.get $n) (i32.const -4)))
    (local.set $vs (f32x4.splat (local.get $scale)))
    (block $done (loop $row
      (br_if $done (i32.ge_u (local.get $i) (local.get $rows)))
      (local.set $acc (v128.const f32x4 0 0 0 0))
      (local.set $t (f32.const 0))
      (local.set $j (i32.const 0))
      (block $a (loop $l
        (br_if $a (i32.ge_u (local.get $j) (local.get $n4)))
        (local.set $o (i32.shl (local.get $j) (i32.const 2)))
        (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul
          (v128.load align=4 (i32.add (local.get $dp) (local.get $o)))
          (v128.load align=4 (i32.add (local.get $p) (local.get $o))))))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $l)))
      (block $a (loop $l
        (br_if $a (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $o (i32.shl (local.get $j) (i32.const 2)))
        (local.set $t (f32.add (local.get $t) (f32.mul
          (f32.load (i32.add (local.get $dp) (local.get $o)))
          (f32.load (i32.add (local.get $p) (local.get $o))))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $l)))
      (local.set $dot (f32.add (call $hsum (local.get $acc)) (local.get $t)))
      (local.set $vd (f32x4.splat (local.get $dot)))
      (local.set $j (i32.const 0))
      (block $a (loop $l
        (br_if $a (i32.ge_u (local.get $j) (local.get $n4)))
        (local.set $o (i32.shl (local.get $j) (i32.const 2)))
        (v128.store align=4 (i32.add (local.get $dx) (local.get $o))
          (f32x4.mul (f32x4.mul (v128.load align=4 (i32.add (local.get $p) (local.get $o)))
            (f32x4.sub (v128.load align=4 (i32.add (local.get $dp) (local.get $o))) (local.get $vd)))
            (local.get $vs)))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $l)))
      (block $a (loop $l
        (br_if $a (i32.ge_u (local.get $j) (local.get $n)))
        (local.set $o (i32.shl (local.get $j) (i32.const 2)))
        (f32.store (i32.add (local.get $dx) (local.get $o))
          (f32.mul (f32.mul (f32.load (i32.add (local.get $p) (local.get $o)))
            (f32.sub (f32.load (i32.add (local.get $dp) (local.get $o))) (local.get $dot)))
            (local.get $scale)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $l)))
      (local.set $dx (i32.add (local.get $dx) (i32.shl (local.get $n) (i32.const 2))))
      (local.set $dp (i32.add (local.get $dp) (i32.shl (local.get $n) (i32.const 2))))
      (local.set $p (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $row))))
)
