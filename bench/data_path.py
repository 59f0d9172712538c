"""The data path's benchmark; not a test. Writes bench/results/data-path.json.

1. Decode + RandomResizedCrop(224, scale 0.2-1) + horizontal flip, images/s, on three sets cut
   from the photographs of Debian's plasma-workspace-wallpapers (photo_set.py): 500x375-ish
   JPEGs at q90 4:2:0, the same at q96 4:4:4 (ImageNet-like), and the q96 set after
   `maestro data ingest --storage reencode`. maestro (maestro-bench-decode: region decode, DCT
   scaling, Pillow's bicubic, CHW uint8) side by side with torchvision + PIL from the test
   virtual environment (decode, convert("RGB"), RandomResizedCrop bicubic, flip, PILToTensor),
   on the same files and thread counts (1 and 2), in one run; both processes with the same
   malloc settings (maestro-train's mallopt, glibc tunables for Python).
2. Streaming: `maestro-data serve` to one `maestro-data stream` client over loopback, MB/s of
   record bytes (the q96 set's originals, in shards).

    python bench/data_path.py --build build [--seconds 5]
"""
import argparse
import concurrent.futures
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import torch
import torchvision.transforms as T
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "python"))
import photo_set  # noqa: E402
from run_util import Credentials, start_listening  # noqa: E402


