;; The ABI fuzz guest (tests/test_abi_fuzz.py).
;;
;; It opens input channel 3, takes one message from it: SCALE Vec<u8> whose
;; bytes are N records of 6 little-endian i32 (task, func, p0, p1, p2, p3), and
;; makes each record an ocall (even records through `ocall`, odd ones through
;; `ocall_fast_return`). For every record it emits a frame:
;;     24 bytes: the record as it was executed (read before the call)
;;     [whatever the call itself emitted, if it was emit_program_output]
;;      8 bytes: the i64 the call returned
;; Records live in guest memory that the fuzzed calls may overwrite (get_return,
;; getrandom): the frame says what really ran. The frame is built in a scratch
;; area right before it is emitted, with no fuzzed call in between.
;;
;; Memory (one 64 KiB page): 0x100 frame scratch, 0x200 channel id, 0x1000.. the message.
(module
  (import "wapo" "ocall" (func $ocall (param i32 i32 i32 i32 i32 i32) (result i64)))
  (import "wapo" "ocall_fast_return" (func $fast (param i32 i32 i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (global $state (mut i32) (i32.const 0))
  (global $rid (mut i32) (i32.const 0))

  (func $emit (param $ptr i32) (param $len i32)
    (drop (call $fast (i32.const 0) (i32.const 243) (local.get $ptr) (local.get $len) (i32.const 0) (i32.const 0))))

  (func (export "wapo_poll") (result i32)
    (local $r i64) (local $len i32) (local $mode i32) (local $p i32) (local $end i32) (local $i i32)
    (local $task i32) (local $f i32) (local $a i32) (local $b i32) (local $c i32) (local $d i32)

    ;; first poll: open the channel (EO result: the SCALE i32 resource id)
    (if (i32.eqz (global.get $state))
      (then
        (if (i64.ne (call $ocall (i32.const 0) (i32.const 240) (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 0))
                    (i64.const 4))
          (then (return (i32.const 2))))
        (if (i64.ne (call $fast (i32.const 0) (i32.const 0) (i32.const 0x200) (i32.const 4) (i32.const 0) (i32.const 0))
                    (i64.const 4))
          (then (return (i32.const 3))))
        (global.set $rid (i32.load (i32.const 0x200)))
        (global.set $state (i32.const 1))))

    ;; wait for the message
    (local.set $r (call $ocall (i32.const 0) (i32.const 102) (i32.const 0) (global.get $rid) (i32.const 0) (i32.const 0)))
    (if (i64.eq (local.get $r) (i64.const 0x10000000b)) (then (return (i32.const 0))))
    (if (i64.ne (i64.shr_u (local.get $r) (i64.const 32)) (i64.const 0)) (then (return (i32.const 4))))
    (local.set $len (i32.wrap_i64 (local.get $r)))
    (if (i32.gt_u (local.get $len) (i32.const 0x8000)) (then (return (i32.const 5))))
    (if (i64.ne (call $fast (i32.const 0) (i32.const 0) (i32.const 0x1000) (local.get $len) (i32.const 0) (i32.const 0))
                (i64.extend_i32_u (local.get $len)))
      (then (return (i32.const 6))))

    ;; skip the compact length prefix (1, 2 or 4 bytes)
    (local.set $mode (i32.and (i32.load8_u (i32.const 0x1000)) (i32.const 3)))
    (local.set $p (i32.add (i32.const 0x1000)
      (if (result i32) (i32.eqz (local.get $mode)) (then (i32.const 1))
        (else (if (result i32) (i32.eq (local.get $mode) (i32.const 1)) (then (i32.const 2)) (else (i32.const 4)))))))
    (local.set $end (i32.add (i32.const 0x1000) (local.get $len)))

    (block $done
      (loop $next
        (br_if $done (i32.gt_u (i32.add (local.get $p) (i32.const 24)) (local.get $end)))
        (local.set $task (i32.load (local.get $p)))
        (local.set $f (i32.load offset=4 (local.get $p)))
        (local.set $a (i32.load offset=8 (local.get $p)))
        (local.set $b (i32.load offset=12 (local.get $p)))
        (local.set $c (i32.load offset=16 (local.get $p)))
        (local.set $d (i32.load offset=20 (local.get $p)))
        (i32.store (i32.const 0x100) (local.get $task))
        (i32.store (i32.const 0x104) (local.get $f))
        (i32.store (i32.const 0x108) (local.get $a))
        (i32.store (i32.const 0x10c) (local.get $b))
        (i32.store (i32.const 0x110) (local.get $c))
        (i32.store (i32.const 0x114) (local.get $d))
        (call $emit (i32.const 0x100) (i32.const 24))
        (local.set $r
          (if (result i64) (i32.and (local.get $i) (i32.const 1))
            (then (call $fast (local.get $task) (local.get $f) (local.get $a) (local.get $b) (local.get $c) (local.get $d)))
            (else (call $ocall (local.get $task) (local.get $f) (local.get $a) (local.get $b) (local.get $c) (local.get $d)))))
        (i64.store (i32.const 0x100) (local.get $r))
        (call $emit (i32.const 0x100) (i32.const 8))
        (local.set $p (i32.add (local.get $p) (i32.const 24)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 1)))
