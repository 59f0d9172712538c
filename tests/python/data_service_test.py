"""maestro-data serve with real processes: trainers streaming from it, clients killed with SIGKILL.

1. Fashion-MNIST's train split is ingested into shards and served by `maestro-data serve`
   (a real gRPC server on 127.0.0.1, /metrics over HTTP).
2. A client stream equals the local reader's (`maestro-data stream --local`), byte for byte.
3. maestro-train pretrains from the service: its losses equal those of the same run reading
   the shards from disk. A run killed with SIGKILL after a checkpoint and resumed (streaming
   again from the checkpoint's cursor) ends with losses and weights bitwise equal.
4. 100 clients killed with SIGKILL mid-stream: afterwards the server has no open streams and its
   thread count and memory are back at their baseline.
5. A real Prometheus server (Debian's) scrapes the service's /metrics: the target is up and a
   query returns the samples served.
6. Stopping the service under a running trainer ends it with the retryable status (4).
7. SIGTERM stops the server cleanly (exit 0).
Exit status 0 when everything holds.
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from run_util import (Checker, Credentials, checkpoint_path, prometheus_poll, start_listening,
                      wait_for_checkpoint)

FMNIST = "/usr/share/datasets/fashion-mnist"


CREDENTIALS = None  # the cluster's, made in main()


def start_server(data, root, *extra):
    proc, m = start_listening([data, "serve", "--dataset", f"fmnist={root}", "--listen", "127.0.0.1:0",
                               "--metrics-listen", "127.0.0.1:0", *CREDENTIALS.server_args(), *extra],
                              r"listening on port (\d+), metrics on port (\d+)")
    return proc, int(m.group(1)), int(m.group(2))


def metrics(port):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0])  # threads, KiB


def prometheus_scrapes(work_dir, metrics_port):
    """Runs Prometheus against the service's /metrics for up to 60 s; (ok, what) for Checker."""
    config = ("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: maestro-data\n"
              f"    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n")
    query = urllib.parse.quote('sum(maestro_data_samples_served_total{job="maestro-data"})')

    def served(get):
        targets = get("targets")["activeTargets"]
        result = get(f"query?query={query}")["result"]
        if targets and targets[0]["health"] == "up" and result and float(result[0]["value"][1]) > 0:
            return float(result[0]["value"][1])
        return None

    try:
        samples = prometheus_poll(os.path.join(work_dir, "prometheus"), config, served)
    except FileNotFoundError as e:
        return False, f"a Prometheus server scrapes /metrics ({e})"
    if samples is None:
        return False, "a real Prometheus server scrapes /metrics (no successful scrape in 60 s)"
    return True, f"a real Prometheus server scrapes /metrics: target up, {samples:.0f} samples served"


def losses(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r}


