"""Source maps (v3) and stack traces mapped through them: an error in a bundled TypeScript agent
shows ``src/index.ts:LINE:COL`` next to the bundle position.

A small decoder of its own (base64 VLQ ``mappings``, ~60 lines) rather than a PyPI parser: the
one there (``sourcemap`` 0.2.1) is unmaintained since 2017, and only "which original position is
at bundle line L, column C" is needed."""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass

_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
# "at fn (file.js:12:5)" or "at file.js:12:5": QuickJS's stack frames (1-based line and column)
_FRAME = re.compile(r"(?P<file>[^\s()]+):(?P<line>\d+):(?P<col>\d+)")


class SourceMapError(ValueError):
    """The map is not a v3 source map this decoder reads."""


@dataclass(frozen=True)
class Position:
    source: str
    line: int    # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}"


def _vlq(segment: str) -> list[int]:
    values, value, shift = [], 0, 0
    for ch in segment:
        digit = _B64.get(ch)
        if digit is None:
            raise SourceMapError(f"bad base64 VLQ character {ch!r}")
        value += (digit & 31) << shift
        if digit & 32:
            shift += 5
            continue
        values.append(-(value >> 1) if value & 1 else value >> 1)
        value, shift = 0, 0
    return values


class SourceMap:
    """A decoded map: ``lookup(line, column)`` of the generated code (1-based, as in JS stacks)."""

    def __init__(self, data: bytes | str) -> None:
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise SourceMapError(f"not JSON: {exc}") from None
        if not isinstance(raw, dict) or raw.get("version") != 3 or "sections" in raw:
            raise SourceMapError("only flat version 3 source maps are read")
        root = raw.get("sourceRoot") or ""
        self.sources = [root + s for s in raw.get("sources", [])]
        # per generated line: sorted generated columns and their (source, line, column)
        self._lines: list[tuple[list[int], list[tuple[int, int, int]]]] = []
        src = src_line = src_col = 0
        for text in raw.get("mappings", "").split(";"):
            cols: list[int] = []
            targets: list[tuple[int, int, int]] = []
            gen_col = 0
            for segment in filter(None, text.split(",")):
                fields = _vlq(segment)
                gen_col += fields[0]
                if len(fields) >= 4:
                    src += fields[1]
                    src_line += fields[2]
                    src_col += fields[3]
                    cols.append(gen_col)
                    targets.append((src, src_line, src_col))
            self._lines.append((cols, targets))

    def lookup(self, line: int, column: int) -> Position | None:
        """The original position of generated ``line``:``column`` (both 1-based), or None."""
        if not 1 <= line <= len(self._lines):
            return None
        cols, targets = self._lines[line - 1]
        i = bisect.bisect_right(cols, column - 1) - 1
        if i < 0:
            if not cols:
                return None
            i = 0
        src, src_line, src_col = targets[i]
        if not 0 <= src < len(self.sources):
            return None
        return Position(self.sources[src], src_line + 1, src_col + 1)


def map_stack(text: str, source_map: SourceMap, bundle_name: str | None = None) -> str:
    """``text`` with every ``file:line:col`` of the bundle followed by its original position:
    ``at f (Qm...js:40:11 -> src/index.ts:7:9)``. Positions of other files are left alone."""
    def mapped(match: re.Match) -> str:
        if bundle_name is not None and match.group("file") != bundle_name:
            return match.group(0)
        pos = source_map.lookup(int(match.group("line")), int(match.group("col")))
        return match.group(0) if pos is None else f"{match.group(0)} -> {pos}"

    return _FRAME.sub(mapped, text)
