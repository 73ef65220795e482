"""One process of a test run under an MPI launcher (test-side only):

    mpiexec -n 2 python reference_tests/mpi_rank.py train ...    # = minipixel train ...

Environment, for the tests in test_distributed.py:
    MPI_TEST_STANDIN=N      device 'cuda' is the CuPy stand-in showing N GPUs
    MPI_TEST_FAIL=R:N:KIND  rank R's part of the batch raises at its N-th step
                            (KIND: memory -> MemoryError, an expected failure; bug -> TypeError)
    MPI_TEST_CWD=R:DIR      rank R works in DIR (a relative path it cannot see)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from minipixel import backend, parallel                       # noqa: E402
from minipixel.cli import main                                # noqa: E402
from minipixel.distributed import launched_rank               # noqa: E402


def rank_setting(name):
    """The value of `name` ("R:VALUE") if it is meant for this rank, else None."""
    rank, _, value = os.environ.get(name, "").partition(":")
    return value if rank.isdigit() and int(rank) == launched_rank() else None


def install_fault(spec):
    at, _, kind = spec.partition(":")
    real, calls = parallel.BatchWorkers.shares, []

    def shares(self, model, images, n):
        calls.append(1)
        if len(calls) == int(at):
            raise MemoryError("injected") if kind == "memory" else TypeError("injected bug")
        return real(self, model, images, n)
    parallel.BatchWorkers.shares = shares


if __name__ == "__main__":
    if os.environ.get("MPI_TEST_STANDIN"):
        import cupy_standin
        cupy_standin.DEVICES[0] = int(os.environ["MPI_TEST_STANDIN"])
        backend.use_cuda_module(cupy_standin.cupy)
    if rank_setting("MPI_TEST_FAIL"):
        install_fault(rank_setting("MPI_TEST_FAIL"))
    if rank_setting("MPI_TEST_CWD"):
        os.chdir(rank_setting("MPI_TEST_CWD"))
    sys.exit(main(sys.argv[1:]))
