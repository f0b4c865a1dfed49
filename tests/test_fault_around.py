"""Read faults on a sandbox's copy-on-write memory image map one page, not a 64 KiB window
(wapo.host.fault_around; docs/design.md, issue 17 part 3). Real mappings, real sandboxes: the
pages present are read from /proc/self/pagemap, the VMA's flags from /proc/self/smaps."""

from __future__ import annotations

import json
import mmap
import os
import struct
import subprocess
import sys
import textwrap

import pytest

from wapo.host import fault_around

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="userfaultfd is Linux's")

PAGE = mmap.PAGESIZE


def present_pages(base: int, length: int) -> tuple[int, int]:
    """(file-backed, anonymous) pages of [base, base + length) present in this process's page tables."""
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(base // PAGE * 8)
        data = f.read(length // PAGE * 8)
    file = anon = 0
    for (entry,) in struct.iter_unpack("<Q", data):
        if entry >> 63 & 1:
            if entry >> 61 & 1:
                file += 1
            else:
                anon += 1
    return file, anon


def mapped_private_file(tmp_path, pages: int = 64) -> tuple[mmap.mmap, int]:
    path = tmp_path / "image.bin"
    path.write_bytes(os.urandom(pages * PAGE))
    path.read_bytes()  # every page in the page cache: what fault-around maps
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), pages * PAGE, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    import ctypes
    base = ctypes.addressof(ctypes.c_char.from_buffer(m))
    return m, base


def kernel_allows() -> bool:
    return fault_around._descriptor() is not None


@pytest.mark.skipif(not kernel_allows(), reason="no userfaultfd with WP_ASYNC here (Linux < 6.7 or a seccomp policy)")
def test_a_registered_private_file_mapping_maps_one_page_per_read_fault(tmp_path) -> None:
    plain, plain_base = mapped_private_file(tmp_path)
    registered, reg_base = mapped_private_file(tmp_path)
    assert fault_around.no_fault_around(reg_base, 64 * PAGE)
    for m in (plain, registered):
        assert m[20 * PAGE + 1] is not None   # one read fault in the middle of a 64 KiB window
    assert present_pages(plain_base, 64 * PAGE)[0] > 1      # the kernel's fault-around
    assert present_pages(reg_base, 64 * PAGE) == (1, 0)     # the page read, nothing around it
    registered[30 * PAGE] = 7                               # a write still copies as before
    assert registered[30 * PAGE] == 7 and present_pages(reg_base, 64 * PAGE) == (1, 1)
    assert plain[30 * PAGE] != 7 or plain_base == reg_base  # the file is untouched
    plain.close()
    registered.close()


SANDBOXES = textwrap.dedent("""
    import asyncio, json, struct, sys
    sys.path.insert(0, sys.argv[1])
    from test_fault_around import present_pages
    from wapo.host import fault_around
    from wapo.js.runner import js_instance

    CODE = "await new Promise(r => setTimeout(r, 300)); scriptOutput = 'done'"

    def vma_flags(base, size):
        flags, inside = {}, None
        for line in open("/proc/self/smaps"):
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                inside = lo if base <= lo < base + size and len(head) > 5 else None
            elif head[0] == "VmFlags:" and inside is not None:
                flags[inside] = head[1:]
        return flags

    async def one(registered):
        fault_around.ENABLED = registered
        inst = js_instance(CODE, module=True, snapshot=True)
        task = asyncio.create_task(inst.run())
        while inst._sandbox is None or inst._state is None or inst._state.poll_requested:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # the first poll is done: the sandbox waits on its timer
        base, size = inst._sandbox.memory_base_and_size()
        file, anon = present_pages(base, size)
        flags = vma_flags(base, size)
        result = await task
        return {"file": file, "anon": anon, "flags": list(flags.values()), "output": result.output.decode(),
                "ok": result.ok}

    async def main():
        out = {"plain": await one(False), "registered": await one(True)}
        print(json.dumps(out))

    asyncio.run(main())
""")


@pytest.mark.skipif(not kernel_allows(), reason="no userfaultfd with WP_ASYNC here (Linux < 6.7 or a seccomp policy)")
def test_a_waiting_sandbox_maps_only_the_image_pages_it_read() -> None:
    """Two sandboxes from the snapshot, each awaiting a timer, on the on-demand engine (a fresh
    mapping of the image each; WAPO_POOL_SLOTS=0), one registered and one not: the registered
    one's image mapping carries the flag (smaps "uw") and holds far fewer file pages."""
    env = dict(os.environ, WAPO_POOL_SLOTS="0")
    env.pop("WAPO_FAULT_AROUND", None)
    proc = subprocess.run([sys.executable, "-c", SANDBOXES, os.path.dirname(__file__)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    plain, registered = out["plain"], out["registered"]
    for row in (plain, registered):
        assert row["ok"] and row["output"] == "done", row
        assert row["flags"], "the image is mapped from the compiled artifact (a file)"
    assert all("uw" in flags for flags in registered["flags"])
    assert not any("uw" in flags for flags in plain["flags"])
    # measured: ~66 vs ~230 file pages for an agent awaiting a fetch
    assert registered["file"] * 2 < plain["file"], out
    assert abs(registered["anon"] - plain["anon"]) <= plain["anon"] // 4 + 4, out  # the same writes


def test_the_switch_and_a_forked_child(tmp_path) -> None:
    """WAPO_FAULT_AROUND=1 keeps the kernel's behaviour; a forked child opens its own descriptor
    (the parent's is bound to the parent's address space: registering the child's mapping through
    it would fail or touch the parent's) and its registrations work."""
    code = "from wapo.host import fault_around as f; print(f.ENABLED, f.no_fault_around(4096, 4096))"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, WAPO_FAULT_AROUND="1"),
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
    if fault_around._descriptor() is None:
        pytest.skip("no userfaultfd with WP_ASYNC here")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: map, register, read one byte, report the pages present
        try:
            m, base = mapped_private_file(tmp_path)
            ok = fault_around.no_fault_around(base, 64 * PAGE)
            _ = m[20 * PAGE + 1]
            os.write(w, json.dumps([ok, present_pages(base, 64 * PAGE)]).encode())
        finally:
            os._exit(0)
    os.close(w)
    answer = json.loads(os.read(r, 256))
    os.close(r)
    os.waitpid(pid, 0)
    assert answer == [True, [1, 0]]
