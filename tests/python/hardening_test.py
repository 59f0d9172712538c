"""Hostile input, each a clear error in bounded time and memory (Hardening I).

Every case runs a real program (maestro-train, maestro, maestro-coordinator) on one hostile
input and checks: its exit status (2 for a config the user must change, 1 for a command-line
tool's bad input file; never 4, which means "retry"), that its message names the problem, that
it ended within 5 s, and that its peak resident memory (the child's ru_maxrss, from wait4)
stayed under 1 GB. Exit status 0 when every case holds.
"""
import argparse
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib

from run_util import Checker, start_listening

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FMNIST = "/usr/share/datasets/fashion-mnist"
TIME_LIMIT_S = 5.0
RSS_LIMIT_KB = 1 << 20  # 1 GB


def run_bounded(command, timeout=TIME_LIMIT_S, env=None):
    """(exit status, output, seconds, peak RSS in KB); the exit status is None when it ran past
    `timeout` (it is then killed)."""
    start = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    output = []
    reader = threading.Thread(target=lambda: output.append(proc.stdout.read()), daemon=True)
    reader.start()
    status = None
    while True:
        pid, raw, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid != 0:
            status = os.waitstatus_to_exitcode(raw)
            break
        if time.monotonic() - start > timeout:
            proc.kill()
            _, raw, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.01)
    elapsed = time.monotonic() - start
    proc.returncode = status  # reaped here
    reader.join(timeout=5)
    text = output[0].decode(errors="replace") if output else ""
    return status, text, elapsed, usage.ru_maxrss


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    for flag in ("--train", "--maestro", "--coordinator", "--dir"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    check = Checker()

    def case(what, command, want_status, want_text):
        status, text, seconds, rss_kb = run_bounded(command)
        last = text.strip().splitlines()[-1] if text.strip() else ""
        check.expect(status == want_status and want_text in text and seconds <= TIME_LIMIT_S
                     and rss_kb < RSS_LIMIT_KB,
                     f"{what}: exit {status} in {seconds:.2f} s, peak {rss_kb // 1024} MB: {last[:150]}")

    def write(name, text):
        path = os.path.join(args.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    train = [args.train, "pretrain", "--print-config"]
    huge = "9" * 50000
    case("a 50,000-digit number in a YAML config", train + ["--config", write("digits.yaml", f"optim:\n  epochs: {huge}\n")],
         2, "longer than 64 characters")
    case("... in --set", train + ["--set", f"optim.epochs={huge}"], 2, "longer than 64 characters")
    experiment = ("name: x\nkind: pretrain\ndataset: fmnist\nconfig: {}\nhyperparameters:\n"
                  "  {key}: {value}\n")
    case("... in an experiment file (maestro experiment preview)",
         [args.maestro, "experiment", "preview",
          write("digits-experiment.yaml", experiment.replace("{key}", "optim.epochs").replace("{value}", huge))],
         1, "longer than 64 characters")
    case("--set data.num_workers=1000000", train + ["--set", "data.num_workers=1000000"], 2,
         "data.num_workers': 1000000 is outside [1, 64]")
    case("... as a hyperparameter (the coordinator's schema is the trainer's)",
         [args.maestro, "experiment", "preview",
          write("workers.yaml", experiment.replace("{key}", "data.num_workers").replace("{value}", "1000000"))],
         1, "1000000 is outside [1, 64]")
    laughs = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        laughs.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    bomb = "\n".join(laughs) + "\n"
    case("a YAML alias bomb (10^10 values)", train + ["--config", write("bomb.yaml", bomb)], 2,
         "expands to more than 200000 values")
    case("... in an experiment file", [args.maestro, "experiment", "preview", write("bomb-experiment.yaml", bomb)],
         1, "expands to more than 200000 values")
    case("a double hyperparameter with count 1e8",
         [args.maestro, "experiment", "preview",
          write("count.yaml", experiment.replace("{key}", "optim.blr").replace(
              "{value}", "{type: double, minval: 1.0e-4, maxval: 1.0e-3, count: 100000000}"))],
         1, "the grid would have more than 100000 cells")
    case("a random searcher with max_trials 1e9",
         [args.maestro, "experiment", "preview",
          write("random.yaml", "name: x\nkind: pretrain\ndataset: fmnist\nconfig: {}\n"
                "hyperparameters:\n  optim.blr: {type: double, minval: 1.0e-4, maxval: 1.0e-3}\n"
                "searcher: {name: random, max_trials: 1000000000}\n")],
         1, "searcher.max_trials: 1000000000 is above 100000")
    case("model.img_size=1000000", train + ["--set", "model.img_size=1000000"], 2, "img_size 1000000 is above 4096")
    case("model.img_size=1e6", train + ["--set", "model.img_size=1e6"], 2, "img_size")
    case("run.threads=-4", train + ["--set", "run.threads=-4"], 2, "run.threads': -4 is outside [0, 1024]")
    case("a batch whose activations no machine holds",
         train + ["--set", "model.preset=mae_vit_huge_patch14", "--set", "data.mean=[0.5, 0.5, 0.5]",
                  "--set", "data.std=[0.5, 0.5, 0.5]", "--set", "optim.batch_size=100000"],
         2, "GiB of activations per rank")

    # A gzip IDX file that inflates to 4 GB behind a header promising 47 MB.
    bomb_dir = os.path.join(args.dir, "idx-bomb")
    os.makedirs(bomb_dir)
    header = bytes([0, 0, 8, 3]) + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    zeros = bytes(1 << 20)
    with open(os.path.join(bomb_dir, "train-images-idx3-ubyte.gz"), "wb") as f:
        f.write(compressor.compress(header))
        for _ in range(4096):
            f.write(compressor.compress(zeros))
        f.write(compressor.flush())
    size_mb = os.path.getsize(os.path.join(bomb_dir, "train-images-idx3-ubyte.gz")) / 1e6
    case(f"a {size_mb:.1f} MB gzip IDX file inflating to 4 GB",
         [args.maestro, "data", "ingest", "--format", "idx", "--src", bomb_dir, "--out",
          os.path.join(args.dir, "bomb-out")], 1, "IDX header promises 47040000 bytes of data, the file has more")

    # Labels beyond the declared classes.
    labels_dir = os.path.join(args.dir, "idx-labels")
    os.makedirs(labels_dir)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(os.path.join(FMNIST, name + ".gz")) as src, open(os.path.join(labels_dir, name), "wb") as dst:
            dst.write(src.read())
    with open(os.path.join(labels_dir, "t10k-labels-idx1-ubyte"), "r+b") as f:
        f.seek(8 + 123)
        f.write(bytes([37]))
    case("an IDX label beyond --num-classes",
         [args.maestro, "data", "ingest", "--format", "idx", "--src", labels_dir, "--split", "test",
          "--out", os.path.join(args.dir, "labels-out")], 1, "label 37 of image 123 of split 'test' is not below the 10 classes")

    # A FIFO among the images.
    folder = os.path.join(args.dir, "photos", "train", "cats")
    os.makedirs(folder)
    os.mkfifo(os.path.join(folder, "trap.jpg"))
    case("a FIFO inside an image folder",
         [args.maestro, "data", "ingest", "--format", "imagefolder", "--src", os.path.join(args.dir, "photos"),
          "--split", "train", "--out", os.path.join(args.dir, "photos-out")], 1, "trap.jpg is a FIFO")

    fifo_idx = os.path.join(args.dir, "idx-fifo")
    os.makedirs(fifo_idx)
    os.mkfifo(os.path.join(fifo_idx, "train-images-idx3-ubyte"))
    case("a FIFO in place of an IDX file",
         [args.maestro, "data", "ingest", "--format", "idx", "--src", fifo_idx, "--out",
          os.path.join(args.dir, "fifo-out")], 1, "train-images-idx3-ubyte is a FIFO")

    # --resume auto when the only checkpoint fails its sha256.
    out = os.path.join(args.dir, "resume")
    r = subprocess.run([args.train, "pretrain", "--config", os.path.join(ROOT, "configs", "fmnist_pretrain.yaml"),
                        "--set", f"run.output_dir={out}", "--set", "optim.max_steps=2", "--set", "optim.batch_size=16",
                        "--set", "checkpoint.interval_steps=1", "--set", "run.threads=1", "--set", "data.num_workers=1",
                        "--set", "checkpoint.keep_last=1"], capture_output=True, text=True, timeout=300)
    checkpoints = os.path.join(out, "checkpoints")
    names = sorted(os.listdir(checkpoints)) if os.path.isdir(checkpoints) else []
    check.expect(r.returncode == 0 and len(names) == 1, f"a run left one checkpoint: {names} {r.stderr[-200:]}")
    if names:
        victim = os.path.join(checkpoints, names[0], "model.safetensors")
        if not os.path.exists(victim):
            victim = os.path.join(checkpoints, names[0], sorted(f for f in os.listdir(os.path.join(checkpoints, names[0]))
                                                                if f != "manifest.json")[0])
        with open(victim, "r+b") as f:
            f.seek(os.path.getsize(victim) // 2)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0xFF]))
        case("--resume auto when the only checkpoint fails its sha256",
             [args.train, "pretrain", "--config", os.path.join(ROOT, "configs", "fmnist_pretrain.yaml"),
              "--set", f"run.output_dir={out}", "--set", "optim.max_steps=4", "--set", "optim.batch_size=16",
              "--set", "run.threads=1", "--set", "data.num_workers=1", "--resume", "auto"],
             2, f"{names[0]}: ")

    # A grid of 1e9 cells sent to a running coordinator: refused at once, heartbeats unhindered.
    coordinator, m = start_listening(
        [args.coordinator, "--db", os.path.join(args.dir, "db"), "--runs", os.path.join(args.dir, "runs"),
         "--listen", "127.0.0.1:0", "--insecure", "--data-root", args.dir], r"listening on port (\d+)")
    threading.Thread(target=coordinator.stdout.read, daemon=True).start()
    address = f"127.0.0.1:{m.group(1)}"
    env = dict(os.environ, MAESTRO_CA="", MAESTRO_TOKEN_FILE="")
    try:
        shards = os.path.join(args.dir, "shards")
        os.makedirs(os.path.join(shards, "train"))
        with open(os.path.join(shards, "train", "manifest.json"), "w") as f:
            json.dump({"content_hash": "a" * 64, "count": 10}, f)
        r = subprocess.run([args.maestro, "dataset", "register", "fmnist", "--path", shards,
                            "--coordinator", address], capture_output=True, text=True, timeout=60, env=env)
        grid = write("grid.yaml", experiment.replace("{key}", "optim.blr").replace(
            "{value}", "{type: double, minval: 1.0e-4, maxval: 1.0e-3, count: 1000000000}"))
        answered = []

        def poll():
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                subprocess.run([args.maestro, "worker", "list", "--coordinator", address], capture_output=True,
                               timeout=30, env=env)
                answered.append(time.monotonic() - t0)
        poller = threading.Thread(target=poll)
        poller.start()
        status, text, seconds, _ = run_bounded([args.maestro, "experiment", "create", grid, "--coordinator", address],
                                               env=env)
        poller.join()
        with open(f"/proc/{coordinator.pid}/status") as f:
            hwm_kb = int(next(line for line in f if line.startswith("VmHWM")).split()[1])
        check.expect(status == 1 and "more than 100000 cells" in text and seconds < TIME_LIMIT_S and hwm_kb < RSS_LIMIT_KB,
                     f"a grid of 1e9 cells sent to the coordinator: exit {status} in {seconds:.2f} s, coordinator peak "
                     f"{hwm_kb // 1024} MB: {text.strip()[-110:]}")
        check.expect(answered and max(answered) < 2.0,
                     f"other calls answered meanwhile, the slowest in {max(answered or [0]):.2f} s")
    finally:
        coordinator.send_signal(signal.SIGTERM)
        coordinator.wait(timeout=30)
    print(f"{check.failures} failure(s)")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
