;; Whole-model updates over the tfjs wasm backend's own heap (imported memory), in 128-bit
;; SIMD: AdamW, the EMA teacher update, and a float64 sum of squares for gradient clipping.
;; Pointers are byte addresses into the heap, counts are float32 elements. Arithmetic is float32,
;; operation by operation as PyTorch's AdamW and EMA (mul_, add_, addcmul_, sqrt, addcdiv_).
;; One of the sources of flat-kernels.wasm.ts: regenerate with
;; `npx tsx tools/wasm/build-flat-kernels.ts` (flat-updates.test.ts fails when they differ). The generator puts the import of a shared
;; (threaded tfjs build) or unshared (single-threaded build) memory in place of the marker below.
(module
  ;; @memory

  ;; Σ x² over n floats from p, accumulated in float64 (two f64x2 accumulators, then the tail).
  (func (export "sumsq") (param $p i32) (param $n i32) (result f64)
    (local $end i32) (local $end4 i32) (local $x v128) (local $lo v128) (local $hi v128)
    (local $acc0 v128) (local $acc1 v128) (local $s f64) (local $f f64)
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $end4
      (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done
      (loop $body
        (br_if $done (i32.ge_u (local.get $p) (local.get $end4)))
        (local.set $x (v128.load align=4 (local.get $p)))
        (local.set $lo (f64x2.promote_low_f32x4 (local.get $x)))
        (local.set $hi (f64x2.promote_low_f32x4
          (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x))))
        (local.set $acc0 (f64x2.add (local.get $acc0) (f64x2.mul (local.get $lo) (local.get $lo))))
        (local.set $acc1 (f64x2.add (local.get $acc1) (f64x2.mul (local.get $hi) (local.get $hi))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $body)))
    (local.set $acc0 (f64x2.add (local.get $acc0) (local.get $acc1)))
    (local.set $s
      (f64.add (f64x2.extract_lane 0 (local.get $acc0)) (f64x2.extract_lane 1 (local.get $acc0))))
    (block $done
      (loop $tail
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $f (f64.promote_f32 (f32.load (local.get $p))))
        (local.set $s (f64.add (local.get $s) (f64.mul (local.get $f) (local.get $f))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $tail)))
    (local.get $s))

  ;; AdamW on n floats: g ← g·clip; m ← m·β₁ + g·(1−β₁); v ← v·β₂ + (g·g)·(1−β₂) in place;
  ;; po ← p·decay − step·(m / (√v / bc2 + ε)) into a separate output (XNNPACK caches packed
  ;; weights per tensor, so a weight must not change under its tensor).
  (func (export "adamw")
    (param $po i32) (param $p i32) (param $g i32) (param $m i32) (param $v i32) (param $n i32)
    (param $clip f32) (param $decay f32) (param $step f32) (param $bc2 f32)
    (param $b1 f32) (param $c1 f32) (param $b2 f32) (param $c2 f32) (param $eps f32)
    (local $end i32) (local $end4 i32)
    (local $vclip v128) (local $vdecay v128) (local $vstep v128) (local $vbc2 v128)
    (local $vb1 v128) (local $vc1 v128) (local $vb2 v128) (local $vc2 v128) (local $veps v128)
    (local $gv v128) (local $mv v128) (local $vv v128)
    (local $gs f32) (local $ms f32) (local $vs f32)
    (local.set $vclip (f32x4.splat (local.get $clip)))
    (local.set $vdecay (f32x4.splat (local.get $decay)))
    (local.set $vstep (f32x4.splat (local.get $step)))
    (local.set $vbc2 (f32x4.splat (local.get $bc2)))
    (local.set $vb1 (f32x4.splat (local.get $b1)))
    (local.set $vc1 (f32x4.splat (local.get $c1)))
    (local.set $vb2 (f32x4.splat (local.get $b2)))
    (local.set $vc2 (f32x4.splat (local.get $c2)))
    (local.set $veps (f32x4.splat (local.get $eps)))
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $end4
      (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done
      (loop $body
        (br_if $done (i32.ge_u (local.get $p) (local.get $end4)))
        (local.set $gv (f32x4.mul (v128.load align=4 (local.get $g)) (local.get $vclip)))
        (local.set $mv (f32x4.add
          (f32x4.mul (v128.load align=4 (local.get $m)) (local.get $vb1))
          (f32x4.mul (local.get $gv) (local.get $vc1))))
        (local.set $vv (f32x4.add
          (f32x4.mul (v128.load align=4 (local.get $v)) (local.get $vb2))
          (f32x4.mul (f32x4.mul (local.get $gv) (local.get $gv)) (local.get $vc2))))
        (v128.store align=4 (local.get $m) (local.get $mv))
        (v128.store align=4 (local.get $v) (local.get $vv))
        (v128.store align=4 (local.get $po)
          (f32x4.sub
            (f32x4.mul (v128.load align=4 (local.get $p)) (local.get $vdecay))
            (f32x4.mul (local.get $vstep)
              (f32x4.div (local.get $mv)
                (f32x4.add (f32x4.div (f32x4.sqrt (local.get $vv)) (local.get $vbc2))
                  (local.get $veps))))))
        (local.set $po (i32.add (local.get $po) (i32.const 16)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (local.set $g (i32.add (local.get $g) (i32.const 16)))
        (local.set $m (i32.add (local.get $m) (i32.const 16)))
        (local.set $v (i32.add (local.get $v) (i32.const 16)))
        (br $body)))
    (block $done
      (loop $tail
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $gs (f32.mul (f32.load (local.get $g)) (local.get $clip)))
        (local.set $ms (f32.add
          (f32.mul (f32.load (local.get $m)) (local.get $b1))
          (f32.mul (local.get $gs) (local.get $c1))))
        (local.set $vs (f32.add
          (f32.mul (f32.load (local.get $v)) (local.get $b2))
          (f32.mul (f32.mul (local.get $gs) (local.get $gs)) (local.get $c2))))
        (f32.store (local.get $m) (local.get $ms))
        (f32.store (local.get $v) (local.get $vs))
        (f32.store (local.get $po)
          (f32.sub
            (f32.mul (f32.load (local.get $p)) (local.get $decay))
            (f32.mul (local.get $step)
              (f32.div (local.get $ms)
                (f32.add (f32.div (f32.sqrt (local.get $vs)) (local.get $bc2)) (local.get $eps))))))
        (local.set $po (i32.add (local.get $po) (i32.const 4)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (local.set $g (i32.add (local.get $g) (i32.const 4)))
        (local.set $m (i32.add (local.get $m) (i32.const 4)))
        (local.set $v (i32.add (local.get $v) (i32.const 4)))
        (br $tail))))

  ;; EMA on n floats: out ← t·a + s·b (out may be t).
  (func (export "ema")
    (param $out i32) (param $t i32) (param $s i32) (param $n i32) (param $a f32) (param $b f32)
    (local $end i32) (local $end4 i32) (local $va v128) (local $vb v128)
    (local.set $va (f32x4.splat (local.get $a)))
    (local.set $vb (f32x4.splat (local.get $b)))
    (local.set $end (i32.add (local.get $out) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $end4
      (i32.add (local.get $out) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done
      (loop $body
        (br_if $done (i32.ge_u (local.get $out) (local.get $end4)))
        (v128.store align=4 (local.get $out)
          (f32x4.add
            (f32x4.mul (v128.load align=4 (local.get $t)) (local.get $va))
            (f32x4.mul (v128.load align=4 (local.get $s)) (local.get $vb))))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (local.set $t (i32.add (local.get $t) (i32.const 16)))
        (local.set $s (i32.add (local.get $s) (i32.const 16)))
        (br $body)))
    (block $done
      (loop $tail
        (br_if $done (i32.ge_u (local.get $out) (local.get $end)))
        (f32.store (local.get $out)
          (f32.add
            (f32.mul (f32.load (local.get $t)) (local.get $a))
            (f32.mul (f32.load (local.get $s)) (local.get $b))))
        (local.set $out (i32.add (local.get $out) (i32.const 4)))
        (local.set $t (i32.add (local.get $t) (i32.const 4)))
        (local.set $s (i32.add (local.get $s) (i32.const 4)))
        (br $tail)))))
