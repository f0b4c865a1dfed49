"""The `wapo` command as a user runs it."""

from __future__ import annotations

from conftest import write

HELLO_WAT = """
(module
  (import "wapo" "ocall_fast_return" (func $ocall (param i32 i32 i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from wat\\n")
  (data (i32.const 64) "a log line")
  (func (export "wapo_poll") (result i32)
    (drop (call $ocall (i32.const 0) (i32.const 220) (i32.const 3) (i32.const 64) (i32.const 10) (i32.const 0)))
    (drop (call $ocall (i32.const 0) (i32.const 243) (i32.const 16) (i32.const 15) (i32.const 0) (i32.const 0)))
    (i32.const 1)))
"""


def test_exec_js_prints_output_and_logs_to_stderr(wapo_cli, tmp_path):
    script = write(tmp_path, "s.js", "console.log('to stderr'); setTimeout(() => { scriptOutput = 'out:' + scriptArgs.join(',') }, 5)")
    p = wapo_cli("exec", str(script), "a", "b")
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"out:a,b"
    assert b"to stderr" in p.stderr


def test_exec_passes_option_like_args_after_double_dash(wapo_cli, tmp_path):
    script = write(tmp_path, "s.js", "scriptOutput = JSON.stringify(scriptArgs)")
    p = wapo_cli("exec", str(script), "x", "--", "--time-limit", "-v")
    assert p.stdout == b'["x","--time-limit","-v"]'


def test_exec_failure_exits_non_zero_with_the_error(wapo_cli, tmp_path):
    script = write(tmp_path, "bad.js", "function f() { throw new Error('kaput') }\nf()")
    p = wapo_cli("exec", str(script))
    assert p.returncode == 1
    assert b"Error: kaput" in p.stderr and b"at f" in p.stderr


def test_exec_limits_on_the_command_line(wapo_cli, tmp_path):
    loop = write(tmp_path, "loop.js", "for (;;) {}")
    p = wapo_cli("exec", str(loop), "--burst-limit", "100ms")
    assert p.returncode == 1
    assert b"burst limit exceeded" in p.stderr and b"of 100 ms" in p.stderr
    p = wapo_cli("exec", "--burst-limit=5s", "--time-limit", "300ms", str(write(tmp_path, "w.js", "setInterval(() => {}, 50)")))
    assert p.returncode == 1 and b"time limit exceeded" in p.stderr
    p = wapo_cli("exec", str(write(tmp_path, "m.js", "const a = []; for (;;) a.push('x' + a.length)")),
                 "--memory-limit", "16MB")
    assert p.returncode == 1 and b"memory limit exceeded" in p.stderr
    p = wapo_cli("exec", str(loop), "--fuel", "1000000")
    assert p.returncode == 1 and b"fuel limit exceeded" in p.stderr


def test_exec_bad_limit_value_is_a_usage_error(wapo_cli, tmp_path):
    script = write(tmp_path, "s.js", "1")
    p = wapo_cli("exec", str(script), "--memory-limit", "lots")
    assert p.returncode == 2 and b"invalid size" in p.stderr


def test_exec_missing_file(wapo_cli, tmp_path):
    p = wapo_cli("exec", str(tmp_path / "nope.js"))
    assert p.returncode == 2 and b"cannot read" in p.stderr


def test_exec_wasm_guest(wapo_cli, tmp_path):
    guest = write(tmp_path, "hello.wat", HELLO_WAT)
    p = wapo_cli("exec", str(guest))
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"hello from wat\n"
    assert b"a log line" in p.stderr


def test_exec_invalid_wasm(wapo_cli, tmp_path):
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0garbage")
    p = wapo_cli("exec", str(bad))
    assert p.returncode == 1 and b"not a valid WebAssembly module" in p.stderr


def test_help(wapo_cli):
    for argv in (["--help"], ["exec", "--help"], ["build", "--help"]):
        p = wapo_cli(*argv)
        assert p.returncode == 0 and b"usage: wapo" in p.stdout


def test_sample_script(wapo_cli):
    from pathlib import Path
    sample = Path(__file__).resolve().parent.parent / "examples" / "hello.js"
    p = wapo_cli("exec", str(sample), "world")
    assert p.returncode == 0 and p.stdout == b"hello, world!\n"


