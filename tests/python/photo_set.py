"""An ImageNet-layout folder of real photographs, cut from the wallpapers of Debian's
plasma-workspace-wallpapers package (installed by tools/bootstrap.sh) into ImageNet-like sizes
around 500x375: one class per source photograph, each image a random region of it shrunk to
its size (as a camera's photo is) and saved as JPEG. With `oddities`, the folder also holds
what real ImageNet has: a grayscale, a CMYK and a progressive JPEG, a PNG named .JPEG, plus a
corrupt file, a truncated JPEG and an empty file.

Used by photos_test.py, resize_fixture.py and bench/data_path.py. As a script:
    photo_set.py OUT_DIR [--per-class N] [--quality Q] [--subsampling 0|2]
"""
import argparse
import glob
import io
import os

import numpy as np
from PIL import Image

WALLPAPERS = "/usr/share/wallpapers"
# Photographs (not renders) among the package's wallpapers.
PHOTOS = ["Autumn", "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow",
          "FallenLeaf", "Kite", "OneStandsOut", "PastelHills", "Path", "summer_1am"]
SIZES = [(500, 375)] * 4 + [(500, 333), (375, 500), (500, 400), (333, 500), (500, 500)]


def source_photos():
    """The largest JPEG of each photo wallpaper, as paths (sorted by name)."""
    paths = []
    for name in PHOTOS:
        files = glob.glob(os.path.join(WALLPAPERS, name, "contents", "images", "*.jpg"))
        if files:
            paths.append(max(files, key=os.path.getsize))
    if len(paths) < 4:
        raise SystemExit(f"too few wallpapers under {WALLPAPERS}: install plasma-workspace-wallpapers "
                         "(tools/bootstrap.sh does)")
    return paths


def cut(photo, rng):
    """A random region of `photo` shrunk to an ImageNet-like size."""
    w, h = SIZES[int(rng.integers(len(SIZES)))]
    f = rng.uniform(1.2, min(3.0, photo.width / w, photo.height / h))
    rw, rh = int(w * f), int(h * f)
    x, y = int(rng.integers(0, photo.width - rw + 1)), int(rng.integers(0, photo.height - rh + 1))
    return photo.crop((x, y, x + rw, y + rh)).resize((w, h), Image.LANCZOS)


def jpeg_bytes(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def build(out_dir, split="train", classes=6, per_class=6, quality=90, subsampling=2, oddities=True, seed=0):
    """Writes OUT_DIR/<split>/<class>/*.JPEG. Returns (good, bad): good lists (relative path,
    label) in ImageFolder order (sorted classes, sorted files), bad the relative paths of the
    files an ingest must skip."""
    rng = np.random.default_rng(seed)
    photos = [Image.open(p).convert("RGB") for p in source_photos()[:classes]]
    good, bad = [], []
    for label, photo in enumerate(photos):
        wnid = f"n{label + 1:08d}"
        folder = os.path.join(out_dir, split, wnid)
        os.makedirs(folder, exist_ok=True)
        for k in range(per_class):
            name = f"{wnid}_{k:04d}.JPEG"
            data = jpeg_bytes(cut(photo, rng), quality=quality, subsampling=subsampling)
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
            good.append((f"{wnid}/{name}", label))
        if not oddities:
            continue
        odd = {}
        if label == 0:
            odd["gray"] = jpeg_bytes(cut(photo, rng).convert("L"), quality=90)
            odd["cmyk"] = jpeg_bytes(cut(photo, rng).convert("CMYK"), quality=92)
        if label == 1:
            odd["progressive"] = jpeg_bytes(cut(photo, rng), quality=90, progressive=True)
            buffer = io.BytesIO()
            cut(photo, rng).save(buffer, "PNG")
            odd["png"] = buffer.getvalue()
        for kind, data in odd.items():
            name = f"{wnid}_{kind}.JPEG"
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
            good.append((f"{wnid}/{name}", label))
        if label == 2:
            whole = jpeg_bytes(cut(photo, rng), quality=90)
            broken = {"truncated": whole[: len(whole) * 3 // 5],
                      "corrupt": bytes(rng.integers(0, 256, 20000, dtype=np.uint8)),
                      "empty": b""}
            for kind, data in broken.items():
                name = f"{wnid}_{kind}.JPEG"
                with open(os.path.join(folder, name), "wb") as f:
                    f.write(data)
                bad.append(f"{wnid}/{name}")
    good.sort(key=lambda item: item[0])
    return good, sorted(bad)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--per-class", type=int, default=6)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--subsampling", type=int, default=2, help="2: 4:2:0, 0: 4:4:4")
    parser.add_argument("--no-oddities", action="store_true")
    args = parser.parse_args()
    good, bad = build(args.out_dir, classes=args.classes, per_class=args.per_class, quality=args.quality,
                      subsampling=args.subsampling, oddities=not args.no_oddities)
    print(f"wrote {len(good)} images and {len(bad)} broken files under {args.out_dir}/train")


if __name__ == "__main__":
    main()
