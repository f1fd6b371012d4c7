"""Reading scraped post files: a list of posts, one post, or {"matching_elements": [...]}.

Every problem becomes one line naming the file and the post; nothing here raises for bad input.
Only regular files are read (a FIFO would block, /dev/zero never ends), up to a size limit.

A file up to STREAM_FILE_BYTES is read whole with `json.loads`; a larger one is read as a
stream, a post at a time, so memory stays flat whatever its size. The stream decodes each post
with the json module's own scanner, so both ways read the same values (NaN, 1e400, lone
surrogates, big integers: see `json_values`) and word their errors alike, positions counted
from the start of the file. One difference is deliberate: a streamed file that turns out broken
half way keeps the posts before the break; a small one is skipped whole, as it always was.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from social_tui_media.posts.json_values import MAX_DEPTH, clean_json, clean_text
from social_tui_media.posts.media_items import post_identity

MAX_POST_FILE_BYTES = 512 * 1024 * 1024  # a scrape file larger than this is refused, not read
STREAM_FILE_BYTES = 4 * 1024 * 1024  # a file larger than this is read a post at a time
READ_BYTES = 1024 * 1024  # bytes per read while streaming
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
)  # fmt: skip
_JSON_SPACE = re.compile(r"[ \t\n\r]*")  # what json.loads skips between tokens
_ANY_SPACE = re.compile(r"\s*")  # what str.strip() removes: a file of only this is empty
_SCAN = json.JSONDecoder().raw_decode  # the scanner json.loads uses
_TAIL_CHARS = 32  # an error this close to the end of the text read so far may be the read's cut


@dataclass(frozen=True)
class LoadedPost:
    source_file: str  # the file's name, for messages
    index: int
    data: dict
    urn: str
    source_path: str = ""  # the file's full path, recorded in data_downloads.source_file_path


class _Skipped(Exception):
    """A file-level problem, as its one line: the rest of the file is not read."""


def _not_regular(mode: int) -> str | None:
    """What a file is when it is not a regular file ("a FIFO", ...), else None."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _FILE_KINDS if test(mode)), "not a regular file")


def _too_large(name: str, size: int) -> str:
    return (
        f"{name}: {size:,} bytes is over the limit of {MAX_POST_FILE_BYTES:,} bytes (MAX_POST_FILE_BYTES);"
        " split the file; skipped"
    )


def _empty(name: str) -> str:
    return f"{name}: file is empty; skipped"


def _invalid(name: str, message: str) -> str:
    return f"{name}: not valid JSON ({message}); skipped"


def _too_deep(name: str) -> str:
    return f"{name}: not usable JSON: nested too deeply; skipped"


def _undecodable(name: str, exc: UnicodeDecodeError, offset: int = 0) -> str:
    """The line for bytes that are not UTF-8, `offset` bytes into the file's text (after a BOM)."""
    start, end = exc.start + offset, exc.end + offset
    what = (
        f"byte 0x{exc.object[exc.start]:02x} in position {start}"
        if exc.end == exc.start + 1
        else f"bytes in position {start}-{end - 1}"
    )
    return f"{name}: cannot read file (UnicodeDecodeError: '{exc.encoding}' codec can't decode {what}: {exc.reason}); skipped"


@contextmanager
def _open_regular(path: Path, name: str) -> Iterator[BinaryIO]:
    """A regular file open for reading (a symlink to one is followed), or _Skipped saying why not.

    Checked before opening, so a FIFO or device is never opened, and again on the open file
    (opened non-blocking), so one swapped in between is not read either."""
    kind = _not_regular(path.stat().st_mode)
    if kind is not None:
        raise _Skipped(f"{name}: not a regular file ({kind}); skipped")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        opened = os.fstat(handle.fileno())
        kind = _not_regular(opened.st_mode)
        if kind is not None:
            raise _Skipped(f"{name}: not a regular file ({kind}); skipped")
        if opened.st_size > MAX_POST_FILE_BYTES:
            raise _Skipped(_too_large(name, opened.st_size))
        yield handle


def _posts_of(data: Any, name: str) -> list[Any]:
    """The post objects of a whole file's JSON value (a list, one post, or {"matching_elements": [...]})."""
    if isinstance(data, dict) and isinstance(data.get("matching_elements"), list):
        return data["matching_elements"]
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise _Skipped(f"{name}: expected a list of posts or an object, found {type(data).__name__}; skipped")


def _whole_file_posts(handle: BinaryIO, name: str) -> list[Any]:
    """The post objects of a file read whole: nothing from it when any of it is broken."""
    raw = handle.read(MAX_POST_FILE_BYTES + 1)
    if len(raw) > MAX_POST_FILE_BYTES:  # it grew while being read
        raise _Skipped(_too_large(name, len(raw)))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Skipped(_undecodable(name, exc)) from None
    if not text.strip():
        raise _Skipped(_empty(name))
    try:
        data = json.loads(text)
    except RecursionError:
        raise _Skipped(_too_deep(name)) from None
    except ValueError as exc:
        raise _Skipped(_invalid(name, str(exc))) from None
    return _posts_of(data, name)


