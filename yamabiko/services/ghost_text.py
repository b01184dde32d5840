"""A ghost document's text as a list of chunks, so that a keystroke costs a chunk.

Theory of operation. A plain ``str`` makes every edit copy the whole text: a
notification of 1,000 changes to a 900,000-character document copies 900 M
characters. Here the text is a list of chunks of about :data:`CHUNK` code points, with
their lengths beside them. An edit finds the chunks holding its ends (a running sum
and a bisection, both in C, over at most ``2 * len / CHUNK + 1`` lengths), rebuilds
only those chunks and splices them into the list. Chunks stay between ``CHUNK / 2``
and ``2 * CHUNK`` code points (a short one absorbs a neighbour; a long one is cut), so
the list stays short however the text is edited. The whole text is joined only when
asked for (:meth:`ChunkedText.text`), and kept until the next edit: one copy per
version that an engine reads, not one per change.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import accumulate
from typing import Final

CHUNK: Final = 8192
"""Code points per chunk: the list of a 1 M document is ~120 long, and rebuilding one
chunk is a microsecond or two (measured in docs/decisions/0050-ghost-text-limits.md)."""


class ChunkedText:
    """Text that takes ``replace`` edits without copying what the edit does not touch."""

    __slots__ = ("_chunks", "_hint", "_joined", "_lengths", "length")

    def __init__(self, text: str = "") -> None:
        self._chunks: list[str] = _split(text)
        self._lengths = [len(c) for c in self._chunks]
        self._joined: str | None = text
        self.length = len(text)
        # The chunk the last edit left (index, offset of its start): keystrokes land
        # in the same chunk, and an edit inside it needs no search and no splice.
        self._hint: tuple[int, int] | None = None

    def text(self) -> str:
        """The whole text (joined once per edit, then cached)."""
        if self._joined is None:
            self._joined = "".join(self._chunks)
        return self._joined

    @property
    def chunk_count(self) -> int:
        return len(self._chunks)

    def before(self, offset: int, limit: int) -> str:
        """Up to ``limit`` code points ending at ``offset``, without joining the text."""
        start = max(0, offset - limit)
        if self._joined is not None:
            return self._joined[start:offset]
        return self._slice(start, offset)

    def replace(self, start: int, end: int, new: str) -> None:
        """Replace ``[start, end)`` with ``new``; the caller checked
        ``0 <= start <= end <= length``."""
        chunks, lengths = self._chunks, self._lengths
        self._joined = None
        self.length += len(new) - (end - start)
        hint = self._hint
        if hint is not None:
            i, base = hint
            if base <= start and end <= base + lengths[i]:
                chunk = chunks[i]
                middle = chunk[: start - base] + new + chunk[end - base :]
                if (
                    middle
                    and len(middle) <= 2 * CHUNK
                    and (len(middle) >= CHUNK // 2 or len(chunks) == 1)
                ):
                    chunks[i] = middle
                    lengths[i] = len(middle)
                    return
        if not chunks:
            self._hint = None
            chunks[:] = _split(new)
            lengths[:] = [len(c) for c in chunks]
            return
        ends = list(accumulate(lengths))
        # The chunk holding ``start`` (at a chunk boundary, the one after it, unless
        # it is the end of the text), and the one holding the character before ``end``.
        first = min(bisect_right(ends, start), len(chunks) - 1)
        last = max(first, min(bisect_left(ends, end), len(chunks) - 1))
        first_start = ends[first] - lengths[first]
        last_start = ends[last] - lengths[last]
        middle = chunks[first][: start - first_start] + new + chunks[last][end - last_start :]
        # Absorb a neighbour when the result is short, so that chunks never crumble.
        if len(middle) < CHUNK // 2 and len(chunks) > last - first + 1:
            if last + 1 < len(chunks):
                last += 1
                middle += chunks[last]
            else:
                first -= 1
                first_start -= lengths[first]
                middle = chunks[first] + middle
        pieces = _split(middle)
        chunks[first : last + 1] = pieces
        lengths[first : last + 1] = [len(p) for p in pieces]
        # Chunks before ``first`` are untouched, so its start is still the one summed.
        self._hint = (first, first_start) if pieces else None

    def _slice(self, start: int, end: int) -> str:
        if start >= end:
            return ""
        ends = list(accumulate(self._lengths))
        first = bisect_right(ends, start)
        last = bisect_left(ends, end)
        offset = ends[first] - self._lengths[first]
        joined = "".join(self._chunks[first : last + 1])
        return joined[start - offset : end - offset]


def _split(text: str) -> list[str]:
    """``text`` in even chunks of ``CHUNK / 2`` to ``2 * CHUNK``; none for no text."""
    if len(text) <= 2 * CHUNK:
        return [text] if text else []
    size = -(-len(text) // -(-len(text) // CHUNK))  # ceil(len / ceil(len / CHUNK))
    return [text[i : i + size] for i in range(0, len(text), size)]
