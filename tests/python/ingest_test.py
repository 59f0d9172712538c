"""maestro data ingest and training from RocksDB shards, with real processes and SIGKILL.

1. An uninterrupted ingest of Fashion-MNIST's train split into 6 shards.
2. Another ingest killed with SIGKILL once its first shard is done (so mid-way through the
   others) and re-run with the same arguments: the same manifest content hash.
3. A re-run over a finished folder changes nothing; another shard count into it is refused.
4. maestro-train pretrains a few steps from the shards (data.source: shards), and its losses
   equal those of the same run reading the IDX files: the sample stream is the same.
5. An ImageNet-layout folder of JPEG files is ingested (a misnamed PNG kept and decoded to RGB,
   a truncated JPEG skipped and listed) and pretrained on.
Exit status 0 when everything holds.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from run_util import Checker

FMNIST = "/usr/share/datasets/fashion-mnist"


def ingest(maestro, root, *extra):
    return subprocess.run([maestro, "data", "ingest", "--format", "idx", "--src", FMNIST, "--out", root,
                           "--split", "train", "--shards", "6", *extra], capture_output=True, text=True)


def manifest(root):
    return json.load(open(os.path.join(root, "train", "manifest.json")))


def losses(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(l)["loss"] for l in f]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--maestro", required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    check = Checker()

    a = os.path.join(args.dir, "a")
    proc = ingest(args.maestro, a)
    check.expect(proc.returncode == 0 and "ingested 60000 images" in proc.stdout,
                 f"an uninterrupted ingest completes (exit {proc.returncode})")
    if proc.returncode:
        print(proc.stderr[-2000:])
        return 1
    reference = manifest(a)["content_hash"]

    b = os.path.join(args.dir, "b")
    running = subprocess.Popen([args.maestro, "data", "ingest", "--format", "idx", "--src", FMNIST, "--out", b,
                                "--split", "train", "--shards", "6"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    marker = os.path.join(b, "train", "shard-00000", "ingest.json")
    deadline = time.time() + 120
    while not os.path.exists(marker) and running.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    running.send_signal(signal.SIGKILL)
    running.wait()
    interrupted = not os.path.exists(os.path.join(b, "train", "manifest.json"))
    print(f"      SIGKILL after the first shard (manifest written before the kill: {not interrupted})")
    proc = ingest(args.maestro, b)
    check.expect(proc.returncode == 0 and manifest(b)["content_hash"] == reference,
                 "an ingest killed with SIGKILL and re-run gives the same content hash")

    before = os.path.getmtime(os.path.join(a, "train", "manifest.json"))
    proc = ingest(args.maestro, a)
    check.expect(proc.returncode == 0 and os.path.getmtime(os.path.join(a, "train", "manifest.json")) == before,
                 "a re-run over a finished ingest changes nothing")
    proc = subprocess.run([args.maestro, "data", "ingest", "--format", "idx", "--src", FMNIST, "--out", a,
                           "--split", "train", "--shards", "4"], capture_output=True, text=True)
    check.expect(proc.returncode != 0 and "another source or shard count" in proc.stderr,
                 "another shard count into a finished folder is refused with a message")

    steps = ["--set", "optim.max_steps=5", "--set", "optim.batch_size=32", "--set", "run.threads=2",
             "--set", "log.interval_steps=5"]
    idx_run, shard_run = os.path.join(args.dir, "idx-run"), os.path.join(args.dir, "shard-run")
    c1 = subprocess.run([args.train, "pretrain", *steps, "--set", f"run.output_dir={idx_run}"],
                        capture_output=True, text=True).returncode
    c2 = subprocess.run([args.train, "pretrain", *steps, "--set", f"run.output_dir={shard_run}",
                         "--set", "data.source=shards", "--set", f"data.path={a}"], capture_output=True, text=True)
    check.expect(c1 == 0 and c2.returncode == 0 and losses(idx_run) == losses(shard_run),
                 f"pretraining from the shards sees the same samples as from the IDX files (exit {c2.returncode})")
    state = json.load(open(os.path.join(shard_run, "result.json")))
    check.expect(state["dataset"]["content_hash"] == reference, "the run records the shards' content hash")

    # 5. An ImageNet-layout folder of JPEGs (various sizes, one grayscale, one progressive, one
    #    misnamed PNG, one truncated JPEG): ingested with the truncated file skipped and listed,
    #    then pretrained on.
    import numpy as np
    from PIL import Image
    folder = os.path.join(args.dir, "folder")
    rng = np.random.default_rng(0)
    for c, wnid in enumerate(("n0002", "n0001")):
        os.makedirs(os.path.join(folder, "train", wnid))
        for k in range(8):
            h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
            img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
            if k == 3:
                img = img.convert("L")
            img.save(os.path.join(folder, "train", wnid, f"img{k}.JPEG"), quality=90, progressive=(k == 5))
    Image.new("RGB", (30, 30)).save(os.path.join(folder, "train", "n0001", "fake.JPEG"), format="PNG")
    # A JPEG cut short: the ingest's check decode finds it.
    with open(os.path.join(folder, "train", "n0002", "img0.JPEG"), "rb") as f:
        head = f.read(700)
    with open(os.path.join(folder, "train", "n0002", "img9-truncated.JPEG"), "wb") as f:
        f.write(head)
    shards = os.path.join(args.dir, "folder-shards")
    proc = subprocess.run([args.maestro, "data", "ingest", "--format", "imagefolder", "--src", folder,
                           "--out", shards, "--split", "train", "--shards", "3"], capture_output=True, text=True)
    m = manifest(shards) if proc.returncode == 0 else {}
    check.expect(proc.returncode == 0 and m["count"] == 17 and m["classes"] == ["n0001", "n0002"]
                 and len(m["skipped"]) == 1 and "img9-truncated.JPEG" in m["skipped"][0],
                 f"an image folder is ingested: the misnamed PNG kept, the truncated JPEG skipped and "
                 f"listed (exit {proc.returncode})")
    run_dir = os.path.join(args.dir, "folder-run")
    proc = subprocess.run([args.train, "pretrain", "--set", "optim.max_steps=6", "--set", "optim.batch_size=8",
                           "--set", "model.in_chans=3", "--set", "data.mean=[0.5,0.5,0.5]",
                           "--set", "data.std=[0.25,0.25,0.25]", "--set", "data.source=shards",
                           "--set", f"data.path={shards}", "--set", f"run.output_dir={run_dir}"],
                          capture_output=True, text=True)
    check.expect(proc.returncode == 0, f"pretraining on the JPEG shards runs (exit {proc.returncode}) "
                 + ("" if proc.returncode == 0 else proc.stdout[-800:]))
    check.expect("warning: corrupt sample" not in proc.stdout,
                 "every stored image decodes in training (the PNG converted to RGB)")

    print(f"ingest test: {'PASS' if check.failures == 0 else str(check.failures) + ' FAILURES'}")
    return 0 if check.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
