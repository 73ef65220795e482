"""One training run per output folder: an exclusive lock on ``<folder>/.minipixel.lock``.

    with RunLock("runs/main"):         # RunLocked if another process trains there
        ...train, write checkpoint.npz and metrics.json...

The lock is ``fcntl.flock`` on the lock file, so the operating system drops it
when its process ends in any way, SIGKILL included: a crashed run never leaves
a stale lock. The file also records the holder's pid, for the message another
run prints. Taking the lock never waits. On release the file is removed; a
process that opened it just before is not fooled, because after locking it
checks that the path still names the file it locked (and retries if not).
Where ``fcntl`` does not exist (Windows) the lock is a no-op.
"""
import contextlib
import errno
import os

try:
    import fcntl
except ImportError:         # pragma: no cover - not on POSIX
    fcntl = None

__all__ = ["RunLock", "RunLocked", "LOCK_NAME"]

LOCK_NAME = ".minipixel.lock"


class RunLocked(RuntimeError):
    """Another process holds the folder's lock."""


class RunLock:
    def __init__(self, folder):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_NAME)
        self._fd = None

    def acquire(self):
        if fcntl is None or self._fd is not None:
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read_pid(fd)
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    who = f" (pid {holder})" if holder else ""
                    raise RunLocked(f"another minipixel run{who} is writing to {self.folder}; "
                                    f"wait for it, or choose another --out") from None
                raise
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)        # the holder removed the file as we opened it: try again
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self):
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)      # closing drops the flock
        self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_pid(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 32).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None
