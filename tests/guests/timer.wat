;; A well-behaved guest: sleeps on a 10 ms timer, logs, emits "done" and finishes.
;; wapo_poll is a two-state machine kept in $state:
;;   0: create the timer (201), then fall through to state 1
;;   1: poll_read(waker 0, timer, ptr, 0) (103): Pending -> return 0 (the host
;;      polls again when the timer fires); Ok(0) -> log, emit, return 1
(module
  (import "wapo" "ocall" (func $ocall (param i32 i32 i32 i32 i32 i32) (result i64)))
  (import "wapo" "ocall_fast_return" (func $fast (param i32 i32 i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 16) "timer fired")
  (data (i32.const 32) "done")
  (global $state (mut i32) (i32.const 0))
  (global $timer (mut i32) (i32.const 0))

  (func (export "wapo_poll") (result i32)
    (local $r i64)
    (if (i32.eqz (global.get $state))
      (then
        (local.set $r (call $fast (i32.const 0) (i32.const 201) (i32.const 10) (i32.const 0) (i32.const 0) (i32.const 0)))
        (if (i64.ne (i64.shr_u (local.get $r) (i64.const 32)) (i64.const 0)) (then (return (i32.const 2))))
        (global.set $timer (i32.wrap_i64 (local.get $r)))
        (global.set $state (i32.const 1))))
    (local.set $r (call $fast (i32.const 0) (i32.const 103) (i32.const 0) (global.get $timer) (i32.const 0) (i32.const 0)))
    (if (i64.eq (local.get $r) (i64.const 0x10000000b)) (then (return (i32.const 0))))
    (if (i64.ne (local.get $r) (i64.const 0)) (then (return (i32.const 3))))
    ;; log(info, "timer fired"), emit "done"
    (drop (call $fast (i32.const 0) (i32.const 220) (i32.const 3) (i32.const 16) (i32.const 11) (i32.const 0)))
    (drop (call $fast (i32.const 0) (i32.const 243) (i32.const 32) (i32.const 4) (i32.const 0) (i32.const 0)))
    (i32.const 1)))
