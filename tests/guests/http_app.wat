;; http_app: a long-running app written against the Wapo ocall ABI (see docs/apps.md).
;;
;; Opens input channel 4 (HTTP) and 3 (queries) and serves both until the host ends them:
;;   HTTP   each HttpRequest is answered 200 (content-type text/plain) with the body
;;          "METHOD URL\n" followed by the request body; one request at a time. The url
;;          "/crash" makes the guest trap (a crashing app, for restart tests).
;;   query  QueryRequest{path, payload} is answered with "path|payload"; the path "fail"
;;          is answered with oneshot_send_error("query failed: fail").
;; Each request is logged ("GET /path") at level info. When both channels report EndOfFile
;; (and no request is in progress) the guest finishes (wapo_poll returns 1).
;;
;; poll's EO result is the message as a SCALE Vec<u8> (compact length, then the bytes).
;; Single task (0): each wapo_poll drains awake_wakers and next_ready_task, then drives the
;; HTTP state machine and the query loop until each answers Pending (its waker registered).
;;
;; Memory (8 pages):
;;   0x0000  texts and the response head      0x0400  get_return scratch (awake_wakers)
;;   0x1000  the current query message        0x5000  the query reply
;;   0x9000  the current HTTP request message 0xd000  a discard buffer (request body overflow)
;;   0x10000..0x80000  the response body: "METHOD URL\n" + the request body (448 KiB at most)
(module
  (import "wapo" "ocall" (func $ocall (param i32 i32 i32 i32 i32 i32) (result i64)))
  (import "wapo" "ocall_fast_return" (func $fast (param i32 i32 i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 8)
  (data (i32.const 0x0000) "http_app: ready")     ;; 15 bytes
  ;; HttpResponseHead{status: 200, headers: [("content-type", "text/plain")]}: 27 bytes
  (data (i32.const 0x0020) "\c8\00\04\30content-type\28text/plain")
  (data (i32.const 0x0040) "/crash")              ;; 6
  (data (i32.const 0x0050) "fail")                ;; 4
  (data (i32.const 0x0060) "query failed: fail")  ;; 18

  (global $started (mut i32) (i32.const 0))
  (global $http_ch (mut i32) (i32.const -1))
  (global $query_ch (mut i32) (i32.const -1))
  (global $http_eof (mut i32) (i32.const 0))
  (global $query_eof (mut i32) (i32.const 0))
  (global $hphase (mut i32) (i32.const 0))  ;; 0 idle, 1 reading body, 2 send head, 3 writing, 4 shutdown, 5 close
  (global $tx (mut i32) (i32.const 0))
  (global $io (mut i32) (i32.const 0))
  (global $olen (mut i32) (i32.const 0))
  (global $ooff (mut i32) (i32.const 0))
  (global $cur (mut i32) (i32.const 0))

  (func $is_err (param $r i64) (result i32) (i64.ne (i64.shr_u (local.get $r) (i64.const 32)) (i64.const 0)))
  (func $is_pending (param $r i64) (result i32) (i64.eq (local.get $r) (i64.const 0x10000000b)))
  (func $f (param i32 i32 i32 i32 i32) (result i64)
    (call $fast (i32.const 0) (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4)))
  (func $log (param $ptr i32) (param $len i32)
    (drop (call $f (i32.const 220) (i32.const 3) (local.get $ptr) (local.get $len) (i32.const 0))))
  (func $close (param $res i32) (drop (call $f (i32.const 101) (local.get $res) (i32.const 0) (i32.const 0) (i32.const 0))))

  ;; n bytes at a equal n bytes at b
  (func $eq (param $a i32) (param $b i32) (param $n i32) (result i32) (local $i i32)
    (block $no (loop $next
      (if (i32.ge_u (local.get $i) (local.get $n)) (then (return (i32.const 1))))
      (br_if $no (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                         (i32.load8_u (i32.add (local.get $b) (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (i32.const 0))

  ;; a SCALE compact integer at $cur (modes 0..2; the big-integer mode traps)
  (func $compact (result i32) (local $b i32) (local $v i32)
    (local.set $b (i32.load8_u (global.get $cur)))
    (block $done
      (if (i32.eqz (i32.and (local.get $b) (i32.const 3)))
        (then (local.set $v (i32.shr_u (local.get $b) (i32.const 2)))
              (global.set $cur (i32.add (global.get $cur) (i32.const 1))) (br $done)))
      (if (i32.eq (i32.and (local.get $b) (i32.const 3)) (i32.const 1))
        (then (local.set $v (i32.shr_u (i32.load16_u (global.get $cur)) (i32.const 2)))
              (global.set $cur (i32.add (global.get $cur) (i32.const 2))) (br $done)))
      (if (i32.eq (i32.and (local.get $b) (i32.const 3)) (i32.const 2))
        (then (local.set $v (i32.shr_u (i32.load (global.get $cur)) (i32.const 2)))
              (global.set $cur (i32.add (global.get $cur) (i32.const 4))) (br $done)))
      (unreachable))
    (local.get $v))

  ;; create_input_channel(kind) (EO i32) -> res, or -1
  (func $channel (param $kind i32) (result i32) (local $r i64)
    (local.set $r (call $ocall (i32.const 0) (i32.const 240) (local.get $kind) (i32.const 0) (i32.const 0) (i32.const 0)))
    (if (call $is_err (local.get $r)) (then (return (i32.const -1))))
    (drop (call $f (i32.const 0) (i32.const 0x400) (i32.const 4) (i32.const 0) (i32.const 0)))
    (i32.load (i32.const 0x400)))

  ;; decode the HttpRequest at 0x9000 into the response prefix, tx and io
  (func $take_request (local $mlen i32) (local $mptr i32) (local $ulen i32) (local $uptr i32) (local $n i32)
    (global.set $cur (i32.const 0x9000))
    (drop (call $compact))   ;; poll's EO result is a Vec<u8>: skip its length
    (local.set $mlen (call $compact)) (local.set $mptr (global.get $cur))
    (global.set $cur (i32.add (global.get $cur) (local.get $mlen)))
    (local.set $ulen (call $compact)) (local.set $uptr (global.get $cur))
    (global.set $cur (i32.add (global.get $cur) (local.get $ulen)))
    (local.set $n (call $compact))
    (block $end (loop $header
      (br_if $end (i32.eqz (local.get $n)))
      (global.set $cur (i32.add (call $compact) (global.get $cur)))   ;; name
      (global.set $cur (i32.add (call $compact) (global.get $cur)))   ;; value
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $header)))
    (global.set $tx (i32.load (global.get $cur)))
    (global.set $io (i32.load (i32.add (global.get $cur) (i32.const 4))))
    (memory.copy (i32.const 0x10000) (local.get $mptr) (local.get $mlen))
    (i32.store8 (i32.add (i32.const 0x10000) (local.get $mlen)) (i32.const 32))
    (memory.copy (i32.add (i32.const 0x10001) (local.get $mlen)) (local.get $uptr) (local.get $ulen))
    (global.set $olen (i32.add (i32.add (local.get $mlen) (local.get $ulen)) (i32.const 1)))
    (call $log (i32.const 0x10000) (global.get $olen))
    (i32.store8 (i32.add (i32.const 0x10000) (global.get $olen)) (i32.const 10))
    (global.set $olen (i32.add (global.get $olen) (i32.const 1)))
    (if (i32.and (i32.eq (local.get $ulen) (i32.const 6)) (call $eq (local.get $uptr) (i32.const 0x40) (i32.const 6)))
      (then (unreachable))))   ;; "/crash"

  ;; drive the HTTP side until something is Pending (or the channel ended)
  (func $serve_http (local $r i64) (local $room i32)
    (loop $step
      ;; 0: the next request
      (if (i32.eqz (global.get $hphase))
        (then
          (if (global.get $http_eof) (then (return)))
          (local.set $r (call $ocall (i32.const 0) (i32.const 102) (i32.const 1) (global.get $http_ch) (i32.const 0) (i32.const 0)))
          (if (call $is_pending (local.get $r)) (then (return)))
          (if (call $is_err (local.get $r)) (then (global.set $http_eof (i32.const 1)) (return)))
          (if (i64.gt_u (local.get $r) (i64.const 0x3f00)) (then (unreachable)))
          (drop (call $f (i32.const 0) (i32.const 0x9000) (i32.const 0x3f00) (i32.const 0) (i32.const 0)))
          (call $take_request)
          (global.set $hphase (i32.const 1))
          (br $step)))
      ;; 1: read the request body into the response (overflow goes to the discard buffer)
      (if (i32.eq (global.get $hphase) (i32.const 1))
        (then
          (local.set $room (i32.sub (i32.const 0x70000) (global.get $olen)))
          (if (local.get $room)
            (then (local.set $r (call $f (i32.const 103) (i32.const 2) (global.get $io)
                                         (i32.add (i32.const 0x10000) (global.get $olen)) (local.get $room))))
            (else (local.set $r (call $f (i32.const 103) (i32.const 2) (global.get $io) (i32.const 0xd000) (i32.const 0x2000)))))
          (if (call $is_pending (local.get $r)) (then (return)))
          (if (i32.or (call $is_err (local.get $r)) (i64.eqz (local.get $r)))
            (then (global.set $hphase (i32.const 2)) (br $step)))
          (if (local.get $room)
            (then (global.set $olen (i32.add (global.get $olen) (i32.wrap_i64 (local.get $r))))))
          (br $step)))
      ;; 2: the head, then the one-shot is done with
      (if (i32.eq (global.get $hphase) (i32.const 2))
        (then
          (drop (call $f (i32.const 202) (global.get $tx) (i32.const 0x20) (i32.const 27) (i32.const 0)))
          (call $close (global.get $tx))
          (global.set $ooff (i32.const 0))
          (global.set $hphase (i32.const 3))
          (br $step)))
      ;; 3: write the body
      (if (i32.eq (global.get $hphase) (i32.const 3))
        (then
          (if (i32.ge_u (global.get $ooff) (global.get $olen))
            (then (global.set $hphase (i32.const 4)) (br $step)))
          (local.set $r (call $f (i32.const 104) (i32.const 3) (global.get $io)
                                 (i32.add (i32.const 0x10000) (global.get $ooff))
                                 (i32.sub (global.get $olen) (global.get $ooff))))
          (if (call $is_pending (local.get $r)) (then (return)))
          (if (call $is_err (local.get $r)) (then (global.set $hphase (i32.const 5)) (br $step)))
          (global.set $ooff (i32.add (global.get $ooff) (i32.wrap_i64 (local.get $r))))
          (br $step)))
      ;; 4: end the body
      (if (i32.eq (global.get $hphase) (i32.const 4))
        (then
          (local.set $r (call $f (i32.const 105) (i32.const 3) (global.get $io) (i32.const 0) (i32.const 0)))
          (if (call $is_pending (local.get $r)) (then (return)))
          (global.set $hphase (i32.const 5))
          (br $step)))
      ;; 5: close the stream; next request
      (call $close (global.get $io))
      (global.set $hphase (i32.const 0))
      (br $step)))

  ;; answer every waiting query
  (func $serve_queries (local $r i64) (local $plen i32) (local $pptr i32) (local $ylen i32) (local $yptr i32)
        (local $rtx i32)
    (loop $next
      (if (global.get $query_eof) (then (return)))
      (local.set $r (call $ocall (i32.const 0) (i32.const 102) (i32.const 4) (global.get $query_ch) (i32.const 0) (i32.const 0)))
      (if (call $is_pending (local.get $r)) (then (return)))
      (if (call $is_err (local.get $r)) (then (global.set $query_eof (i32.const 1)) (return)))
      (if (i64.gt_u (local.get $r) (i64.const 0x3f00)) (then (unreachable)))
      (drop (call $f (i32.const 0) (i32.const 0x1000) (i32.const 0x3f00) (i32.const 0) (i32.const 0)))
      (global.set $cur (i32.const 0x1000))
      (drop (call $compact))   ;; poll's EO result is a Vec<u8>: skip its length
      (global.set $cur (i32.add (global.get $cur) (i32.const 1)))
      (if (i32.load8_u (i32.sub (global.get $cur) (i32.const 1)))   ;; Some(origin)
        (then (global.set $cur (i32.add (global.get $cur) (i32.const 32)))))
      (local.set $plen (call $compact)) (local.set $pptr (global.get $cur))
      (global.set $cur (i32.add (global.get $cur) (local.get $plen)))
      (local.set $ylen (call $compact)) (local.set $yptr (global.get $cur))
      (global.set $cur (i32.add (global.get $cur) (local.get $ylen)))
      (local.set $rtx (i32.load (global.get $cur)))
      (if (i32.and (i32.eq (local.get $plen) (i32.const 4)) (call $eq (local.get $pptr) (i32.const 0x50) (i32.const 4)))
        (then (drop (call $f (i32.const 204) (local.get $rtx) (i32.const 0x60) (i32.const 18) (i32.const 0))))
        (else
          (memory.copy (i32.const 0x5000) (local.get $pptr) (local.get $plen))
          (i32.store8 (i32.add (i32.const 0x5000) (local.get $plen)) (i32.const 124))   ;; '|'
          (memory.copy (i32.add (i32.const 0x5001) (local.get $plen)) (local.get $yptr) (local.get $ylen))
          (drop (call $f (i32.const 202) (local.get $rtx) (i32.const 0x5000)
                         (i32.add (i32.add (local.get $plen) (local.get $ylen)) (i32.const 1)) (i32.const 0)))))
      (call $close (local.get $rtx))
      (br $next)))

  (func (export "wapo_poll") (result i32) (local $r i64)
    (if (i32.eqz (global.get $started))
      (then
        (global.set $started (i32.const 1))
        (global.set $http_ch (call $channel (i32.const 4)))
        (global.set $query_ch (call $channel (i32.const 3)))
        (if (i32.or (i32.lt_s (global.get $http_ch) (i32.const 0)) (i32.lt_s (global.get $query_ch) (i32.const 0)))
          (then (return (i32.const 2))))
        (call $log (i32.const 0) (i32.const 15))))
    ;; awake_wakers() (EO): fetched and ignored, everything is driven anyway
    (local.set $r (call $ocall (i32.const 0) (i32.const 112) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
    (if (i32.and (i32.eqz (call $is_err (local.get $r))) (i64.le_u (local.get $r) (i64.const 0x400)))
      (then (drop (call $f (i32.const 0) (i32.const 0x400) (i32.const 0x400) (i32.const 0) (i32.const 0)))))
    (block $drained (loop $tasks
      (br_if $drained (call $is_err (call $f (i32.const 110) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))))
      (br $tasks)))
    (call $serve_http)
    (call $serve_queries)
    (if (i32.and (i32.and (global.get $http_eof) (global.get $query_eof)) (i32.eqz (global.get $hphase)))
      (then (return (i32.const 1))))
    (i32.const 0))
)
