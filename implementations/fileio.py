"""Writing result files so that no reader ever sees half of one.

Every file the project writes for a person or a later run (result JSONs, reports, profile
pages, plots) is written to a temporary file in the same folder and renamed over the target
(os.replace is atomic on POSIX within one file system): a run that fails or is killed
part-way leaves the previous file whole, and two writers never interleave their bytes.
Temporary names are unique per writer (`.<name>.<random>.partial`), so concurrent runs do
not clobber each other's temporary files either.
"""

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; on leaving the block without an
    exception it replaces `path`, otherwise it is removed and `path` is left as it was.
    Creates `path`'s folder. OSError (an unwritable folder) propagates, naming the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a result file is for everyone to read
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8, or bytes) to `path` atomically; returns the path."""
    with atomic_target(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
    return Path(path)


def atomic_json(path: str | os.PathLike, doc, indent: int | None = 1) -> Path:
    """Write `doc` as JSON to `path` atomically; returns the path."""
    return atomic_write(path, json.dumps(doc, indent=indent))


class ResultFileError(ValueError):
    """A result file that cannot be used: the message is '<path>: <what is wrong>; <how to
    fix it>'."""


def read_json(path: str | os.PathLike, fix: str):
    """The JSON document in `path`; ResultFileError naming the file, what is wrong (missing,
    empty, cut short, not JSON) and `fix` (how to make a good one) otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultFileError(f"{path}: no such file; {fix}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultFileError(f"{path}: cannot be read ({exc}); {fix}") from None
    if not text.strip():
        raise ResultFileError(f"{path}: the file is empty; {fix}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        ends_early = (exc.pos >= len(text.rstrip()) - 1 or exc.msg.startswith("Unterminated"))
        cut = " (the file looks cut short)" if ends_early else ""
        raise ResultFileError(f"{path}: not valid JSON at line {exc.lineno} column "
                              f"{exc.colno}: {exc.msg}{cut}; {fix}") from None


WHERE_FIX = ("set MNIST_TIERS_OUT to a writable folder (a user's results go under it) or "
             "pass another destination")


def check_writable(path: str | os.PathLike, fix: str = WHERE_FIX) -> Path:
    """Make sure a file can be written at `path` (creating its folder) before any work is
    done for it: a long measurement must never end in an unwritable destination. Returns the
    path; ResultFileError "<folder>: cannot write there (<why>); <fix>" otherwise. Leaves no
    file behind."""
    path = Path(path)
    if path.is_dir():
        raise ResultFileError(f"{path}: is a folder, not a file name; {fix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ResultFileError(f"{path.parent}: cannot write there "
                              f"({exc.strerror or exc}); {fix}") from None
    return path
