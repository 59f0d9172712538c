"""Writes the Pillow oracle for tests/dataloader/jpeg_test.cpp: JPEG files of one synthetic
photograph (baseline 4:2:0 q90, 4:4:4 q96, progressive, grayscale, CMYK) as byte tensors, and
what Pillow decodes from each (convert("RGB")), plus Pillow's DCT-scaled decode (draft) of the
4:2:0 file at 1/4. jpeg_fixture.safetensors in the given folder."""
import io
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file


def photo():
    rng = np.random.default_rng(6)
    y, x = np.mgrid[0:203, 0:301]
    img = np.stack([120 + 100 * np.sin(x / 23.0), 90 + 80 * np.cos(y / 17.0), (x + 2 * y) % 256], -1)
    img[60:140, 90:210] = [30, 200, 120]  # an object with sharp edges
    img += rng.normal(0, 8, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    base = photo()
    variants = {
        "q90_420": (base, dict(quality=90, subsampling=2)),
        "q96_444": (base, dict(quality=96, subsampling=0)),
        "progressive": (base, dict(quality=90, progressive=True)),
        "gray": (base.convert("L"), dict(quality=90)),
        "cmyk": (base.convert("CMYK"), dict(quality=95)),
    }
    tensors = {}
    for name, (image, options) in variants.items():
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", **options)
        data = buffer.getvalue()
        tensors[f"{name}.file"] = torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()
        decoded = Image.open(io.BytesIO(data))
        tensors[f"{name}.decoded"] = torch.from_numpy(np.asarray(decoded.convert("RGB")).copy())
    draft = Image.open(io.BytesIO(bytes(tensors["q90_420.file"].numpy())))
    draft.draft("RGB", (draft.width // 4, draft.height // 4))
    tensors["q90_420.quarter"] = torch.from_numpy(np.asarray(draft.convert("RGB")).copy())
    save_file(tensors, os.path.join(out_dir, "jpeg_fixture.safetensors"))
    print("wrote", os.path.join(out_dir, "jpeg_fixture.safetensors"), "quarter size", draft.size)


if __name__ == "__main__":
    main()
