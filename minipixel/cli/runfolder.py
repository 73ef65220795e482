"""What `minipixel train` finds in its output folder before it starts.

A new run never starts over another one: if the folder holds the files of a run
(finished, stopped or interrupted), the command is refused in one line that names
the ways on: ``--resume`` its checkpoint, a new ``--out``, or ``--overwrite``, which
removes every file of the old run (``RUN_FILES`` and their stale temporaries) just
before the new run writes its first checkpoint (so a new run that fails its checks or
diverges before then leaves the old one as it was); other files are left alone.
A ``--resume`` that has nothing left to train says so and writes nothing.
"""
import os

from ..io import loads_json, remove_stale_temporaries

# Every file of a run: what `train` writes, and `complete`'s default picture beside them.
RUN_FILES = ("checkpoint.npz", "metrics.json", "samples.png", "curves.png", "completions.png")


def run_files(folder):
    """The names of RUN_FILES present in `folder`, in that order."""
    return [name for name in RUN_FILES if os.path.lexists(os.path.join(folder, name))]


def same_folder(a, b):
    return os.path.realpath(a or os.curdir) == os.path.realpath(b or os.curdir)


def refusal(out, resume=None, overwrite=False):
    """The one-line reason a run into `out` may not start, or None.

    resume: the checkpoint being continued (its own folder is its run, not another)."""
    own = resume is not None and same_folder(os.path.dirname(resume), out)
    if overwrite and own:
        return (f"--overwrite would remove {resume}, the checkpoint --resume continues; "
                f"drop --overwrite, or --resume into a new --out")
    found = run_files(out)
    if own or overwrite or not found:
        return None
    checkpoint = os.path.join(out, "checkpoint.npz")
    ways = (f"continue it with --resume {checkpoint}, " if "checkpoint.npz" in found else "")
    return (f"{out} already holds a run ({_state(out)}: {', '.join(found)}); {ways}"
            f"choose a new --out, or pass --overwrite to remove those files first")


def _state(out):
    """'finished, 5 of 5 epochs' from the folder's metrics.json; 'a run' if unreadable."""
    try:
        with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
            m = loads_json(f.read())
        return f"{m['status']}, {int(m['epoch'])} of {int(m['settings']['epochs'])} epochs"
    except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError):
        return "its state unknown"


def remove_run(out):
    """Remove every file of the run in `out` (under its lock); the names removed."""
    found = run_files(out)
    for name in found:
        os.remove(os.path.join(out, name))
    remove_stale_temporaries(out, RUN_FILES)
    return found


def nothing_to_train(trainer, resume, epochs_flag):
    """The line a --resume prints when its run has nothing left to train, else None."""
    s, epochs, cap = trainer.state, trainer.settings["epochs"], trainer.max_steps
    done = s["epoch"]
    if done >= epochs:
        last = s["history"][-1] if s["history"] else {}
        nll = (f", test NLL {last['test_nll_nats']:.2f} nats/image"
               if last.get("test_nll_nats") is not None else "")
        n = f"{done} epoch{'s' if done != 1 else ''}"
        what = (f"the run finished its {n}" if epochs_flag in (None, done) else
                f"the run has trained {n} and --epochs {epochs_flag} asks for no more")
        return (f"{resume}: {what} ({s['global_step']} steps{nll}); nothing trained, nothing "
                f"written. To train longer: minipixel train --resume {resume} --epochs M, "
                f"with M > {done} (e.g. --epochs {2 * max(done, 1)})")
    if cap is not None and s["global_step"] >= cap:
        return (f"{resume}: the run is at step {s['global_step']} and --max-steps {cap} stops "
                f"it there; nothing trained, nothing written. To go on: a larger --max-steps, "
                f"or none")
    return None
