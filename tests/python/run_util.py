"""Helpers of the tests that drive maestro's programs as real processes: checkpoint paths,
waiting for a checkpoint, log tails, starting a server and reading its port, a check counter."""
import os
import re
import socket
import subprocess
import time


def free_port():
    """A TCP port free on 127.0.0.1 now (for servers that take their port as a flag)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def start_listening(command, pattern, timeout=60):
    """Starts a server (maestro-data serve, maestro-coordinator) and reads its output until a
    line matches `pattern` (a regex whose groups are the ports it printed). Returns (process,
    match); its output stays readable on process.stdout. Kills it and raises when it exits or
    prints no such line within `timeout` seconds."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, seen = time.time() + timeout, ""
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
        m = re.search(pattern, line)
        if m:
            return proc, m
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{command[0]} did not start: {seen[-1000:]}")


def log_tail(out_dir, size=3000):
    with open(out_dir + ".log", "rb") as f:
        return f.read().decode(errors="replace")[-size:]


class Checker:
    def __init__(self):
        self.failures = 0

    def expect(self, ok, what):
        print(("ok    " if ok else "FAIL  ") + what, flush=True)
        self.failures += 0 if ok else 1