class _JsonText:
    """A file's JSON text, read and decoded a chunk at a time; `text[pos]` is the next character.

    Values are decoded by the json module's scanner (`raw_decode`), retried with more text when
    the read cut one short. Error lines count lines, columns and characters from the file's start."""

    def __init__(self, handle: BinaryIO, name: str):
        self.name = name
        self.text = ""
        self.pos = 0
        self._handle = handle
        self._base = 0  # characters of the file before text[0]
        self._lines = 0  # newlines before text[0]
        self._line_start = 0  # the character after the last of those newlines
        self._bytes_read = 0
        self._bytes_decoded = 0  # after the BOM: UTF-8 errors are counted from there, as decode() counts
        self._undecoded = b""  # a character cut by the read, completed by the next one
        self._bom_checked = False
        self._eof = False

    def read_more(self) -> bool:
        """Append the next chunk to the unread text; False at the end of the file."""
        if self._eof:
            return False
        self._drop_read()
        data = self._handle.read(max(READ_BYTES, len(self.text)))  # a long value: grow geometrically
        self._bytes_read += len(data)
        if self._bytes_read > MAX_POST_FILE_BYTES:  # it grew while being read
            raise _Skipped(_too_large(self.name, self._bytes_read))
        self._eof = not data
        pending = self._undecoded + data
        if not self._bom_checked:
            if len(pending) < len(codecs.BOM_UTF8) and codecs.BOM_UTF8.startswith(pending) and not self._eof:
                self._undecoded = pending  # the start of a BOM, perhaps: decide when it is whole
                return True
            self._bom_checked = True
            if pending.startswith(codecs.BOM_UTF8):
                pending = pending[len(codecs.BOM_UTF8) :]  # decode("utf-8-sig") drops one
        try:
            chars, used = codecs.utf_8_decode(pending, "strict", self._eof)
        except UnicodeDecodeError as exc:
            raise _Skipped(_undecodable(self.name, exc, self._bytes_decoded)) from None
        self._undecoded = pending[used:]
        self._bytes_decoded += used
        self.text += chars
        return True

    def _drop_read(self) -> None:
        """Forget the text before `pos`, keeping count of its characters and lines."""
        newlines = self.text.count("\n", 0, self.pos)
        if newlines:
            self._lines += newlines
            self._line_start = self._base + self.text.rindex("\n", 0, self.pos) + 1
        self._base += self.pos
        self.text = self.text[self.pos :]
        self.pos = 0

    def where(self, pos: int) -> str:
        """`line L column C (char N)` of a position in `text`, as json.loads words it."""
        newlines = self.text.count("\n", 0, pos)
        line_start = self._base + self.text.rindex("\n", 0, pos) + 1 if newlines else self._line_start
        at = self._base + pos
        return f"line {self._lines + newlines + 1} column {at - line_start + 1} (char {at})"

    def fail(self, message: str, pos: int | None = None) -> _Skipped:
        return _Skipped(_invalid(self.name, f"{message}: {self.where(self.pos if pos is None else pos)}"))

    def next_char(self) -> str:
        """The next character after JSON whitespace ("" at the end of the file)."""
        while True:
            self.pos = _JSON_SPACE.match(self.text, self.pos).end()
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.read_more():
                return ""

    def expect(self, char: str, message: str) -> None:
        """Step over `char`, the next character after whitespace, or fail with json's message."""
        if self.next_char() != char:
            raise self.fail(message)
        self.pos += 1

    def value(self) -> Any:
        """The JSON value at the next character."""
        self.next_char()
        while True:
            try:
                value, end = _SCAN(self.text, self.pos)
            except json.JSONDecodeError as exc:
                cut = exc.msg.startswith("Unterminated string") or exc.pos >= len(self.text) - _TAIL_CHARS
                if cut and self.read_more():
                    continue
                raise self.fail(exc.msg, exc.pos) from None
            except RecursionError:
                raise _Skipped(_too_deep(self.name)) from None
            except ValueError as exc:  # an integer of more digits than Python converts
                if self.text[-1:].isdigit() and self.read_more():
                    continue  # its digits may go on in the next chunk
                raise _Skipped(_invalid(self.name, str(exc))) from None
            if isinstance(value, int | float) and len(self.text) - end < _TAIL_CHARS and self.read_more():
                continue  # a number cut by the read ("1e" of "1e+30") may go on in the next chunk
            self.pos = end
            return value

    def first_char(self) -> str:
        """The first character of the JSON text, after checks json.loads and the empty-file rule make."""
        char = self.next_char()
        if char == "\ufeff" and self._base + self.pos == 0:
            raise self.fail("Unexpected UTF-8 BOM (decode using utf-8-sig)")
        if char.isspace():  # whitespace json.loads does not skip: empty if only such follows
            failure = self.fail("Expecting value")
            while _ANY_SPACE.match(self.text, self.pos).end() == len(self.text):
                self.pos = len(self.text)
                if not self.read_more():
                    raise _Skipped(_empty(self.name))
            raise failure
        if not char:
            raise _Skipped(_empty(self.name))
        return char

    def end(self) -> None:
        """Nothing but whitespace may follow the top-level value."""
        if self.next_char():
            raise self.fail("Extra data")


