;; tcp_echo: a TCP echo server written against the Wapo ocall ABI (see docs/tcp-guest.md).
;;
;;   args: ADDR [COUNT]    ADDR = "ip:port" to listen on (the port must be inside the host's
;;                         listen port range); COUNT = connections to serve before finishing
;;                         (absent or 0: serve forever)
;;
;; Every connection is echoed until the peer half-closes; then the guest shuts its side down
;; and closes the stream. Up to 8 connections at once (slot k uses waker k + 1; the listener
;; waker 0). Single task (0): each wapo_poll drains awake_wakers, accepts what is waiting and
;; drives every slot until each one answers Pending; an ocall that answers Pending has
;; registered its waker, so the host polls again when anything becomes ready.
;;
;; Memory (9 pages):
;;   0x0000  args_sizes_get results     0x0100  argv pointers     0x0200..0x07ff  argv strings
;;   0x0800  the SCALE tcp_listen input (String addr, Option<TlsServerConfig> = None)
;;   0x0c00  get_return scratch         0x1000  slot table: 8 x {rid, len, off, state} (i32 each)
;;   0x1100  texts                      0x10000 + k * 0x10000: the 64 KiB buffer of slot k
(module
  (import "wapo" "ocall" (func $ocall (param i32 i32 i32 i32 i32 i32) (result i64)))
  (import "wapo" "ocall_fast_return" (func $fast (param i32 i32 i32 i32 i32 i32) (result i64)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (memory (export "memory") 9)
  (data (i32.const 0x1100) "tcp_echo: listening")      ;; 19 bytes
  (data (i32.const 0x1120) "tcp_echo: bad arguments")  ;; 23 bytes
  (data (i32.const 0x1140) "tcp_echo: listen failed")  ;; 23 bytes
  (data (i32.const 0x1160) "served")                   ;; 6 bytes

  (global $started (mut i32) (i32.const 0))
  (global $listener (mut i32) (i32.const -1))
  (global $count (mut i32) (i32.const 0))     ;; connections to serve (0 = forever)
  (global $accepted (mut i32) (i32.const 0))
  (global $active (mut i32) (i32.const 0))

  (func $is_err (param $r i64) (result i32) (i64.ne (i64.shr_u (local.get $r) (i64.const 32)) (i64.const 0)))
  (func $is_pending (param $r i64) (result i32) (i64.eq (local.get $r) (i64.const 0x10000000b)))
  (func $log (param $ptr i32) (param $len i32)
    (drop (call $fast (i32.const 0) (i32.const 220) (i32.const 3) (local.get $ptr) (local.get $len) (i32.const 0))))
  (func $slot (param $k i32) (result i32) (i32.add (i32.const 0x1000) (i32.shl (local.get $k) (i32.const 4))))
  (func $buf (param $k i32) (result i32) (i32.shl (i32.add (local.get $k) (i32.const 1)) (i32.const 16)))
  (func $strlen (param $p i32) (result i32) (local $n i32)
    (block $end (loop $next
      (br_if $end (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $next)))
    (local.get $n))

  ;; parse the arguments and listen; 0 on success
  (func $start (result i32) (local $argc i32) (local $addr i32) (local $len i32) (local $p i32) (local $c i32)
        (local $r i64)
    (if (call $args_sizes_get (i32.const 0) (i32.const 4)) (then (return (i32.const 1))))
    (local.set $argc (i32.load (i32.const 0)))
    (if (i32.or (i32.lt_u (local.get $argc) (i32.const 2))
                (i32.or (i32.gt_u (local.get $argc) (i32.const 16)) (i32.gt_u (i32.load (i32.const 4)) (i32.const 0x600))))
      (then (return (i32.const 1))))
    (if (call $args_get (i32.const 0x100) (i32.const 0x200)) (then (return (i32.const 1))))
    (local.set $addr (i32.load (i32.const 0x104)))           ;; argv[1]
    (local.set $len (call $strlen (local.get $addr)))
    (if (i32.or (i32.eqz (local.get $len)) (i32.ge_u (local.get $len) (i32.const 64))) (then (return (i32.const 1))))
    (if (i32.ge_u (local.get $argc) (i32.const 3))            ;; argv[2]: decimal count
      (then
        (local.set $p (i32.load (i32.const 0x108)))
        (block $end (loop $digit
          (local.set $c (i32.load8_u (local.get $p)))
          (br_if $end (i32.eqz (local.get $c)))
          (if (i32.gt_u (i32.sub (local.get $c) (i32.const 48)) (i32.const 9)) (then (return (i32.const 1))))
          (global.set $count (i32.add (i32.mul (global.get $count) (i32.const 10)) (i32.sub (local.get $c) (i32.const 48))))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br $digit)))))
    ;; SCALE (String, Option<TlsServerConfig>): compact length (one byte below 64), the bytes, 0 = None
    (i32.store8 (i32.const 0x800) (i32.shl (local.get $len) (i32.const 2)))
    (memory.copy (i32.const 0x801) (local.get $addr) (local.get $len))
    (i32.store8 (i32.add (i32.const 0x801) (local.get $len)) (i32.const 0))
    (local.set $r (call $fast (i32.const 0) (i32.const 210) (i32.const 0x800) (i32.add (local.get $len) (i32.const 2))
                        (i32.const 0) (i32.const 0)))
    (if (call $is_err (local.get $r)) (then (call $log (i32.const 0x1140) (i32.const 23)) (return (i32.const 2))))
    (global.set $listener (i32.wrap_i64 (local.get $r)))
    (call $log (i32.const 0x1100) (i32.const 19))
    (i32.const 0))

  (func $free_slot (result i32) (local $k i32)
    (block $none (loop $next
      (br_if $none (i32.ge_u (local.get $k) (i32.const 8)))
      (if (i32.eqz (i32.load offset=12 (call $slot (local.get $k)))) (then (return (local.get $k))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br $next)))
    (i32.const -1))

  ;; accept while connections are waiting and a slot is free
  (func $accept (local $k i32) (local $r i64) (local $s i32)
    (block $stop (loop $next
      (br_if $stop (i32.and (i32.ne (global.get $count) (i32.const 0))
                            (i32.ge_u (global.get $accepted) (global.get $count))))
      (local.set $k (call $free_slot))
      (br_if $stop (i32.lt_s (local.get $k) (i32.const 0)))
      ;; tcp_accept_no_addr(waker 0, listener) -> stream res
      (local.set $r (call $fast (i32.const 0) (i32.const 212) (i32.const 0) (global.get $listener) (i32.const 0) (i32.const 0)))
      (br_if $stop (call $is_err (local.get $r)))             ;; Pending (waker 0 registered) or an error
      (local.set $s (call $slot (local.get $k)))
      (i32.store (local.get $s) (i32.wrap_i64 (local.get $r)))
      (i32.store offset=4 (local.get $s) (i32.const 0))
      (i32.store offset=8 (local.get $s) (i32.const 0))
      (i32.store offset=12 (local.get $s) (i32.const 1))
      (global.set $accepted (i32.add (global.get $accepted) (i32.const 1)))
      (global.set $active (i32.add (global.get $active) (i32.const 1)))
      (br $next))))

  (func $drop_slot (param $s i32)
    (drop (call $fast (i32.const 0) (i32.const 101) (i32.load (local.get $s)) (i32.const 0) (i32.const 0) (i32.const 0)))
    (i32.store offset=12 (local.get $s) (i32.const 0))
    (global.set $active (i32.sub (global.get $active) (i32.const 1))))

  ;; drive slot k until it is Pending; after 64 steps ask to be polled again (bounded bursts)
  (func $serve (param $k i32) (local $s i32) (local $rid i32) (local $len i32) (local $off i32) (local $r i64)
        (local $budget i32)
    (local.set $s (call $slot (local.get $k)))
    (local.set $rid (i32.load (local.get $s)))
    (local.set $budget (i32.const 64))
    (loop $step
      (if (i32.eqz (local.get $budget))
        (then (drop (call $fast (i32.const 0) (i32.const 109) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
              (return)))
      (local.set $budget (i32.sub (local.get $budget) (i32.const 1)))
      (if (i32.eq (i32.load offset=12 (local.get $s)) (i32.const 2))
        (then   ;; peer done and everything echoed: poll_shutdown, then close
          (local.set $r (call $fast (i32.const 0) (i32.const 105) (i32.add (local.get $k) (i32.const 1)) (local.get $rid)
                              (i32.const 0) (i32.const 0)))
          (if (call $is_pending (local.get $r)) (then (return)))
          (call $drop_slot (local.get $s))
          (return)))
      (local.set $len (i32.load offset=4 (local.get $s)))
      (local.set $off (i32.load offset=8 (local.get $s)))
      (if (i32.lt_u (local.get $off) (local.get $len))
        (then   ;; poll_write(waker, res, buf + off, len - off) -> bytes accepted
          (local.set $r (call $fast (i32.const 0) (i32.const 104) (i32.add (local.get $k) (i32.const 1)) (local.get $rid)
                              (i32.add (call $buf (local.get $k)) (local.get $off))
                              (i32.sub (local.get $len) (local.get $off))))
          (if (call $is_pending (local.get $r)) (then (return)))
          (if (call $is_err (local.get $r)) (then (call $drop_slot (local.get $s)) (return)))
          (local.set $off (i32.add (local.get $off) (i32.wrap_i64 (local.get $r))))
          (if (i32.eq (local.get $off) (local.get $len))
            (then (local.set $off (i32.const 0)) (local.set $len (i32.const 0))))
          (i32.store offset=4 (local.get $s) (local.get $len))
          (i32.store offset=8 (local.get $s) (local.get $off))
          (br $step)))
      ;; poll_read(waker, res, buf, 64 KiB) -> n; Ok(0) = the peer half-closed
      (local.set $r (call $fast (i32.const 0) (i32.const 103) (i32.add (local.get $k) (i32.const 1)) (local.get $rid)
                          (call $buf (local.get $k)) (i32.const 0x10000)))
      (if (call $is_pending (local.get $r)) (then (return)))
      (if (call $is_err (local.get $r)) (then (call $drop_slot (local.get $s)) (return)))
      (if (i64.eqz (local.get $r))
        (then (i32.store offset=12 (local.get $s) (i32.const 2)))
        (else (i32.store offset=4 (local.get $s) (i32.wrap_i64 (local.get $r)))
              (i32.store offset=8 (local.get $s) (i32.const 0))))
      (br $step)))

  (func (export "wapo_poll") (result i32) (local $r i64) (local $k i32)
    (if (i32.eqz (global.get $started))
      (then
        (global.set $started (i32.const 1))
        (local.set $k (call $start))
        (if (i32.eq (local.get $k) (i32.const 1)) (then (call $log (i32.const 0x1120) (i32.const 23))))
        (if (local.get $k) (then (return (i32.const 2))))))
    ;; awake_wakers() (EO): fetch and ignore the list, every slot is driven anyway
    (local.set $r (call $ocall (i32.const 0) (i32.const 112) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
    (if (i32.and (i32.eqz (call $is_err (local.get $r))) (i64.le_u (local.get $r) (i64.const 0x400)))
      (then (drop (call $fast (i32.const 0) (i32.const 0) (i32.const 0xc00) (i32.const 0x400) (i32.const 0) (i32.const 0)))))
    ;; next_ready_task() until NotFound: this guest has only task 0
    (block $drained (loop $tasks
      (br_if $drained (call $is_err (call $fast (i32.const 0) (i32.const 110) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))))
      (br $tasks)))
    (call $accept)
    (local.set $k (i32.const 0))
    (loop $each
      (if (i32.load offset=12 (call $slot (local.get $k))) (then (call $serve (local.get $k))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $each (i32.lt_u (local.get $k) (i32.const 8))))
    (call $accept)   ;; a slot may have been freed
    (if (i32.and (i32.ne (global.get $count) (i32.const 0))
                 (i32.and (i32.ge_u (global.get $accepted) (global.get $count)) (i32.eqz (global.get $active))))
      (then
        (drop (call $fast (i32.const 0) (i32.const 243) (i32.const 0x1160) (i32.const 6) (i32.const 0) (i32.const 0)))
        (return (i32.const 1))))
    (i32.const 0))
)
