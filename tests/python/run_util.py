"""Helpers of the tests that drive maestro-train as a real process (resume_test.py,
classify_test.py): checkpoint paths, waiting for a checkpoint, log tails, a check counter."""
import os
import time


def checkpoint_path(out_dir, step):
    return os.path.join(out_dir, "checkpoints", f"step-{step:012d}")


def wait_for_checkpoint(proc, out_dir, step, timeout=300):
    """Waits until checkpoint `step` of `out_dir` is committed (its manifest exists)."""
    deadline = time.time() + timeout
    while not os.path.exists(os.path.join(checkpoint_path(out_dir, step), "manifest.json")):
        if proc.poll() is not None:
            raise RuntimeError(f"run exited with {proc.returncode} before checkpoint {step}")
        if time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"no checkpoint {step} after {timeout} s")
        time.sleep(0.02)


def log_tail(out_dir, size=3000):
    with open(out_dir + ".log", "rb") as f:
        return f.read().decode(errors="replace")[-size:]


class Checker:
    def __init__(self):
        self.failures = 0

    def expect(self, ok, what):
        print(("ok    " if ok else "FAIL  ") + what, flush=True)
        self.failures += 0 if ok else 1
