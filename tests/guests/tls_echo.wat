;; tls_echo: a TLS echo server written against the Wapo ocall ABI (the TCP part is tcp_echo.wat's;
;; see docs/tcp-guest.md).
;;
;;   args: MODE TARGET CERT KEY [COUNT]
;;     MODE   "sni": tls_listen_sni(TARGET = a server name, on the host's shared TLS port)
;;            "listen": tcp_listen(TARGET = "ip:port", Some(TlsServerConfig))
;;     CERT   the certificate chain, PEM text (leaf first); KEY the private key, PEM text
;;     COUNT  connections to serve before finishing (absent or 0: serve forever)
;;
;; On success it logs "tls_echo: listening" and, after COUNT connections, outputs "served". If
;; the listen call fails it outputs "error N" (N = the ABI error code) and fails the run.
;; Every connection is echoed until the peer ends it (close_notify); then the guest closes it.
;; Up to 8 connections at once (slot k uses waker k + 1; the listener waker 0). Connections are
;; taken with tcp_accept (211, EO: stream res + peer address).
;;
;; Memory (12 pages):
;;   0x0000  args_sizes_get results     0x0100  argv pointers (16)      0x0200  texts
;;   0x0400  get_return scratch         0x1000  slot table: 8 x {rid, len, off, state} (i32 each)
;;   0x10000 argv strings (64 KiB)      0x20000 the SCALE listen input (64 KiB)
;;   0x30000 + k * 0x10000: the 64 KiB buffer of slot k
(module
  (import "wapo" "ocall" (func $ocall (param i32 i32 i32 i32 i32 i32) (result i64)))
  (import "wapo" "ocall_fast_return" (func $fast (param i32 i32 i32 i32 i32 i32) (result i64)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (memory (export "memory") 12)
  (data (i32.const 0x200) "tls_echo: listening")      ;; 19 bytes
  (data (i32.const 0x220) "tls_echo: bad arguments")  ;; 23 bytes
  (data (i32.const 0x240) "served")                   ;; 6 bytes
  (data (i32.const 0x260) "error ")                   ;; 6 bytes, then the code in decimal

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
  (func $buf (param $k i32) (result i32) (i32.add (i32.const 0x30000) (i32.shl (local.get $k) (i32.const 16))))
  (func $arg (param $i i32) (result i32) (i32.load (i32.add (i32.const 0x100) (i32.shl (local.get $i) (i32.const 2)))))
  (func $strlen (param $p i32) (result i32) (local $n i32)
    (block $end (loop $next
      (br_if $end (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $next)))
    (local.get $n))

  ;; SCALE String: the compact length (1, 2 or 4 bytes; len < 2^30), then the bytes; returns the end
  (func $put_str (param $dst i32) (param $src i32) (result i32) (local $n i32)
    (local.set $n (call $strlen (local.get $src)))
    (if (i32.lt_u (local.get $n) (i32.const 64))
      (then (i32.store8 (local.get $dst) (i32.shl (local.get $n) (i32.const 2)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 1))))
      (else (if (i32.lt_u (local.get $n) (i32.const 0x4000))
        (then (i32.store16 (local.get $dst) (i32.or (i32.shl (local.get $n) (i32.const 2)) (i32.const 1)))
              (local.set $dst (i32.add (local.get $dst) (i32.const 2))))
        (else (i32.store (local.get $dst) (i32.or (i32.shl (local.get $n) (i32.const 2)) (i32.const 2)))
              (local.set $dst (i32.add (local.get $dst) (i32.const 4)))))))
    (memory.copy (local.get $dst) (local.get $src) (local.get $n))
    (i32.add (local.get $dst) (local.get $n)))

  ;; output "error N" for an Err(N) result
  (func $report (param $r i64) (local $code i32) (local $len i32)
    (local.set $code (i32.wrap_i64 (local.get $r)))
    (local.set $len (i32.const 6))
    (if (i32.ge_u (local.get $code) (i32.const 10))
      (then (i32.store8 (i32.const 0x266) (i32.add (i32.const 48) (i32.div_u (local.get $code) (i32.const 10))))
            (local.set $len (i32.const 7))))
    (i32.store8 (i32.add (i32.const 0x260) (local.get $len)) (i32.add (i32.const 48) (i32.rem_u (local.get $code) (i32.const 10))))
    (drop (call $fast (i32.const 0) (i32.const 243) (i32.const 0x260) (i32.add (local.get $len) (i32.const 1))
                (i32.const 0) (i32.const 0))))

  ;; parse the arguments and listen: 0 on success, 1 bad arguments, 2 the listen call failed
  (func $start (result i32) (local $argc i32) (local $p i32) (local $c i32) (local $end i32) (local $r i64)
        (local $call i32)
    (if (call $args_sizes_get (i32.const 0) (i32.const 4)) (then (return (i32.const 1))))
    (local.set $argc (i32.load (i32.const 0)))
    (if (i32.or (i32.lt_u (local.get $argc) (i32.const 5))
                (i32.or (i32.gt_u (local.get $argc) (i32.const 16)) (i32.gt_u (i32.load (i32.const 4)) (i32.const 0x8000))))
      (then (return (i32.const 1))))
    (if (call $args_get (i32.const 0x100) (i32.const 0x10000)) (then (return (i32.const 1))))
    (if (i32.ge_u (local.get $argc) (i32.const 6))            ;; argv[5]: decimal count
      (then
        (local.set $p (call $arg (i32.const 5)))
        (block $done (loop $digit
          (local.set $c (i32.load8_u (local.get $p)))
          (br_if $done (i32.eqz (local.get $c)))
          (if (i32.gt_u (i32.sub (local.get $c) (i32.const 48)) (i32.const 9)) (then (return (i32.const 1))))
          (global.set $count (i32.add (i32.mul (global.get $count) (i32.const 10)) (i32.sub (local.get $c) (i32.const 48))))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br $digit)))))
    ;; "sni": (String name, TlsServerConfig::V0 {cert, key}) for 215
    ;; "listen": (String addr, Some(TlsServerConfig::V0 {cert, key})) for 210
    (local.set $end (call $put_str (i32.const 0x20000) (call $arg (i32.const 2))))
    (local.set $c (i32.load8_u (call $arg (i32.const 1))))
    (if (i32.eq (local.get $c) (i32.const 0x73))             ;; 's'
      (then (local.set $call (i32.const 215)))
      (else
        (if (i32.ne (local.get $c) (i32.const 0x6c)) (then (return (i32.const 1))))   ;; 'l'
        (local.set $call (i32.const 210))
        (i32.store8 (local.get $end) (i32.const 1))           ;; Some
        (local.set $end (i32.add (local.get $end) (i32.const 1)))))
    (i32.store8 (local.get $end) (i32.const 0))               ;; TlsServerConfig::V0
    (local.set $end (call $put_str (i32.add (local.get $end) (i32.const 1)) (call $arg (i32.const 3))))
    (local.set $end (call $put_str (local.get $end) (call $arg (i32.const 4))))
    (local.set $r (call $fast (i32.const 0) (local.get $call) (i32.const 0x20000) (i32.sub (local.get $end) (i32.const 0x20000))
                        (i32.const 0) (i32.const 0)))
    (if (call $is_err (local.get $r)) (then (call $report (local.get $r)) (return (i32.const 2))))
    (global.set $listener (i32.wrap_i64 (local.get $r)))
    (call $log (i32.const 0x200) (i32.const 19))
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
      ;; tcp_accept(waker 0, listener) (EO): (i32 stream res, String peer), fetched with get_return
      (local.set $r (call $ocall (i32.const 0) (i32.const 211) (i32.const 0) (global.get $listener) (i32.const 0) (i32.const 0)))
      (br_if $stop (call $is_err (local.get $r)))             ;; Pending (waker 0 registered) or an error
      (br_if $stop (i64.gt_u (local.get $r) (i64.const 0x400)))
      (br_if $stop (call $is_err (call $fast (i32.const 0) (i32.const 0) (i32.const 0x400) (i32.const 0x400)
                                           (i32.const 0) (i32.const 0))))
      (local.set $s (call $slot (local.get $k)))
      (i32.store (local.get $s) (i32.load (i32.const 0x400)))
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
        (then (call $drop_slot (local.get $s)) (return)))     ;; the peer ended the stream: close it
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
      ;; poll_read(waker, res, buf, 64 KiB) -> n; Ok(0) = the peer ended the stream
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
        (if (i32.eq (local.get $k) (i32.const 1)) (then (call $log (i32.const 0x220) (i32.const 23))))
        (if (local.get $k) (then (return (i32.const 2))))))
    ;; awake_wakers() (EO): fetch and ignore the list, every slot is driven anyway
    (local.set $r (call $ocall (i32.const 0) (i32.const 112) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
    (if (i32.and (i32.eqz (call $is_err (local.get $r))) (i64.le_u (local.get $r) (i64.const 0x400)))
      (then (drop (call $fast (i32.const 0) (i32.const 0) (i32.const 0x400) (i32.const 0x400) (i32.const 0) (i32.const 0)))))
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
        (drop (call $fast (i32.const 0) (i32.const 243) (i32.const 0x240) (i32.const 6) (i32.const 0) (i32.const 0)))
        (return (i32.const 1))))
    (i32.const 0))
)
