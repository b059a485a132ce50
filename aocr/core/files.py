"""Reading and atomic writing through `tf.io.gfile`, so local, gs:// and ram:// paths all work."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import tensorflow as tf

from aocr.core.errors import AocrError


def join(*parts: str) -> str:
    """Join path parts; works for URLs such as gs://bucket/dir as well as local paths."""
    return os.path.join(*parts)


def read_bytes(path: str) -> bytes:
    """The whole file; a missing or unreadable file is an AocrError naming it."""
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    except tf.errors.NotFoundError:
        raise AocrError(f"{path}: no such file") from None
    except (tf.errors.OpError, OSError) as e:
        raise AocrError(f"{path}: cannot read ({_op_message(e)})") from None


def _op_message(error: Exception) -> str:
    return getattr(error, "message", None) or str(error)


def temp_path_beside(path: str) -> str:
    """A unique temporary name in the same directory, so the final rename stays on one filesystem."""
    directory, name = os.path.split(path)
    temp_name = f".{name}.tmp-{uuid.uuid4().hex[:8]}"
    return join(directory, temp_name) if directory else temp_name


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """Yield a temporary path to write; it replaces `path` only if the block completes.

    On any exception (Ctrl-C included) the temporary file is removed and `path` keeps
    whatever it held before.
    """
    directory = os.path.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    temp = temp_path_beside(path)
    try:
        yield temp
        sync_to_disk(temp)
        tf.io.gfile.rename(temp, path, overwrite=True)
        sync_entries(directory)
    except BaseException:
        with contextlib.suppress(tf.errors.OpError):
            if tf.io.gfile.exists(temp):
                tf.io.gfile.remove(temp)
        raise


def sync_to_disk(path: str) -> None:
    """Flush a local file, or a directory tree (its files and its directories' entries), to the disk, so that
    a rename that follows never names bytes a power cut would lose. gs:// and ram:// need nothing."""
    if "://" in path:
        return
    if not os.path.isdir(path):
        _fsync(path)
        return
    for directory, _, names in os.walk(path):
        for name in names:
            _fsync(os.path.join(directory, name))
        sync_entries(directory)


def sync_entries(directory: str) -> None:
    """Flush a local directory's entries (a rename or link in it) to the disk."""
    if "://" not in directory:
        _fsync(directory or ".", getattr(os, "O_DIRECTORY", 0))


def _fsync(path: str, flags: int = 0) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY | flags)
    except OSError:  # a directory cannot be opened on Windows; its entries are flushed with its files there
        return
    try:
        with contextlib.suppress(OSError):  # some file systems refuse to flush a directory (EINVAL): nothing to do
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def link_or_copy(source: str, target: str) -> None:
    """Make `target` hold `source`'s bytes: a hard link where both are on one local file system (no bytes
    move), a copy elsewhere (gs://, another device). Either goes through a temporary name that replaces
    `target` in one step, so `target` holds its old bytes or the new ones at every moment."""
    if "://" not in source + target:
        temp = temp_path_beside(target)
        try:
            os.link(source, temp)
            os.replace(temp, target)
            sync_entries(os.path.dirname(target))
            return
        except OSError:
            with contextlib.suppress(OSError):
                os.remove(temp)
    with atomic_output(target) as temp:
        tf.io.gfile.copy(source, temp, overwrite=True)


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Replace `path` with `data` in one step (temporary file, then rename)."""
    with atomic_output(path) as temp, tf.io.gfile.GFile(temp, "wb") as f:
        f.write(data)