def model_bytes(out_dir, step):
    with open(os.path.join(checkpoint_path(out_dir, step), "model.safetensors"), "rb") as f:
        return f.read()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--maestro", required=True)
    parser.add_argument("--data", required=True, help="the maestro-data program")
    parser.add_argument("--train", required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    check = Checker()
    global CREDENTIALS
    CREDENTIALS = Credentials(args.maestro, args.dir)

    root = os.path.join(args.dir, "fmnist")
    proc = subprocess.run([args.maestro, "data", "ingest", "--format", "idx", "--src", FMNIST, "--out", root,
                           "--split", "train", "--shards", "4"], capture_output=True, text=True)
    if proc.returncode:
        print(proc.stderr[-2000:])
        return 1
    server, port, metrics_port = start_server(args.data, root)
    address = f"127.0.0.1:{port}"
    try:
        # 2. The service's stream equals the local reader's.
        spec = ["--split", "train", "--seed", "5", "--global-batch", "96", "--rank", "1", "--world-size", "3",
                "--epoch", "2", "--cursor", "1000", "--limit", "30000"]
        remote = subprocess.run([args.data, "stream", "--address", address, "--dataset", "fmnist", *spec],
                                capture_output=True, text=True)
        local = subprocess.run([args.data, "stream", "--local", root, *spec], capture_output=True, text=True)
        r = json.loads(remote.stdout) if remote.returncode == 0 else {}
        l = json.loads(local.stdout) if local.returncode == 0 else {}
        check.expect(r.get("records") == 30000 and r.get("sha256") == l.get("sha256"),
                     f"a streamed rank equals the local reader byte for byte ({r.get('records')} records, "
                     f"{r.get('mb_per_s', 0):.0f} MB/s)")

        # 3. Training from the service; exact resume after SIGKILL.
        common = ["--set", "optim.max_steps=40", "--set", "checkpoint.interval_steps=10",
                  "--set", "checkpoint.keep_last=0", "--set", "optim.batch_size=32", "--set", "run.threads=2",
                  "--set", "data.num_workers=2", "--set", "log.interval_steps=5", "--set", "run.seed=11",
                  "--set", "data.source=shards", "--set", f"data.path={root}"]
        service = ["--set", f"data.service={address}", "--set", "data.dataset=fmnist"]

        def train(out_dir, *extra):
            log = open(out_dir + ".log", "ab")
            return subprocess.Popen([args.train, "pretrain", "--set", f"run.output_dir={out_dir}", *common, *extra],
                                    stdout=log, stderr=subprocess.STDOUT)

        a, disk = os.path.join(args.dir, "a"), os.path.join(args.dir, "disk")
        ca = train(a, *service).wait(timeout=600)
        cd = train(disk).wait(timeout=600)
        check.expect(ca == 0 and cd == 0 and losses(a) == losses(disk) and len(losses(a)) == 40,
                     f"pretraining from the service equals reading the shards from disk (exits {ca}, {cd})")
        b = os.path.join(args.dir, "b")
        running = train(b, *service)
        wait_for_checkpoint(running, b, 20)
        delay = random.uniform(0.0, 1.0)
        time.sleep(delay)
        running.send_signal(signal.SIGKILL)
        running.wait()
        resumed = subprocess.run([args.train, "pretrain", "--set", f"run.output_dir={b}", *common, *service,
                                  "--resume", "auto"], capture_output=True, text=True, timeout=600)
        cb = resumed.returncode
        check.expect(cb == 0 and "resumed from" in resumed.stdout and losses(b) == losses(a)
                     and model_bytes(b, 40) == model_bytes(a, 40),
                     f"SIGKILL {delay:.2f} s after checkpoint 20, resumed from the service: losses and weights "
                     f"bitwise equal (exit {cb})")
        state = json.load(open(os.path.join(checkpoint_path(b, 40), "trainer_state.json")))
        check.expect(state["dataset"]["cursor"] == 40 * 32 and "decoder_version" in state
                     and state["dataset"]["content_hash"] == json.load(
                         open(os.path.join(root, "train", "manifest.json")))["content_hash"],
                     "checkpoints record the data cursor, the manifest hash and the decoder version")

        # 4. 100 clients killed with SIGKILL mid-stream.
        def killed_clients(waves):
            for wave in range(waves):
                clients = [subprocess.Popen([args.data, "stream", "--address", address, "--dataset", "fmnist",
                                             "--seed", str(wave * 10 + k), "--max-in-flight-bytes", str(1 << 20)],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                           for k in range(10)]
                time.sleep(rng.uniform(0.2, 0.4))
                for c in clients:
                    c.send_signal(signal.SIGKILL)
                for c in clients:
                    c.wait()
            deadline = time.time() + 20
            while metrics(metrics_port).get("maestro_data_clients", -1) != 0 and time.time() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)

        # Warm-up to the steady state: whole epochs fill RocksDB's block caches (8 MiB per shard);
        # a first burst of 50 killed clients sizes the thread pools and allocator arenas (RSS then
        # moves within a few MiB from burst to burst; it does not grow).
        rng = random.Random(1)
        for _ in range(2):
            subprocess.run([args.data, "stream", "--address", address, "--dataset", "fmnist", "--limit", "60000",
                            "--global-batch", "60000", "--hash=false"], capture_output=True)
        killed_clients(5)
        threads0, rss0 = proc_status(server.pid)
        killed_clients(10)
        m = metrics(metrics_port)
        threads1, rss1 = proc_status(server.pid)
        print(f"      server after 100 killed clients: threads {threads0} -> {threads1}, "
              f"RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB; streams opened "
              f"{m.get('maestro_data_streams_total', 0):.0f}")
        check.expect(m.get("maestro_data_clients") == 0, "no stream is left open after 100 killed clients")
        check.expect(threads1 <= threads0 + 2 and rss1 <= rss0 + 16 * 1024,
                     "the server's thread count and memory return to their baseline")
        check.expect(m.get('maestro_data_samples_served_total{dataset="fmnist",split="train"}', 0) > 100000
                     and "maestro_data_read_latency_seconds_count" in m,
                     "/metrics reports samples served and read latency")

        # 5. A real Prometheus server scrapes the service.
        check.expect(*prometheus_scrapes(args.dir, metrics_port))

        # 6. The service stops under a running trainer: a retryable failure.
        c = os.path.join(args.dir, "c")
        running = train(c, *service, "--set", "optim.max_steps=100000")
        wait_for_checkpoint(running, c, 10)
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        check.expect(code == 0, f"SIGTERM stops the server cleanly (exit {code})")
        try:
            tc = running.wait(timeout=120)
        except subprocess.TimeoutExpired:
            running.kill()
            tc = None
        check.expect(tc == 4, f"a trainer whose data service went away exits with the retryable status (exit {tc})")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()

    print(f"data service test: {'PASS' if check.failures == 0 else str(check.failures) + ' FAILURES'}")
    return 0 if check.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
