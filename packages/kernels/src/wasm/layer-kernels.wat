;; Layer operations over the tfjs wasm backend's own heap (imported memory), in 128-bit SIMD:
;; column sums (bias gradients) and LayerNorm forward and backward over rows (GELU and softmax:
;; activation-kernels.wat).
;; Pointers are byte addresses into the heap, counts are float32 elements; arithmetic is float32.
;; One of the sources of flat-kernels.wasm.ts: regenerate with
;; `npx tsx tools/wasm/build-flat-kernels.ts` (flat-updates.test.ts fails when they differ). The
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
)
