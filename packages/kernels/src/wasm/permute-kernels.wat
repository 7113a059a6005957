;; Transposes over the tfjs wasm backend's own heap (imported memory), for transpose.ts: tfjs's wasm
;; `Transpose` walks the output element by element with a division per index, ≈ 3 ns an element
;; for the [8320, 768] activations of a SiT step's weight gradients; these move whole 4 × 4 tiles
;; in 128-bit SIMD, or whole rows with memory.copy where the innermost axis stays in place.
;; Pointers are byte addresses into the heap, counts and strides are float32 elements.
;; One of the sources of flat-kernels.wasm.ts: regenerate with
;; `npx tsx tools/wasm/build-flat-kernels.ts` (flat-updates.test.ts fails when they differ). The
;; generator puts the import of a shared or unshared memory in place of the marker below.
(module
  ;; @memory

  ;; out[b·ob + c·oc + r] = in[b·sb + r·sr + c] for b < nb, r < nr, c < nc: each batch b is a
  ;; matrix whose rows (stride sr in the input) become the output's columns. Full 4 × 4 tiles are
  ;; four row loads, eight lane shuffles and four stores; the ragged edges go element by element.
  (func (export "transpose_tiles")
    (param $out i32) (param $in i32) (param $nb i32) (param $nr i32) (param $nc i32)
    (param $ob i32) (param $oc i32) (param $sb i32) (param $sr i32)
    (local $b i32) (local $r i32) (local $c i32) (local $r4 i32) (local $c4 i32)
    (local $src i32) (local $dst i32) (local $srb i32) (local $ocb i32)
    (local $a v128) (local $bb v128) (local $cc v128) (local $d v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $r4 (i32.and (local.get $nr) (i32.const -4)))
    (local.set $c4 (i32.and (local.get $nc) (i32.const -4)))
    (local.set $srb (i32.shl (local.get $sr) (i32.const 2)))
    (local.set $ocb (i32.shl (local.get $oc) (i32.const 2)))
    (local.set $b (i32.const 0))
    (block $bdone (loop $bl
      (br_if $bdone (i32.ge_u (local.get $b) (local.get $nb)))
      ;; Full tiles.
      (local.set $r (i32.const 0))
      (block $rdone (loop $rl
        (br_if $rdone (i32.ge_u (local.get $r) (local.get $r4)))
        (local.set $c (i32.const 0))
        (block $cdone (loop $cl
          (br_if $cdone (i32.ge_u (local.get $c) (local.get $c4)))
          (local.set $src (i32.add (local.get $in) (i32.shl
            (i32.add (i32.add (i32.mul (local.get $b) (local.get $sb))
              (i32.mul (local.get $r) (local.get $sr))) (local.get $c)) (i32.const 2))))
          (local.set $a (v128.load align=4 (local.get $src)))
          (local.set $bb (v128.load align=4 (i32.add (local.get $src) (local.get $srb))))
          (local.set $cc (v128.load align=4 (i32.add (local.get $src) (i32.shl (local.get $srb) (i32.const 1)))))
          (local.set $d (v128.load align=4 (i32.add (local.get $src) (i32.mul (local.get $srb) (i32.const 3)))))
          ;; [a0 b0 a1 b1], [a2 b2 a3 b3], [c0 d0 c1 d1], [c2 d2 c3 d3]
          (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $a) (local.get $bb)))
          (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $a) (local.get $bb)))
          (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $cc) (local.get $d)))
          (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $cc) (local.get $d)))
          (local.set $dst (i32.add (local.get $out) (i32.shl
            (i32.add (i32.add (i32.mul (local.get $b) (local.get $ob))
              (i32.mul (local.get $c) (local.get $oc))) (local.get $r)) (i32.const 2))))
          ;; Columns 0..3 of the tile: [a0 b0 c0 d0], [a1 b1 c1 d1], [a2 …], [a3 …].
          (v128.store align=4 (local.get $dst)
            (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2)))
          (v128.store align=4 (i32.add (local.get $dst) (local.get $ocb))
            (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2)))
          (v128.store align=4 (i32.add (local.get $dst) (i32.shl (local.get $ocb) (i32.const 1)))
            (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3)))
          (v128.store align=4 (i32.add (local.get $dst) (i32.mul (local.get $ocb) (i32.const 3)))
            (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3)))
          (local.set $c (i32.add (local.get $c) (i32.const 4)))
          (br $cl)))
        ;; Columns past the last full tile, for these four rows.
        (call $edge (local.get $out) (local.get $in) (local.get $b) (local.get $r)
          (i32.add (local.get $r) (i32.const 4)) (local.get $c4) (local.get $nc)
          (local.get $ob) (local.get $oc) (local.get $sb) (local.get $sr))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $rl)))
      ;; Rows past the last full tile, every column.
      (call $edge (local.get $out) (local.get $in) (local.get $b) (local.get $r4) (local.get $nr)
        (i32.const 0) (local.get $nc) (local.get $ob) (local.get $oc) (local.get $sb) (local.get $sr))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $bl))))

  ;; The same mapping element by element, over rows [r0, r1) and columns [c0, c1) of batch b.
  (func $edge (param $out i32) (param $in i32) (param $b i32) (param $r0 i32) (param $r1 i32)
    (param $c0 i32) (param $c1 i32) (param $ob i32) (param $oc i32) (param $sb i32) (param $sr i32)
    (local $r i32) (local $c i32)
    (local.set $r (local.get $r0))
    (block $rdone (loop $rl
      (br_if $rdone (i32.ge_u (local.get $r) (local.get $r1)))
      (local.set $c (local.get $c0))
      (block $cdone (loop $cl
        (br_if $cdone (i32.ge_u (local.get $c) (local.get $c1)))
        (f32.store
          (i32.add (local.get $out) (i32.shl (i32.add (i32.add
            (i32.mul (local.get $b) (local.get $ob)) (i32.mul (local.get $c) (local.get $oc)))
            (local.get $r)) (i32.const 2)))
          (f32.load
            (i32.add (local.get $in) (i32.shl (i32.add (i32.add
              (i32.mul (local.get $b) (local.get $sb)) (i32.mul (local.get $r) (local.get $sr)))
              (local.get $c)) (i32.const 2)))))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $cl)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rl))))

  ;; Row copies for a permutation that keeps the innermost axis: the output, in order, is the rows
  ;; of `len` floats found in the input at i0·s0 + i1·s1 + i2·s2 for i0 < n0, i1 < n1, i2 < n2.
  (func (export "permute_rows")
    (param $out i32) (param $in i32) (param $n0 i32) (param $n1 i32) (param $n2 i32)
    (param $s0 i32) (param $s1 i32) (param $s2 i32) (param $len i32)
    (local $i0 i32) (local $i1 i32) (local $i2 i32) (local $bytes i32)
    (local.set $bytes (i32.shl (local.get $len) (i32.const 2)))
    (block $d0 (loop $l0
      (br_if $d0 (i32.ge_u (local.get $i0) (local.get $n0)))
      (local.set $i1 (i32.const 0))
      (block $d1 (loop $l1
        (br_if $d1 (i32.ge_u (local.get $i1) (local.get $n1)))
        (local.set $i2 (i32.const 0))
        (block $d2 (loop $l2
          (br_if $d2 (i32.ge_u (local.get $i2) (local.get $n2)))
          (memory.copy (local.get $out)
            (i32.add (local.get $in) (i32.shl (i32.add (i32.add
              (i32.mul (local.get $i0) (local.get $s0)) (i32.mul (local.get $i1) (local.get $s1)))
              (i32.mul (local.get $i2) (local.get $s2))) (i32.const 2)))
            (local.get $bytes))
          (local.set $out (i32.add (local.get $out) (local.get $bytes)))
          (local.set $i2 (i32.add (local.get $i2) (i32.const 1)))
          (br $l2)))
        (local.set $i1 (i32.add (local.get $i1) (i32.const 1)))
        (br $l1)))
      (local.set $i0 (i32.add (local.get $i0) (i32.const 1)))
      (br $l0))))
)
