"""Files: atomic writes, strict JSON, and .npz archives read without trusting them.

Atomic writes (a reader sees the old file or the complete new one, never half):
the data goes to a temporary file in the *same directory* as the target (so the
final rename never crosses a file system), is flushed and fsynced, and is then
moved over the target with ``os.replace``. The directory is fsynced afterwards
where the OS allows it. If anything raises before the rename, even
KeyboardInterrupt, the temporary file is removed and the target is untouched; a
process killed outright (SIGKILL, power loss) can leave one behind, named
``.<target>.<random>.tmp<ext>``: ``remove_stale_temporaries`` clears them.

    with atomic_write("run/log.txt", "w") as f:          # a file object
        f.write("...")
    with atomic_write("run/img.png", as_path=True) as tmp:  # a path to fill
        some_library.save(tmp)
    atomic_savez("ckpt.npz", weights=w, step=np.array(3))
    write_json("run/metrics.json", {"nll": float("nan")})   # strict JSON: writes null

The new file gets the permission bits of the file it replaces, or 0o644 when
there was none (``mkstemp`` alone would leave 0o600).

Strict JSON: NaN and infinities are not JSON. ``dumps_json`` writes them as
null (and NumPy scalars and arrays as plain numbers and lists);
``loads_json`` refuses them instead of reading them back as floats.

Untrusted .npz files: ``inspect_npz`` reads only the zip directory and each
member's .npy header and checks, before anything is decompressed or allocated,
that every member is a plain array, that its header's shape and dtype account
for exactly the member's size, that no member is compressed out of proportion
(a zip bomb), and that the whole stays under a byte budget. ``load_npz`` then
reads the arrays (all, or the members named). Headers are parsed by this
module's own reader (``parse_npy_header``: a regular grammar of the three keys
NumPy writes), never by Python's parser or pickle, so a damaged header, a bad
CRC or a truncated member can only be an ``NpzError``; an array's bytes are read
in chunks as they come, so a member that claims more than it holds costs only
what it holds.
"""
import contextlib
import errno
import io
import json
import math
import os
import re
import stat
import tempfile
import zipfile
import zlib

import numpy as np

__all__ = ["atomic_write", "atomic_savez", "atomic_savez_compressed", "remove_stale_temporaries",
           "check_writable", "dumps_json", "loads_json", "write_json", "to_json_value",
           "NpzError", "inspect_npz", "load_npz", "MAX_NPZ_BYTES", "MAX_COMPRESSION_RATIO"]

MAX_NPZ_BYTES = 4 << 30          # default budget for all arrays of one .npz (4 GiB)
MAX_COMPRESSION_RATIO = 200      # uncompressed / compressed size of a member, above 1 MiB
MAX_NPZ_MEMBERS = 100_000


# ---- atomic writes --------------------------------------------------------------
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


def _temp_prefix(base):
    return f".{base}."


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
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_temp_prefix(base), suffix=f".tmp{ext}")
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


def remove_stale_temporaries(directory, names):
    """Delete temporary files that an atomic write of ``directory/<name>`` left behind
    when its process was killed. Call it only while no other process writes there
    (under the run directory's lock). Returns the removed paths."""
    removed = []
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for name in names:
        prefix = _temp_prefix(name)
        for entry in entries:
            if entry.startswith(prefix) and ".tmp" in entry[len(prefix):]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(directory, entry))
                    removed.append(os.path.join(directory, entry))
    return removed


def _existing_ancestor(folder):
    folder = os.path.abspath(folder)
    while not os.path.exists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def check_writable(path, *, directory=False, probe_bytes=4096):
    """Raise OSError (its strerror says why, in words) unless ``path`` can be written now.

    directory=False: ``path`` is a file to (over)write; its folder is created if
    missing. directory=True: ``path`` is a folder to write files into. The check
    creates, fills (``probe_bytes``, fsynced) and removes a temporary file there,
    so a read-only folder, a read-only file system or a full disk is found before
    any work is done.
    """
    path = os.fspath(path)
    folder = path if directory else os.path.dirname(os.path.abspath(path)) or "."
    if not directory and os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "it is a folder, expected a file name", path)
    ancestor = _existing_ancestor(folder)
    if not os.path.isdir(ancestor):
        raise NotADirectoryError(errno.ENOTDIR, f"{ancestor} is a file, expected a folder", path)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".minipixel-write-check.", suffix=".tmp")
    except OSError as e:
        raise type(e)(e.errno, e.strerror, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"\0" * probe_bytes)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise type(e)(e.errno, e.strerror, path) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)
    return path


