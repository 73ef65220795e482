"""Data-parallel training over MPI: one process per core or GPU, each taking a fixed
part of every batch, the gradients summed by one allreduce per step.

    mpiexec -n 4 minipixel train ...       # pip install "minipixel[mpi]"
    group = process_group()                # LocalGroup without a launcher, else MPIGroup

This module alone imports mpi4py, and only when a launcher started more than one
process (``launched_size() > 1``, read from the launcher's environment); without
one, ``process_group()`` is a ``LocalGroup`` of one process that does nothing.

The batch's mean loss is a weighted sum of the parts' mean losses, as for threads
(``minipixel.parallel``): rank r takes part r of ``split_sizes(n, K)`` (parts in rank
order) and contributes (n_r / n) L_r and its gradients; the sum over ranks is the
whole batch's loss and gradient up to float rounding:

    dL/dθ = sum_r (n_r / n) dL_r/dθ          (K ranks, n_r images in part r)

One step is one flat buffer per rank (every gradient, the loss, then one status
slot per rank) and one ``Iallreduce`` (MPI_SUM). The reduction order is fixed by
the MPI library for a given K and buffer size, so a given K repeats its run bit
for bit; two ranks add the two shares as ``--threads 2`` adds its two parts, so
K=2 gives the bits of ``--threads 2``. Every rank ends a step holding the same
sum; ``check_same`` verifies that once per epoch.

Stopping together: every collective carries each rank's status. A rank whose part
raised sends ERROR, a rank that got SIGINT/SIGTERM sends the signal's number; then
every rank raises the same thing (``GroupError`` naming the first failed rank with
its one-line message, or ``Interrupted``) before any rank applies the step. A
signal arriving while a rank waits in a collective is held and sent with the next
one. Waits poll with a deadline (``timeout``, seconds; 2 ms without sleeping, then
sleeps of up to 1 ms, since a collective only moves on while its ranks poll): a peer
that never arrives (stopped, lost) gives ``PeerLost`` naming it instead of a hang
(rank 0 names the ranks whose arrival notes did not come); a launcher such as MPICH's
``mpiexec`` also ends the whole group as soon as one process dies.

GPUs: each rank uses device local_rank mod the visible devices. Gradients travel
through host memory unless the MPI library says it is CUDA-aware
(``MPIX_Query_cuda_support`` / ``MPIX_GPU_query_support``, or
``MINIPIXEL_MPI_CUDA_AWARE=1|0`` to say so).
"""
import ctypes
import os
import signal
import time
from contextlib import contextmanager

import numpy as np

from .backend import cuda_module, get_array_module
from .interrupts import SIGNALS, Interrupted, deferred_interrupts
from .parallel import add_in_order, split_sizes

__all__ = ["process_group", "launched_size", "launched_rank", "LocalGroup", "MPIGroup",
           "GroupError", "PeerLost", "DEFAULT_TIMEOUT", "leave"]

# What launchers put in each process's environment (MPICH/Intel MPI, Open MPI, MVAPICH).
SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
DEFAULT_TIMEOUT = 600.0      # seconds a rank waits for its peers in one collective
ERROR = -1                   # status slot: this rank's part raised
ARRIVE_TAG = 7311            # arrival notes to rank 0 (which rank stalled)
SPIN_S = 0.002               # a wait polls without sleeping this long, then sleeps between polls


class GroupError(RuntimeError):
    """Another rank (or this one) failed; every rank stops. `report`: this rank should
    print it (rank 0 prints the group's errors; others only what rank 0 cannot)."""

    def __init__(self, message, report=False):
        super().__init__(message)
        self.report = report


class PeerLost(GroupError):
    """A collective did not complete in time: a peer stalled or is gone."""


def _env_int(names, default):
    for name in names:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return default


def launched_size():
    """The number of processes the launcher started (1 without one); no MPI import."""
    return _env_int(SIZE_VARS, 1)


def launched_rank():
    """This process's rank as the launcher's environment says (0 without one)."""
    return _env_int(RANK_VARS, 0)


def process_group(timeout=DEFAULT_TIMEOUT, describe=None):
    """An MPIGroup when a launcher started several processes, else a LocalGroup.
    GroupError (one line) if it did but mpi4py is missing. describe(error): the one line
    that other ranks are told of a rank's error (default: its message)."""
    if launched_size() <= 1:
        return LocalGroup()
    try:
        from mpi4py import MPI
    except ImportError:
        raise GroupError(f"started by an MPI launcher with {launched_size()} processes, but "
                         f"mpi4py is not installed: pip install 'minipixel[mpi]'",
                         report=launched_rank() == 0) from None
    return MPIGroup(MPI, timeout, describe)