def _array_items(text: _JsonText) -> Iterator[Any]:
    """The items of the array whose `[` is the next character, one at a time."""
    text.expect("[", "Expecting value")
    if text.next_char() == "]":
        text.pos += 1
        return
    while True:
        yield text.value()
        if text.next_char() == "]":
            text.pos += 1
            return
        text.expect(",", "Expecting ',' delimiter")


def _object_posts(text: _JsonText) -> Iterator[Any]:
    """The posts of the top-level object: its "matching_elements" list's items, one at a time,
    else the object itself, one post (a list repeated under the same key is read each time)."""
    text.expect("{", "Expecting value")
    members: dict[str, Any] = {}
    streamed = False
    if text.next_char() != "}":
        while True:
            if text.next_char() != '"':
                raise text.fail("Expecting property name enclosed in double quotes")
            key = text.value()
            text.expect(":", "Expecting ':' delimiter")
            if key == "matching_elements" and text.next_char() == "[":
                yield from _array_items(text)
                streamed = True
            elif streamed:
                text.value()  # read past it: the list is what the file holds
            else:
                members[key] = text.value()
            if text.next_char() == "}":
                break
            text.expect(",", "Expecting ',' delimiter")
    text.pos += 1
    if not streamed:
        yield members


def _streamed_posts(handle: BinaryIO, name: str) -> Iterator[Any]:
    """The post objects of a file read as a stream: those before a break in it are kept."""
    text = _JsonText(handle, name)
    char = text.first_char()
    if char == "[":
        yield from _array_items(text)
    elif char == "{":
        yield from _object_posts(text)
    else:
        value = text.value()
        text.end()
        _posts_of(value, name)  # raises: neither a list nor an object
    text.end()


def iter_post_file(path: Path, problems: list[str], stream_above: int = STREAM_FILE_BYTES) -> Iterator[Any]:
    """The post objects in one file (a list, one post, or {"matching_elements": [...]}), in
    order; what stops the file is one line in `problems`."""
    name = clean_text(path.name)
    try:
        with _open_regular(path, name) as handle:
            if os.fstat(handle.fileno()).st_size > stream_above:
                yield from _streamed_posts(handle, name)
            else:
                yield from _whole_file_posts(handle, name)
    except _Skipped as skipped:
        problems.append(str(skipped))
    except OSError as exc:
        problems.append(f"{name}: cannot read file ({exc.__class__.__name__}: {exc}); skipped")


def describe(source: str, index: int, urn: str | None) -> str:
    return f"{source} post {urn}" if urn else f"{source} post #{index + 1}"


def loaded_post(item: Any, name: str, index: int, source_path: str, problems: list[str]) -> LoadedPost | None:
    """A post with an identity, cleaned so every back end stores it (see `json_values`); None
    when it is skipped. What was skipped or cleaned is one line in `problems`."""
    cleaned = clean_json(item)
    if cleaned.too_deep:
        urn = post_identity(item)
        where = describe(name, index, clean_text(urn) if urn else None)
        problems.append(f"{where}: nested more than {MAX_DEPTH} levels deep; skipped")
        return None
    urn = post_identity(cleaned.value)
    if urn is None:
        kind = "not an object" if not isinstance(item, dict) else "has no urn or full_urn"
        problems.append(f"{describe(name, index, None)}: {kind}; skipped")
        return None
    if cleaned.changes:
        problems.append(f"{describe(name, index, urn)}: {', '.join(cleaned.changes)}")
    return LoadedPost(name, index, cleaned.value, urn, source_path)


def iter_posts(
    paths: Iterable[Path], problems: list[str], stream_above: int = STREAM_FILE_BYTES
) -> Iterator[LoadedPost]:
    """Every post with an identity from the files, a post at a time; the rest, and what was
    cleaned, become one-line problems."""
    for path in paths:
        name = clean_text(path.name)
        source_path = ""
        for index, item in enumerate(iter_post_file(path, problems, stream_above)):
            source_path = source_path or clean_text(str(path.resolve()))
            post = loaded_post(item, name, index, source_path, problems)
            if post is not None:
                yield post