# ---- strict JSON ----------------------------------------------------------------
def to_json_value(obj):
    """`obj` with non-finite floats as None and NumPy scalars/arrays as plain Python."""
    if isinstance(obj, dict):
        return {str(k): to_json_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json_value(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json_value(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def dumps_json(obj, **kwargs):
    """Strict JSON text of `obj` (see to_json_value); never NaN or Infinity."""
    return json.dumps(to_json_value(obj), allow_nan=False, **kwargs)


def _refuse_constant(name):
    raise ValueError(f"{name} is not valid JSON (non-finite numbers are written as null)")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number (it overflows a float)")
    return value


def loads_json(text):
    """Parse strict JSON: NaN, Infinity, -Infinity and numbers that overflow a float
    (1e999) are a ValueError."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def write_json(path, obj):
    """Write `obj` as indented strict JSON, atomically; returns the path."""
    text = dumps_json(obj, indent=2, sort_keys=True) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_write(path, "w") as f:
        f.write(text)
    return path


# ---- untrusted .npz -------------------------------------------------------------
class NpzError(ValueError):
    """An .npz archive that is damaged, holds something other than plain arrays, or is
    larger than the budget allows."""


# What reading a damaged zip can raise (the CRC check, a truncated or corrupt deflate stream).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, KeyError,
               NotImplementedError, RuntimeError, OSError, zlib.error)
NPY_MAGIC = b"\x93NUMPY"
MAX_NPY_HEADER = 1 << 16          # NumPy writes headers of a few hundred bytes
_NPY_ITEM = re.compile(r"\s*'(descr|fortran_order|shape)'\s*:\s*"
                       r"('[^'\\]*'|True|False|\((?:\s*\d+\s*,)*(?:\s*\d+\s*)?\))\s*(,|$)")


def _read_all(f, n, what):
    """Exactly n bytes of f (a zip member), in chunks; NpzError if it ends first."""
    data = bytearray()
    while len(data) < n:
        chunk = f.read(min(n - len(data), 1 << 20))
        if not chunk:
            raise NpzError(f"{what}: expected {n:,} bytes, the member ends after {len(data):,}")
        data += chunk
    return data


def parse_npy_header(text, what="header"):
    """(shape, fortran_order, dtype) from an .npy header's text ("{'descr': '<f4',
    'fortran_order': False, 'shape': (3, 4), }"): a plain dtype only, read by this regular
    grammar, never by Python's parser, so a damaged header can only be an NpzError."""
    body = text.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise NpzError(f"{what}: expected a {{'descr', 'fortran_order', 'shape'}} dictionary")
    body, pos, found = body[1:-1], 0, {}
    while body[pos:].strip():
        m = _NPY_ITEM.match(body, pos)
        if m is None or m.group(1) in found or (m.group(3) == "" and body[m.end():].strip()):
            raise NpzError(f"{what}: damaged at {body[pos:pos + 40]!r}")
        found[m.group(1)] = m.group(2)
        pos = m.end()
    if set(found) != {"descr", "fortran_order", "shape"}:
        raise NpzError(f"{what}: expected descr, fortran_order and shape, got {sorted(found)}")
    if found["descr"][0] != "'" or found["fortran_order"] not in ("True", "False") \
            or found["shape"][0] != "(":
        raise NpzError(f"{what}: descr must be a string, fortran_order True or False, shape a "
                       f"tuple")
    shape = tuple(int(d) for d in found["shape"][1:-1].split(",") if d.strip())
    try:
        dtype = np.dtype(found["descr"][1:-1])
    except (TypeError, ValueError, OverflowError):
        raise NpzError(f"{what}: unknown dtype {found['descr'][1:-1]!r}") from None
    if dtype.hasobject:
        raise NpzError(f"{what}: holds Python objects (pickled data), which are never loaded")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise NpzError(f"{what}: dtype {dtype} is not a plain array's")
    return shape, found["fortran_order"] == "True", dtype


def _member_header(f, name):
    """(shape, fortran_order, dtype, header length) of one .npy member, from its header."""
    what = f"member {name!r}"
    magic = _read_all(f, 8, what)
    if magic[:6] != NPY_MAGIC:
        raise NpzError(f"{what}: not an .npy array (magic {magic[:6]!r})")
    version = (magic[6], magic[7])
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise NpzError(f"{what}: .npy format version {version} is not supported")
    width = 2 if version == (1, 0) else 4
    length = int.from_bytes(_read_all(f, width, what), "little")
    if length > MAX_NPY_HEADER:
        raise NpzError(f"{what}: a header of {length:,} bytes, more than {MAX_NPY_HEADER:,}")
    raw = _read_all(f, length, what)
    try:
        text = raw.decode("utf-8" if version == (3, 0) else "latin1")
    except UnicodeDecodeError:
        raise NpzError(f"{what}: the header is not text") from None
    return (*parse_npy_header(text, what), 8 + width + length)


def _member_array(f, name, shape, fortran, dtype, nbytes):
    """The array after its header, read in chunks as it comes (memory follows the bytes
    really in the member), then checked to end where the header says (its CRC with it)."""
    data = _read_all(f, nbytes, f"member {name!r}")
    if f.read(1):
        raise NpzError(f"member {name!r}: more data than its header declares")
    if nbytes == 0 or dtype.itemsize == 0:
        return np.zeros(shape, dtype)
    flat = np.frombuffer(data, dtype=dtype)
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)


@contextlib.contextmanager
def npz_errors():
    """Reading a zip: any sign of damage becomes an NpzError; a missing or unreadable
    file stays the OS error it is."""
    try:
        yield
    except NpzError:
        raise
    except _ZIP_ERRORS as e:
        if isinstance(e, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise NpzError(f"not a readable .npz (corrupt or truncated?): "
                       f"{type(e).__name__}: {e}") from e


def inspect_npz(path, *, max_bytes=MAX_NPZ_BYTES, max_ratio=MAX_COMPRESSION_RATIO):
    """{array name: (shape, dtype)} of an .npz, read from its zip directory and .npy
    headers only; NpzError if a member is not a plain array, its header does not match
    its size, it is a zip bomb, or the arrays add up to more than ``max_bytes``."""
    with npz_errors(), zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        if len(infos) > MAX_NPZ_MEMBERS:
            raise NpzError(f"{len(infos)} members, more than {MAX_NPZ_MEMBERS}")
        found, total = {}, 0
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or info.is_dir():
                raise NpzError(f"member {name!r} is not an .npy array")
            if name[:-4] in found:
                raise NpzError(f"member {name!r} appears twice")
            if info.file_size > max_bytes:
                raise NpzError(f"member {name!r} is {info.file_size:,} bytes uncompressed, "
                               f"more than the {max_bytes:,} allowed")
            if (info.compress_type != zipfile.ZIP_STORED and info.file_size > (1 << 20)
                    and info.file_size > max_ratio * max(info.compress_size, 1)):
                raise NpzError(f"member {name!r} would expand {info.compress_size:,} bytes "
                               f"to {info.file_size:,} (a zip bomb?)")
            with zf.open(info) as f:
                shape, _, dtype, header = _member_header(f, name)
            nbytes = math.prod(shape) * dtype.itemsize
            if header + nbytes != info.file_size:
                raise NpzError(f"member {name!r}: its header declares {shape} {dtype} "
                               f"({nbytes:,} bytes) but the member holds "
                               f"{info.file_size - header:,} bytes")
            total += nbytes
            if total > max_bytes:
                raise NpzError(f"the arrays add up to more than the {max_bytes:,} bytes "
                               f"allowed")
            found[name[:-4]] = (shape, dtype)
        size = os.path.getsize(path)
        if total > max(16 << 20, max_ratio * size):       # many small bombs
            raise NpzError(f"{size:,} bytes would expand to {total:,} (a zip bomb?)")
        return found


def load_npz(path, *, max_bytes=MAX_NPZ_BYTES, max_ratio=MAX_COMPRESSION_RATIO, keys=None):
    """{name: array} of an .npz after ``inspect_npz`` passed (only the members named in
    `keys`, when given), each read by this module's own .npy reader: never unpickles, never
    runs Python's parser on a header, and any damage is an NpzError."""
    declared = inspect_npz(path, max_bytes=max_bytes, max_ratio=max_ratio)
    arrays = {}
    with npz_errors(), zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename[:-4]
            if keys is not None and name not in keys:
                continue
            with zf.open(info) as f:
                shape, fortran, dtype, _ = _member_header(f, info.filename)
                if (shape, dtype) != declared.get(name):
                    raise NpzError(f"member {info.filename!r} changed while it was read")
                nbytes = math.prod(shape) * dtype.itemsize
                arrays[name] = _member_array(f, info.filename, shape, fortran, dtype, nbytes)
    return arrays