def _one_line(error):
    text = " ".join(str(error).split())
    return text if text and not isinstance(error, MemoryError) else \
        f"{type(error).__name__}{': ' + text if text else ''}"


class LocalGroup:
    """One process: every collective is the identity."""
    rank, size, local_rank, is_root, cuda_aware = 0, 1, 0, True, False

    def part(self, n):
        """This rank's slice of an n-item batch (parts of split_sizes(n, size), rank order)."""
        sizes = split_sizes(n, self.size) + [0] * self.size
        start = sum(sizes[:self.rank])
        return slice(start, start + sizes[self.rank])

    def agree(self, fn):
        return fn()

    def broadcast_bytes(self, data):
        return data

    def broadcast_arrays(self, arrays):
        return arrays

    def check_same(self, arrays, what="weights"):
        pass

    def gather(self, value):
        return [value]

    def reduce(self, compute, length, like):
        return compute()

    def reports(self, error):
        return True

    @contextmanager
    def interrupts(self):
        from .interrupts import interrupts
        with interrupts():
            yield

    def loss_and_backward(self, model, images, workers):
        """This rank's part of `images` forward and backward; the batch's summed loss, and
        the batch's gradients in every ``.grad``."""
        return workers.loss_and_backward(model, images)

    def cuda_device(self):
        """Pick this rank's GPU (local rank modulo the visible devices); its number.
        One process keeps the current device."""
        return int(cuda_module().cuda.runtime.getDevice())


