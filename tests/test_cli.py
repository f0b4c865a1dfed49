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