# --- listening and TLS flags (issue #5) ---------------------------------------------------------

def _tls_echo_exec(tmp_path, flags: list[str], guest_args: list[str], client):
    """Run tests/guests/tls_echo.wat under `wapo exec FLAGS`, call ``client`` once it listens (bounded)."""
    import os
    import subprocess
    import sys
    import threading
    from pathlib import Path

    wat = Path(__file__).parent / "guests" / "tls_echo.wat"
    env = dict(os.environ, WAPO_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.Popen([sys.executable, "-m", "wapo.cli.main", "exec", str(wat), *flags, "--time-limit", "20s",
                             "--", *guest_args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    killer = threading.Timer(60, proc.kill)  # never hang the suite
    killer.start()
    try:
        stderr = b""
        while b"tls_echo: listening" not in stderr:
            line = proc.stderr.readline()
            if not line:
                break
            stderr += line
        answer = client() if b"tls_echo: listening" in stderr else None
        out, rest = proc.communicate(timeout=30)
        return proc.returncode, out, stderr + rest, answer
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tls_round_trip(port: int, name: str, ca_pem: str, message: bytes) -> bytes:
    import socket
    import ssl
    ctx = ssl.create_default_context(cadata=ca_pem)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            tls.sendall(message)
            got = b""
            while len(got) < len(message):
                chunk = tls.recv(65536)
                if not chunk:
                    break
                got += chunk
            return got


def test_exec_sni_port_flag_serves_a_guest_name(tmp_path):
    from test_tls_listen import Pki
    pki = Pki()
    port = _free_port()
    rc, out, err, answer = _tls_echo_exec(
        tmp_path, ["--sni-port", str(port)], ["sni", "cli.test", *pki.issue("cli.test"), "1"],
        lambda: _tls_round_trip(port, "cli.test", pki.ca_pem, b"hello from the cli"))
    assert answer == b"hello from the cli", err
    assert rc == 0 and out == b"served", err


def test_exec_listen_ports_flag_lets_a_guest_listen_with_tls(tmp_path):
    from test_tls_listen import Pki
    pki = Pki()
    port = _free_port()
    guest_args = ["listen", f"127.0.0.1:{port}", *pki.issue("localhost"), "1"]
    rc, out, err, answer = _tls_echo_exec(
        tmp_path, ["--listen-ports", f"{port}-{port}", "--tls-ca", str(write(tmp_path, "ca.pem", pki.ca_pem))],
        guest_args, lambda: _tls_round_trip(port, "localhost", pki.ca_pem, b"ping"))
    assert answer == b"ping", err
    assert rc == 0 and out == b"served", err
    # without the flag the guest may not listen: Forbidden (17), and the log says why
    rc, out, err, answer = _tls_echo_exec(tmp_path, [], guest_args, lambda: None)
    assert rc == 1 and out == b"error 17" and answer is None
    assert f"tcp_listen: FORBIDDEN: port {port} is outside the allowed listen ports (none)".encode() in err


def test_exec_bad_listen_and_tls_flags_are_usage_errors(wapo_cli, tmp_path):
    guest = str(write(tmp_path, "hello.wat", HELLO_WAT))
    for flags, message in ((["--listen-ports", "9000-8000"], b"--listen-ports 9000-8000: LOW must be <= HIGH"),
                           (["--listen-ports", "http"], b"--listen-ports http: PORT must be a port number 1..65535"),
                           (["--sni-port", "70000"], b"--sni-port 70000: PORT must be a port number 1..65535"),
                           (["--sni-port", "example.com:443"],
                            b"--sni-port example.com:443: HOST must be an IP address or localhost"),
                           (["--tls-ca", str(tmp_path / "none.pem")], b"no such file"),
                           (["--tls-ca", guest], b"not a PEM file of CA certificates")):
        p = wapo_cli("exec", guest, *flags)
        assert p.returncode == 2 and message in p.stderr, (flags, p.stderr)
    p = wapo_cli("exec", guest, "--listen-ports", "8000", "--sni-port", "127.0.0.1:8443")
    assert p.returncode == 0 and p.stdout == b"hello from wat\n", p.stderr


def test_serve_listen_and_tls_settings_from_flags_and_toml(wapo_cli, tmp_path):
    from test_tls_listen import Pki
    from wapo.gateway.config import load_config
    p = wapo_cli("serve", "--listen-ports", "9000-8000", timeout=30)
    assert p.returncode == 2 and b"wapo serve: --listen-ports 9000-8000: LOW must be <= HIGH" in p.stderr
    p = wapo_cli("serve", "--config", str(write(tmp_path, "bad.toml", 'sni_port = "nowhere:443"\n')), timeout=30)
    assert p.returncode == 2 and b"sni_port = 'nowhere:443': HOST must be an IP address or localhost" in p.stderr
    ca = write(tmp_path, "ca.pem", Pki().ca_pem)
    config = load_config(write(tmp_path, "ok.toml", f'host = "0.0.0.0"\nlisten_ports = 8080\ntls_ca = "{ca}"\n'
                                                    'sni_port = 8443\n'))
    policy = config.network()
    assert (policy.listen_ports, policy.tls_extra_ca, policy.sni_port, policy.sni_host) == \
        ((8080, 8080), str(ca), 8443, "0.0.0.0")  # the SNI port listens on the gateway's host by default
    config = load_config(write(tmp_path, "ok2.toml", 'listen_ports = "9000-9009"\nsni_port = "127.0.0.1:9443"\n'))
    assert (config.network().listen_ports, config.network().sni_host) == ((9000, 9009), "127.0.0.1")


def test_log_caps_on_the_command_line(wapo_cli, tmp_path):
    script = write(tmp_path, "logs.js", "for (let i = 0; i < 50; i++) console.log('line', i)")
    p = wapo_cli("exec", str(script), "--max-log-lines", "3")
    assert p.returncode == 0, p.stderr
    assert b"line 2" in p.stderr and b"line 3" not in p.stderr
    assert b"47 log line(s)" in p.stderr  # the one line that says what was dropped
    p = wapo_cli("exec", str(script), "--max-log-bytes", "20")
    assert p.returncode == 0 and b"line 1" in p.stderr and b"line 9" not in p.stderr, p.stderr
    p = wapo_cli("exec", str(script), "--max-log-lines", "0")
    assert p.returncode == 2 and b"the log caps must be >= 1" in p.stderr
    p = wapo_cli("serve", "--max-log-bytes", "much", timeout=30)
    assert p.returncode == 2 and b"invalid size" in p.stderr


def test_log_caps_in_the_config_file(tmp_path):
    from wapo.gateway.config import load_config
    cid = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
    config = load_config(write(tmp_path, "caps.toml", '[limits]\nmax_log_lines = 5\nmax_log_bytes = "2KiB"\n'
                                                      f'[cid."{cid}"]\nmemory = "50MB"\n'))
    assert (config.limits.max_log_lines, config.limits.max_log_bytes) == (5, 2048)
    per_cid = config.limits_for(cid)  # an override of one limit keeps the server's log caps
    assert (per_cid.memory, per_cid.max_log_lines, per_cid.max_log_bytes) == (50_000_000, 5, 2048)
    raised = load_config(write(tmp_path, "big.toml", f'[cid."{cid}"]\nmax_log_lines = 10000000\n'))
    assert raised.limits_for(cid).max_log_lines == raised.max_limits.max_log_lines  # capped by [max_limits]
    for text, message in (('[limits]\nmax_log_lines = "many"\n', "[limits]: max_log_lines is a whole number"),
                          ('[limits]\nmax_log_lines = 0\n', "[limits]: the log caps must be >= 1"),
                          ('[max_limits]\nmax_log_bytes = "lots"\n', "[max_limits]: "),
                          (f'[cid."{cid}"]\nburst = "soon"\n', f"[cid.'{cid}']: ")):
        try:
            load_config(write(tmp_path, "bad.toml", text))
        except ValueError as exc:
            assert message in str(exc), (text, str(exc))
        else:
            raise AssertionError(f"accepted: {text!r}")
