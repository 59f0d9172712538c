"""An ImageNet-layout folder of real photographs (photo_set.py: wallpapers cut to ~500x375,
with a grayscale, a CMYK, a progressive JPEG and a PNG named .JPEG, plus a corrupt, a truncated
and an empty file) through the whole data path, with real processes:

1. `maestro data ingest --storage original`: the good images are stored, the broken ones are
   skipped and listed in the manifest.
2. Read back through the data service (`maestro-data serve`) and through the local reader:
   every good image's bytes and label are identical to the source file's.
3. `--storage reencode`: every record is a baseline JPEG with a short side of at most 320 that
   Pillow decodes, with the same labels; the stored bytes shrink.
Exit status 0 when everything holds.
"""
import argparse
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys

from PIL import Image

import photo_set
from run_util import Checker, Credentials, start_listening


def dump(data, out_dir, count, *source):
    proc = subprocess.run([data, "stream", *source, "--split", "train", "--global-batch", str(count),
                           "--limit", str(count), "--dump", out_dir], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr)
    with open(os.path.join(out_dir, "records.jsonl")) as f:
        records = [json.loads(line) for line in f]
    for r in records:
        with open(os.path.join(out_dir, f"{r['index']}.bin"), "rb") as f:
            r["payload"] = f.read()
    return {r["index"]: r for r in records}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--maestro", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    check = Checker()

    src = os.path.join(args.dir, "photos")
    good, bad = photo_set.build(src, classes=6, per_class=8)
    print(f"      {len(good)} photographs in 6 classes, {len(bad)} broken files")

    original = os.path.join(args.dir, "original")
    proc = subprocess.run([args.maestro, "data", "ingest", "--format", "imagefolder", "--src", src, "--out",
                           original, "--split", "train", "--shards", "3"], capture_output=True, text=True)
    manifest = json.load(open(os.path.join(original, "train", "manifest.json"))) if proc.returncode == 0 else {}
    skipped = sorted(re.sub(r"^.*/train/", "", line.split(": ")[0]) for line in manifest.get("skipped", []))
    check.expect(proc.returncode == 0 and manifest["count"] == len(good) and skipped == bad,
                 f"the good images are ingested and the broken ones skipped and listed: {skipped} "
                 f"(exit {proc.returncode})")
    if proc.returncode:
        print(proc.stderr[-2000:])
        return 1
    for line in manifest["skipped"]:
        print(f"      skipped {line[-110:]}")

    credentials = Credentials(args.maestro, args.dir)
    server, m = start_listening([args.data, "serve", "--dataset", f"photos={original}", "--listen", "127.0.0.1:0",
                                 *credentials.server_args()],
                                r"listening on port (\d+)")
    port = int(m.group(1))
    try:
        count = len(good)
        served = dump(args.data, os.path.join(args.dir, "served"), count, "--address", f"127.0.0.1:{port}",
                      "--dataset", "photos")
        local = dump(args.data, os.path.join(args.dir, "local"), count, "--local", original)
        for name, records in (("the data service", served), ("the local reader", local)):
            mismatches = []
            for index, (path, label) in enumerate(good):
                with open(os.path.join(src, "train", path), "rb") as f:
                    source = f.read()
                r = records.get(index)
                if r is None or r["payload"] != source or r["label"] != label:
                    mismatches.append(path)
            check.expect(len(records) == count and not mismatches,
                         f"through {name} every good image's bytes and label equal the source "
                         f"({count} images; mismatches: {mismatches[:3]})")
        formats = sorted({r["format"] for r in served.values()})
        check.expect(formats == ["jpeg", "png"], f"records keep their format (JPEG, PNG): {formats}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    reencoded = os.path.join(args.dir, "reencode")
    proc = subprocess.run([args.maestro, "data", "ingest", "--format", "imagefolder", "--src", src, "--out",
                           reencoded, "--split", "train", "--shards", "2", "--storage", "reencode"],
                          capture_output=True, text=True)
    m2 = json.load(open(os.path.join(reencoded, "train", "manifest.json"))) if proc.returncode == 0 else {}
    check.expect(proc.returncode == 0 and m2.get("storage") == "reencode" and m2.get("count") == len(good),
                 f"--storage reencode ingests the same images (exit {proc.returncode})")
    if proc.returncode == 0:
        records = dump(args.data, os.path.join(args.dir, "reencoded"), len(good), "--local", reencoded)
        ok, total_new = True, 0
        for index, (path, label) in enumerate(good):
            r = records[index]
            image = Image.open(io.BytesIO(r["payload"]))
            ok &= (r["format"] == "jpeg" and r["label"] == label and image.mode == "RGB"
                   and min(image.size) <= 320 and image.size == (r["width"], r["height"])
                   and not image.info.get("progressive"))
            image.load()
            total_new += len(r["payload"])
        total_old = sum(os.path.getsize(os.path.join(src, "train", p)) for p, _ in good)
        print(f"      stored bytes: original {total_old / 1e6:.2f} MB, reencode {total_new / 1e6:.2f} MB "
              f"({total_old / total_new:.2f}x fewer)")
        check.expect(ok, "every reencoded record is a baseline RGB JPEG, short side <= 320, same label")
        check.expect(total_new < total_old, "reencoding stores fewer bytes")

    print(f"photos test: {'PASS' if check.failures == 0 else str(check.failures) + ' FAILURES'}")
    return 0 if check.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