class MPIGroup(LocalGroup):
    """The processes of MPI_COMM_WORLD (see the module docstring)."""

    def __init__(self, MPI, timeout=DEFAULT_TIMEOUT, describe=None):
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        self.describe = describe or _one_line
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.local_rank = self.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()
        self.is_root, self.timeout = self.rank == 0, float(timeout)
        self.cuda_aware = _cuda_aware()
        self._pending = None          # a signal that came while waiting: sent next time
        self._in_part = False         # inside this rank's own work (a signal raises there)
        self._seq = 0                 # collectives so far (the arrival notes' count)
        self._arrived = [0] * self.size
        self._notes = []
        self.reduce_s = 0.0           # seconds spent in reduce()'s collectives, in all
        global _group
        _group = self

    # ---- waiting with a deadline ---------------------------------------------------
    def _arrive(self):
        """Tell rank 0 this rank reached collective number self._seq (tiny, nonblocking)."""
        self._seq += 1
        if not self.is_root:
            note = np.array([self._seq], dtype=np.int64)
            self._notes = [(r, b) for r, b in self._notes if not r.Test()]
            self._notes.append((self.comm.Isend(note, dest=0, tag=ARRIVE_TAG), note))

    def _read_notes(self):
        status, note = self.MPI.Status(), np.zeros(1, dtype=np.int64)
        while self.comm.Iprobe(source=self.MPI.ANY_SOURCE, tag=ARRIVE_TAG, status=status):
            self.comm.Recv(note, source=status.Get_source(), tag=ARRIVE_TAG)
            self._arrived[status.Get_source()] = int(note[0])

    def _wait(self, request, what):
        """Wait for `request`, holding back signals (sent with the next collective); PeerLost
        after the deadline (non-root ranks wait 10 s longer, so rank 0 names the rank)."""
        limit = self.timeout + (0 if self.is_root else 10.0)
        start = time.monotonic()
        spin, delay = start + SPIN_S, 5e-5
        with deferred_interrupts(deliver=False) as received:
            while not request.Test():      # each Test also moves the collective on
                now = time.monotonic()
                if now > start + limit:
                    raise self._lost(what, limit)
                if now > spin:             # a late peer: stop spinning, poll ever slower
                    time.sleep(delay)
                    delay = min(2 * delay, 1e-3)
        if received and self._pending is None:
            self._pending = received[0]
        if self.is_root:
            self._read_notes()

    def _lost(self, what, limit):
        if not self.is_root:
            return PeerLost(f"rank {self.rank} of {self.size}: no answer from the group in "
                            f"{what} after {limit:.0f} s, and rank 0 named no stalled rank: "
                            f"rank 0 is stalled or gone; stopping", report=True)
        self._read_notes()
        late = [r for r in range(1, self.size) if self._arrived[r] < self._seq]
        if late:               # their notes did not come: they never reached the collective
            who = ", ".join(map(str, late))
            who = f"rank{'s' if len(late) > 1 else ''} {who}"
        else:                  # all arrived, and one stalled inside it
            who = "rank 1" if self.size == 2 else f"one of ranks 1-{self.size - 1}"
        return PeerLost(f"{who} of {self.size} did not complete {what} within {limit:.0f} s "
                        f"(stalled or gone); stopping every rank", report=True)

    # ---- collectives ----------------------------------------------------------------
    def _allreduce(self, buf, what):
        self._arrive()
        xp = get_array_module(buf)
        staged = xp is not np and not self.cuda_aware
        send = xp.asnumpy(buf) if staged else buf
        if xp is not np and not staged:
            xp.cuda.get_current_stream().synchronize()
        out = np.empty_like(send) if xp is np or staged else xp.empty_like(send)
        self._wait(self.comm.Iallreduce(send, out, op=self.MPI.SUM), what)
        return xp.asarray(out) if staged else out

    def gather(self, value):
        """[value of rank 0, value of rank 1, ...] of an int or float on every rank."""
        mine = np.array([value], dtype=np.float64)
        out = np.zeros(self.size, dtype=np.float64)
        self._arrive()
        self._wait(self.comm.Iallgather(mine, out), "a gather")
        return [v.item() for v in out]

    def _gather_text(self, text):
        data = np.frombuffer(text.encode(), dtype=np.uint8)
        sizes = [int(s) for s in self.gather(len(data))]
        out = np.zeros(sum(sizes), dtype=np.uint8)
        self._arrive()
        self._wait(self.comm.Iallgatherv(data, [out, sizes]), "a gather")
        starts = np.cumsum([0] + sizes)
        return [bytes(out[a:b]).decode() for a, b in zip(starts[:-1], starts[1:])]

    def broadcast_bytes(self, data):
        """Rank 0's bytes on every rank (the others pass anything)."""
        size = int(self._bcast(np.array([len(data) if self.is_root else 0], np.int64))[0])
        buf = np.frombuffer(data, dtype=np.uint8).copy() if self.is_root else \
            np.zeros(size, dtype=np.uint8)
        return bytes(self._bcast(buf))

    def _bcast(self, buf):
        self._arrive()
        self._wait(self.comm.Ibcast(buf, root=0), "a broadcast")
        return buf

    def broadcast_arrays(self, arrays):
        """Rank 0's values written into `arrays` (same shapes on every rank: NumPy or CuPy),
        in one broadcast per dtype."""
        arrays = list(arrays)
        for dtype in sorted({a.dtype.str for a in arrays}):
            group = [a for a in arrays if a.dtype.str == dtype]
            xp = get_array_module(*group)
            flat = np.ascontiguousarray(np.concatenate([_host(a).ravel() for a in group]))
            self._bcast(flat)
            start = 0
            for a in group:
                a[...] = xp.asarray(flat[start:start + a.size].reshape(a.shape))
                start += a.size
        return arrays

    def check_same(self, arrays, what="weights"):
        """GroupError unless every rank holds the same bits in `arrays` (a checksum each)."""
        import zlib
        crc = 0
        for a in arrays:
            crc = zlib.crc32(np.ascontiguousarray(_host(a)).tobytes(), crc)
        crcs = self.gather(crc)
        odd = [r for r, c in enumerate(crcs) if c != crcs[0]]
        if odd:
            raise GroupError(f"the {what} of rank {odd[0]} differ from rank 0's (the MPI "
                             f"library did not give every rank the same sum); stopping")

    def reduce(self, compute, length, like):
        """The sum over ranks of compute() (a flat array of `length`, NumPy or CuPy like
        `like`). Every rank raises together if any rank's compute() raised (GroupError
        naming it) or got a signal (Interrupted), before anyone uses the sum."""
        xp = get_array_module(like)
        buf = xp.zeros(length + self.size, dtype=like.dtype)
        code, error = 0, None
        try:
            self._in_part = True
            if self._pending is not None:
                raise Interrupted(self._pending)
            buf[:length] = compute()
        except KeyboardInterrupt as e:
            code = getattr(e, "signum", signal.SIGINT)
        except Exception as e:     # every rank hears of it, then raises it as a GroupError
            code, error = ERROR, e
        finally:
            self._in_part = False
        buf[length + self.rank] = code
        start = time.perf_counter()
        total = self._allreduce(buf, "a step")
        self.reduce_s += time.perf_counter() - start
        self._raise_for([int(c) for c in _host(total[length:])], error)
        return total[:length]

    def _raise_for(self, codes, error):
        failed = [r for r, c in enumerate(codes) if c == ERROR]
        if failed:
            texts = self._gather_text(self.describe(error) if error is not None else "")
            raise GroupError(f"rank {failed[0]} of {self.size}: {texts[failed[0]]}") from error
        signals = [c for c in codes if c > 0]
        if signals:
            self._pending = None
            raise Interrupted(signals[0])

    def agree(self, fn):
        """fn() on every rank; if it raised on any, every rank raises GroupError with the
        first failed rank's one-line message (the rank named unless all failed alike)."""
        error = None
        try:
            result, text = fn(), ""
        except Exception as e:
            result, text, error = None, self.describe(e) or type(e).__name__, e
        texts = self._gather_text(text)
        failed = [r for r, t in enumerate(texts) if t]
        if failed:
            r = failed[0]
            same = len(failed) == self.size and len(set(texts)) == 1
            raise GroupError(texts[r] if same else f"rank {r} of {self.size}: {texts[r]}") \
                from error
        return result

    def reports(self, error):
        return self.is_root or getattr(error, "report", False)

    @contextmanager
    def interrupts(self):
        """SIGINT/SIGTERM raise Interrupted only inside this rank's own work (reduce's
        compute); anywhere else they wait for the next collective, so that every rank
        stops at the same step."""
        def handler(signum, frame):
            if self._in_part:
                self._in_part = False
                raise Interrupted(signum)
            if self._pending is None:
                self._pending = signum
        old = {s: signal.signal(s, handler) for s in SIGNALS}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def loss_and_backward(self, model, images, workers):
        params = model.parameters()
        n, sizes = len(images), [p.data.size for p in params]
        part = images[self.part(n)]

        def compute():
            xp, dtype = params[0].xp, params[0].dtype
            if len(part) == 0:
                return xp.zeros(sum(sizes) + 1, dtype=dtype)
            loss, grads = add_in_order(workers.shares(model, part, n))
            flat = [xp.zeros(s, dtype=dtype) if g is None else g.ravel()
                    for g, s in zip(grads, sizes)]
            return xp.concatenate(flat + [loss.reshape(1)])
        total = self.reduce(compute, sum(sizes) + 1, params[0].data)
        start = 0
        for p, s in zip(params, sizes):
            g = total[start:start + s].reshape(p.shape)
            p.grad = g.copy() if p.grad is None else p.grad + g
            start += s
        return total[-1]

    def cuda_device(self):
        xp = cuda_module()
        device = self.local_rank % max(1, int(xp.cuda.runtime.getDeviceCount()))
        xp.cuda.Device(device).use()
        return int(xp.cuda.runtime.getDevice())

    def barrier(self, limit):
        """Wait until every rank got here, or `limit` seconds (no error either way)."""
        request, deadline = self.comm.Ibarrier(), time.monotonic() + limit
        while not request.Test() and time.monotonic() < deadline:
            time.sleep(1e-3)


