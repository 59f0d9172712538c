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


def ingest_fmnist(maestro, out, split="train", shards=2):
    """Debian's Fashion-MNIST split ingested into RocksDB shards under `out` (`maestro data
    ingest`); returns `out`."""
    subprocess.run([maestro, "data", "ingest", "--format", "idx", "--src", "/usr/share/datasets/fashion-mnist",
                    "--out", out, "--split", split, "--shards", str(shards)], check=True, capture_output=True,
                   timeout=300)
    return out


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


class CoordinatorCli:
    """The maestro CLI against the coordinator at `self.address` (`self.maestro`: the CLI)."""

    def cli(self, *words, timeout=120):
        return subprocess.run([self.maestro, *words, "--coordinator", self.address],
                              capture_output=True, text=True, timeout=timeout)

    def cli_json(self, *words):
        r = self.cli(*words, "--json")
        if r.returncode != 0:
            raise RuntimeError(f"maestro {' '.join(words)}: {r.stderr.strip()}")
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def trials(self, experiment):
        return self.cli_json("experiment", "describe", str(experiment))[0]["trials"]

    def events(self):
        return self.cli_json("event", "list")

    def wait(self, experiment, done, what, timeout=240):
        """The experiment's trials once done(trials) holds (a coordinator that does not answer,
        restarting say, is asked again); RuntimeError after `timeout` seconds."""
        deadline = time.time() + timeout
        trials = []
        while time.time() < deadline:
            try:
                trials = self.trials(experiment)
            except RuntimeError:
                trials = []
            if trials and done(trials):
                return trials
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}: "
                           + json.dumps([(t["id"], t["state"], t["attempt"]) for t in trials]))


class Checker:
    def __init__(self):
        self.failures = 0

    def expect(self, ok, what):
        print(("ok    " if ok else "FAIL  ") + what, flush=True)
        self.failures += 0 if ok else 1


class Credentials:
    """A cluster's credentials made by `maestro cluster init` in `folder` for a test: the servers
    take server_args(), the CLI and hand-run trainers read the environment this sets (the admin
    token, the CA, a data token), and each worker gets its own token from enroll()."""

    def __init__(self, maestro, folder, hosts=()):
        self.maestro = maestro
        self.dir = os.path.join(folder, "cluster")
        if os.path.exists(self.dir):
            shutil.rmtree(self.dir)
        command = [maestro, "cluster", "init", "--dir", self.dir]
        for host in hosts:
            command += ["--host", host]
        r = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"maestro cluster init: {r.stderr.strip()}")
        self.ca = os.path.join(self.dir, "ca.crt")
        self.admin_token_file = os.path.join(self.dir, "admin.token")
        self.admin_token = r.stdout.strip()
        self.data_token_file = os.path.join(self.dir, "test.data-token")
        r = subprocess.run([maestro, "cluster", "data-token", "--dir", self.dir, "--name", "test",
                            "--expires", "2h", "--out", self.data_token_file],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"maestro cluster data-token: {r.stderr.strip()}")
        os.environ["MAESTRO_CA"] = self.ca
        os.environ["MAESTRO_TOKEN_FILE"] = self.admin_token_file
        os.environ["MAESTRO_DATA_TOKEN_FILE"] = self.data_token_file

    def server_args(self):
        return ["--credentials", self.dir]

    def token(self, address, role, name, expires="1h"):
        """A new token file of `role` from the coordinator at `address` (as the admin)."""
        path = os.path.join(self.dir, f"{name}.token")
        r = subprocess.run([self.maestro, "token", "create", "--role", role, "--name", name,
                            "--expires", expires, "--out", path, "--coordinator", address],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"maestro token create: {r.stderr.strip()}")
        return path

    def enroll(self, address, worker, timeout=60):
        """The token file of worker id `worker`, enrolled with the coordinator at `address` (once
        per worker id: a restarted worker keeps its credential)."""
        path = os.path.join(self.dir, f"worker-{worker}.token")
        if os.path.exists(path):
            return path
        deadline = time.time() + timeout
        while True:
            r = subprocess.run([self.maestro, "worker", "enroll", worker, "--out", path,
                                "--coordinator", address], capture_output=True, text=True,
                               timeout=60)
            if r.returncode == 0:
                return path
            if time.time() > deadline:
                raise RuntimeError(f"maestro worker enroll {worker}: {r.stderr.strip()}")
            time.sleep(0.5)

    def worker_args(self, address, worker):
        return ["--token-file", self.enroll(address, worker)]
