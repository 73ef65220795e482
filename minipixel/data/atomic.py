"""Atomic file writing: a reader sees the old file or the complete new one, never half.

The data goes to a temporary file in the *same directory* as the target (so
the final rename never crosses a file system), is flushed and fsynced, and is
then moved over the target with ``os.replace`` (atomic on POSIX and Windows).
The directory is fsynced afterwards where the OS allows it, so the rename
itself survives a crash. If anything raises before the rename, even
KeyboardInterrupt, the temporary file is removed and the target is untouched.

    with atomic_write("run/log.txt", "w") as f:          # a file object
        f.write("...")
    with atomic_write("run/img.png", as_path=True) as tmp:  # a path to fill
        some_library.save(tmp)
    atomic_savez("ckpt.npz", weights=w, step=np.array(3))

The new file gets the permission bits of the file it replaces, or 0o644 when
there was none (``mkstemp`` alone would leave 0o600).
"""
import contextlib
import io
import os
import stat
import tempfile

import numpy as np

__all__ = ["atomic_write", "atomic_savez", "atomic_savez_compressed"]


def _fsync_dir(directory):
    """Best effort: make the rename durable (not possible on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode="wb", *, as_path=False, encoding=None, newline=None):
    """Write ``path`` atomically; yields a file object, or a temp path if ``as_path``.

    mode: "wb" (default) or "w" (text, with ``encoding``/``newline`` as in open()).
    as_path=True: yields the temporary file's path (same directory, same
    extension as ``path``) for a library that insists on opening a file by name;
    it must write to exactly that path.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: expected mode 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    if not base:
        raise ValueError(f"atomic_write: expected a file path, got directory {path!r}")
    _, ext = os.path.splitext(base)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{base}.", suffix=f".tmp{ext}")
    try:
        try:
            perms = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            perms = 0o644
        os.chmod(tmp, perms)
        if as_path:
            os.close(fd)
            fd = None
            yield tmp
            with open(tmp, "rb+") as f:   # the caller may have replaced the file
                os.fsync(f.fileno())
        else:
            kwargs = {} if mode == "wb" else {"encoding": encoding or "utf-8", "newline": newline}
            with io.open(fd, mode, closefd=True, **kwargs) as f:
                fd = None
                yield f
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def atomic_savez(path, /, **arrays):
    """``np.savez`` to exactly ``path`` (no ".npz" is appended), atomically."""
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def atomic_savez_compressed(path, /, **arrays):
    """``np.savez_compressed`` to exactly ``path``, atomically."""
    with atomic_write(path, "wb") as f:
        np.savez_compressed(f, **arrays)
