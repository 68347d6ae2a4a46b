"""The media of `agent generate`: an http(s) URL passes through, a file becomes base64 data.

A file is checked before anything is read or sent: it must exist, be a regular file with one of
the extensions bitHuman lists for its kind, and be no larger than bitHuman's limit for that kind
(10 MB images, 100 MB video, 50 MB audio; counted in decimal megabytes, the stricter reading).
Anything else is a `MediaError` with a one-line reason.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

Kind = Literal["image", "video", "audio"]

MB = 1_000_000
LIMITS: dict[Kind, int] = {"image": 10 * MB, "video": 100 * MB, "audio": 50 * MB}
EXTENSIONS: dict[Kind, frozenset[str]] = {
    "image": frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp"}),
    "video": frozenset({".mp4", ".avi", ".mov", ".wmv", ".flv", ".webm", ".mkv"}),
    "audio": frozenset({".mp3", ".wav", ".flac", ".aac", ".ogg", ".m4a"}),
}
MAX_URL_LENGTH = 2048


class MediaError(ValueError):
    """A media argument that cannot be sent; the message is one line."""


@dataclass(frozen=True)
class Media:
    kind: Kind
    value: str  # what the API gets: the URL, or the file's bytes as base64
    source: Literal["url", "file"]
    size: int  # bytes read from the file (0 for a URL)


def is_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def describe_size(size: int) -> str:
    return f"{size / MB:.1f} MB" if size >= MB / 10 else f"{size} bytes"


def _shown(value: str) -> str:
    """The argument as it may appear in an error line: short, printable, one line."""
    shown = value if len(value) <= 80 else value[:77] + "..."
    return repr(shown) if not shown.isprintable() else shown


def resolve(kind: Kind, value: str) -> Media:
    """`value` (a URL or a file path) as the API field for `kind`, or MediaError."""
    option = f"--{kind}"
    if is_url(value):
        if len(value) > MAX_URL_LENGTH or not value.isprintable() or " " in value:
            raise MediaError(f"{option}: not a usable URL: {_shown(value)}")
        return Media(kind, value, "url", 0)
    if not value:
        raise MediaError(f"{option}: give a file path or an http(s) URL")
    try:
        path = Path(value).expanduser()
        stat = path.stat()
    # missing, unreadable, a NUL byte, a name too long, or ~user of no such user
    except (OSError, ValueError, RuntimeError):
        raise MediaError(f"{option}: no such file: {_shown(value)}") from None
    if not path.is_file():
        raise MediaError(f"{option}: not a regular file: {_shown(value)}")
    if path.suffix.lower() not in EXTENSIONS[kind]:
        allowed = " ".join(sorted(EXTENSIONS[kind]))
        raise MediaError(f"{option}: {_shown(path.name)} is not a {kind} file ({allowed})")
    limit = LIMITS[kind]
    if stat.st_size > limit:
        raise MediaError(
            f"{option}: {_shown(path.name)} is {describe_size(stat.st_size)}; "
            f"bitHuman accepts {kind} up to {describe_size(limit)}"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MediaError(f"{option}: cannot read {_shown(value)}: {exc.strerror}") from None
    if not data:
        raise MediaError(f"{option}: {_shown(path.name)} is empty")
    if len(data) > limit:  # it grew after the check
        raise MediaError(f"{option}: {_shown(path.name)} is over {describe_size(limit)}")
    return Media(kind, base64.b64encode(data).decode("ascii"), "file", len(data))