_group = None                # the MPIGroup of this process, once made


def leave(code):
    """The exit status `code`; under a launcher a failed process leaves at once, without
    MPI_Finalize (which would wait for peers that are stuck or gone), after waiting up to
    5 s for the other ranks to get here too (so rank 0 has printed the group's error
    before the launcher, seeing one process end, ends the rest)."""
    if launched_size() <= 1 or code == 0:
        return code
    if _group is not None:
        _group.barrier(5.0)
    import sys
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _host(a):
    return cuda_module().asnumpy(a) if get_array_module(a) is not np else np.asarray(a)


def _cuda_aware():
    """Whether the MPI library takes device buffers: MINIPIXEL_MPI_CUDA_AWARE if set, else
    what the library's own query says (Open MPI, MPICH 4+); False when it cannot tell."""
    said = os.environ.get("MINIPIXEL_MPI_CUDA_AWARE", "").strip()
    if said in ("0", "1"):
        return said == "1"
    try:
        lib = ctypes.CDLL(None)
    except OSError:
        return False
    query = getattr(lib, "MPIX_Query_cuda_support", None)
    if query is not None:
        return bool(query())
    query = getattr(lib, "MPIX_GPU_query_support", None)
    if query is not None:
        supported = ctypes.c_int(0)
        return query(0, ctypes.byref(supported)) == 0 and bool(supported.value)
    return False
