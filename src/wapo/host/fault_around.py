"""Read faults on a sandbox's memory image map one page, not sixteen (Linux userfaultfd).

A sandbox's memory starts as the module's image mapped copy-on-write from the compiled artifact
(wasmtime maps it anew at each instantiation). On a read fault in a file mapping the kernel maps
not only the page read but the other pages of its 64 KiB window that are in the page cache
("fault-around"). All sandboxes live in one process, so RSS counts every page mapped once per
sandbox: measured, 1,000 hello agents awaiting a fetch had 230 of the image's 451 pages
mapped read-only each, ~920 KiB per agent, of which a 64 KiB window around each page touched.

``madvise(MADV_RANDOM)`` does not stop it (Linux 6.18 checks no VM_RAND_READ before faulting
around; measured: the same 229.7 pages per sandbox). What does is a userfaultfd registration in
write-protect mode (``should_fault_around`` refuses VMAs with VM_UFFD_WP). With the
``UFFD_FEATURE_WP_ASYNC`` feature (Linux 6.7+) such a registration is allowed on any memory and
no fault is ever delivered to the descriptor: nothing is write-protected (no
``UFFDIO_WRITEPROTECT`` is ever issued), so the registration only sets the VMA's flag. One
descriptor per process (``UFFD_USER_MODE_ONLY``, which unprivileged processes may open), one
``UFFDIO_REGISTER`` ioctl per sandbox over its memory as instantiated (a few microseconds).
Where the kernel or a seccomp policy refuses, this is a no-op (the first failure is logged).
``WAPO_FAULT_AROUND=1`` keeps the kernel's fault-around (no registration).

A forked child gets the descriptor but not the registrations, and the descriptor stays bound to
the parent's address space: the child opens its own.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading

log = logging.getLogger("wapo.host")

SYS_USERFAULTFD = {"x86_64": 323, "aarch64": 282}
UFFD_API = 0xAA
UFFD_USER_MODE_ONLY = 1
UFFD_FEATURE_WP_ASYNC = 1 << 15
UFFDIO_REGISTER_MODE_WP = 1 << 1
UFFDIO_API = 0xC018AA3F        # _IOWR(0xAA, 0x3F, struct uffdio_api): api, features, ioctls
UFFDIO_REGISTER = 0xC020AA00   # _IOWR(0xAA, 0x00, struct uffdio_register): start, len, mode, ioctls
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

ENABLED = os.environ.get("WAPO_FAULT_AROUND", "0").strip().lower() in ("", "0", "false", "no", "off")

_lock = threading.Lock()
_fd: int | None = None          # this process's descriptor; None: not opened yet
_pid = 0                        # the process that opened it
_failed = False                 # the kernel refused once: give up for this process
_libc = None


def _open() -> int | None:
    """The process's userfaultfd with WP_ASYNC, or None where there is none."""
    global _libc, _failed
    machine = os.uname().machine if hasattr(os, "uname") else ""
    number = SYS_USERFAULTFD.get(machine)
    if not sys.platform.startswith("linux") or number is None:
        _failed = True  # not Linux, or a machine whose syscall number is not known here: never
        return None
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
        _libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
    fd = _libc.syscall(ctypes.c_long(number), ctypes.c_int(os.O_CLOEXEC | os.O_NONBLOCK | UFFD_USER_MODE_ONLY))
    if fd < 0:
        _refused("userfaultfd", ctypes.get_errno())
        return None
    api = (ctypes.c_uint64 * 3)(UFFD_API, UFFD_FEATURE_WP_ASYNC, 0)
    if _libc.ioctl(fd, UFFDIO_API, api) != 0:
        _refused("UFFDIO_API with WP_ASYNC", ctypes.get_errno())
        os.close(fd)
        return None
    return fd


def _refused(what: str, errno: int) -> None:
    global _failed
    _failed = True
    log.info("kernel fault-around stays on for sandbox memory (%s: %s)", what, os.strerror(errno))


def _descriptor() -> int | None:
    global _fd, _pid
    pid = os.getpid()
    if _fd is not None and _pid == pid:
        return _fd
    with _lock:
        if _failed:
            return None
        if _fd is None or _pid != pid:
            _fd, _pid = _open(), pid
        return _fd


_slots: dict[int, int] = {}     # pool slot (memory base) -> id of the module last registered there


def no_fault_around(base: int, length: int, pooled_module: object | None = None) -> bool:
    """Read faults in [base, base + length) (a sandbox's memory, page-aligned) map one page each.
    False where the kernel does not allow it (nothing changed), or nothing needed doing.

    ``pooled_module``: the memory is a pool slot's (at a fixed address), instantiated from this
    module. The pool maps a module's image into a slot only when the slot last held another
    one's; otherwise the mapping, and with it the registration, stays. So a slot is registered
    when its module changes, not at every use (and after the slot's first reset, the pool's
    keep-resident copy has made its image pages its own anyway). A module that is freed and a new
    one at the same id() would be taken for the same: that slot keeps fault-around (memory only)."""
    if not ENABLED or _failed or not base or length <= 0:
        return False
    if pooled_module is not None:
        key = id(pooled_module)
        if _slots.get(base) == key:
            return False
        _slots[base] = key
    fd = _descriptor()
    if fd is None:
        return False
    start = base & ~(PAGE - 1)
    end = (base + length + PAGE - 1) & ~(PAGE - 1)
    reg = (ctypes.c_uint64 * 4)(start, end - start, UFFDIO_REGISTER_MODE_WP, 0)
    if _libc.ioctl(fd, UFFDIO_REGISTER, reg) != 0:
        _refused("UFFDIO_REGISTER", ctypes.get_errno())
        return False
    return True


def _after_fork_in_child() -> None:
    global _fd, _pid, _lock  # the child's mappings carry no registration (no UFFD_FEATURE_EVENT_FORK)
    if _fd is not None:
        try:
            os.close(_fd)
        except OSError:
            pass
    _fd, _pid, _lock = None, 0, threading.Lock()
    _slots.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
