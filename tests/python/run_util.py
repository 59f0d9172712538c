"""Helpers of the tests that drive maestro's programs as real processes: checkpoint paths,
waiting for a checkpoint, log tails, free ports, the live processes, starting a server and
reading its port, a check counter."""
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request


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


def live_processes():
    """(pid, command line with NULs as spaces, environ bytes) of every process that is not a
    zombie and can be read."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if state != "Z":
            out.append((int(pid), cmd, environ))
    return out


def prometheus_poll(folder, config, accept, timeout=60):
    """Runs a real Prometheus server (Debian's package) with the scrape configuration `config`
    (YAML text) on a free loopback port, and calls accept(get) every half second, where
    get("query?query=...") returns the "data" of that HTTP API call; returns accept's first
    value that is not None, or None after `timeout` seconds. The server is stopped either way.
    FileNotFoundError when prometheus is not installed (tools/bootstrap.sh installs it)."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise FileNotFoundError("prometheus is not installed: tools/bootstrap.sh")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "prometheus.yml"), "w") as f:
        f.write(config)
    port = free_port()
    proc = subprocess.Popen([binary, f"--config.file={folder}/prometheus.yml",
                             f"--storage.tsdb.path={folder}/data", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def get(path):
        url = f"http://127.0.0.1:{port}/api/v1/{path}"
        return json.load(urllib.request.urlopen(url, timeout=5))["data"]

    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                value = accept(get)
                if value is not None:
                    return value
            except (OSError, ValueError, KeyError, IndexError):
                pass
            time.sleep(0.5)
        return None
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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