def torchvision_rate(files, threads, seconds):
    """Images/s of decode + RandomResizedCrop + flip + PILToTensor in `threads` Python threads
    (PIL releases the GIL while it decodes and resizes)."""
    datas = [open(f, "rb").read() for f in files]
    transform = T.Compose([T.RandomResizedCrop(224, scale=(0.2, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                           T.RandomHorizontalFlip(), T.PILToTensor()])
    stop = threading.Event()
    counts = [0] * threads

    def work(t):
        i = t
        while not stop.is_set():
            transform(Image.open(io.BytesIO(datas[i % len(datas)])).convert("RGB"))
            counts[t] += 1
            i += threads

    for d in datas[:threads * 4]:  # warm-up
        transform(Image.open(io.BytesIO(d)).convert("RGB"))
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        futures = [pool.submit(work, t) for t in range(threads)]
        time.sleep(seconds)
        stop.set()
        for f in futures:
            f.result()
        elapsed = time.perf_counter() - start
    return sum(counts) / elapsed


# maestro-train (and maestro-bench-decode) keep freed memory in the heap (mallopt); the Python
# side gets the same allocator settings through glibc's tunables, so neither pays for mmap'ed
# tensors faulted in afresh per image.
GLIBC_TUNABLES = ("glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824:"
                  "glibc.malloc.top_pad=67108864")


def torchvision_rate_in_process(files, threads, seconds, work_dir):
    listing = os.path.join(work_dir, "files.txt")
    with open(listing, "w") as f:
        f.write("\n".join(files) + "\n")
    env = dict(os.environ, GLIBC_TUNABLES=GLIBC_TUNABLES)
    out = subprocess.run([sys.executable, __file__, "--torchvision-only", listing, str(threads), str(seconds)],
                         capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def maestro_rate(bench, files, threads, seconds, work_dir):
    listing = os.path.join(work_dir, "files.txt")
    with open(listing, "w") as f:
        f.write("\n".join(files) + "\n")
    out = subprocess.run([bench, "--list", listing, "--threads", str(threads), "--seconds", str(seconds)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["images_per_s"]


def dump_records(data, root, count, out_dir):
    subprocess.run([data, "stream", "--local", root, "--split", "train", "--global-batch", str(count),
                    "--limit", str(count), "--dump", out_dir], capture_output=True, check=True)
    return sorted(os.path.join(out_dir, n) for n in os.listdir(out_dir) if n.endswith(".bin"))


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--torchvision-only":  # the measuring subprocess
        torch.set_num_threads(1)
        files = open(sys.argv[2]).read().split()
        print(torchvision_rate(files, int(sys.argv[3]), float(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "data-path.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    tools = os.path.join(args.build, "tools")
    maestro, data, bench = (os.path.join(tools, n) for n in ("maestro", "maestro-data", "maestro-bench-decode"))
    work = tempfile.mkdtemp(prefix="maestro-bench-data-")
    try:
        sets = {}
        for name, quality, subsampling in (("q90_420", 90, 2), ("q96_444", 96, 0)):
            src = os.path.join(work, name)
            good, _ = photo_set.build(src, classes=12, per_class=args.per_class, quality=quality,
                                      subsampling=subsampling, oddities=False)
            sets[name] = [os.path.join(src, "train", p) for p, _ in good]
        reencoded = os.path.join(work, "reencode-shards")
        subprocess.run([maestro, "data", "ingest", "--format", "imagefolder", "--src", os.path.join(work, "q96_444"),
                        "--out", reencoded, "--split", "train", "--storage", "reencode", "--shards", "2"],
                       capture_output=True, check=True)
        sets["reencode"] = dump_records(data, reencoded, len(sets["q96_444"]), os.path.join(work, "reencode-files"))

        results = {"decode": {}, "stream": {}}
        for name, files in sets.items():
            size = sum(os.path.getsize(f) for f in files) / len(files)
            row = {"images": len(files), "mean_bytes": round(size)}
            for threads in (1, 2):
                m = maestro_rate(bench, files, threads, args.seconds, work)
                t = torchvision_rate_in_process(files, threads, args.seconds, work)
                row[f"maestro_{threads}t"] = round(m, 1)
                row[f"torchvision_{threads}t"] = round(t, 1)
                row[f"ratio_{threads}t"] = round(m / t, 2)
            row["maestro_2t_over_1t"] = round(row["maestro_2t"] / row["maestro_1t"], 2)
            results["decode"][name] = row
            print(f"{name:9s} {size / 1e3:6.1f} KB  maestro {row['maestro_1t']:7.1f} / {row['maestro_2t']:7.1f} img/s "
                  f"(1 / 2 threads, x{row['maestro_2t_over_1t']:.2f})   torchvision+PIL {row['torchvision_1t']:6.1f} / "
                  f"{row['torchvision_2t']:6.1f}   ratio {row['ratio_1t']:.2f} / {row['ratio_2t']:.2f}", flush=True)

        shards = os.path.join(work, "q96-shards")
        subprocess.run([maestro, "data", "ingest", "--format", "imagefolder", "--src", os.path.join(work, "q96_444"),
                        "--out", shards, "--split", "train", "--shards", "4"], capture_output=True, check=True)
        # TLS and a data token, as trainers read in a cluster.
        credentials = Credentials(maestro, work)
        server, m = start_listening([data, "serve", "--dataset", f"bench={shards}", "--listen", "127.0.0.1:0",
                                     *credentials.server_args()],
                                    r"listening on port (\d+)")
        port = int(m.group(1))
        try:
            count = len(sets["q96_444"])
            for label, limit in (("warm-up", count), ("measured", 40 * count)):
                out = subprocess.run([data, "stream", "--address", f"127.0.0.1:{port}", "--dataset", "bench",
                                      "--global-batch", str(count), "--limit", str(limit), "--hash=false"],
                                     capture_output=True, text=True, check=True)
            r = json.loads(out.stdout)
            results["stream"] = {"records": r["records"], "bytes": r["bytes"], "seconds": round(r["seconds"], 3),
                                 "mb_per_s": round(r["mb_per_s"], 1),
                                 "mean_record_bytes": round(r["bytes"] / r["records"])}
            print(f"stream    {r['mb_per_s']:.0f} MB/s over loopback to one client "
                  f"({r['records']} records of {r['bytes'] / r['records'] / 1e3:.0f} KB)")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        results["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                              "python": platform.python_version(), "torch": torch.__version__,
                              "pillow": Image.__version__}
        with open("/proc/cpuinfo") as f:
            names = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
        if names:
            results["machine"]["cpu"] = names[0]
        results["seconds_per_measure"] = args.seconds
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")
        print("wrote", args.out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
