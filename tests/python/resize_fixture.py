"""Writes the Pillow oracle for tests/dataloader/resize_test.cpp: crops of real photographs
(photo_set.py) resized to 224 x 224 as torchvision's RandomResizedCrop does on PIL images
(F.resized_crop, bicubic), with the crop boxes from its get_params, a small box (upsampling) and
the whole image, unflipped and flipped; RGB and grayscale. resize_fixture.safetensors."""
import os
import sys

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
import photo_set  # noqa: E402


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(4)
    photos = [Image.open(p).convert("RGB") for p in photo_set.source_photos()[:4]]
    images = [photo_set.cut(p, rng) for p in photos]
    images.append(photo_set.cut(photos[0], rng).convert("L"))
    torch.manual_seed(0)
    crop = T.RandomResizedCrop(224, scale=(0.2, 1.0), interpolation=T.InterpolationMode.BICUBIC)
    tensors = {}
    for k, image in enumerate(images):
        boxes = [crop.get_params(image, crop.scale, crop.ratio) for _ in range(6)]
        boxes.append((10, 20, 80, 100))  # smaller than 224: upsampled
        boxes.append((0, 0, image.height, image.width))
        outs, flips = [], []
        for top, left, h, w in boxes:
            out = F.resized_crop(image, top, left, h, w, [224, 224], T.InterpolationMode.BICUBIC)
            outs.append(np.asarray(out).reshape(224, 224, -1))
            flips.append(np.asarray(F.hflip(out)).reshape(224, 224, -1))
        tensors[f"p{k}.pixels"] = torch.from_numpy(np.asarray(image).reshape(image.height, image.width, -1).copy())
        tensors[f"p{k}.boxes"] = torch.tensor(boxes, dtype=torch.int64)
        tensors[f"p{k}.out"] = torch.from_numpy(np.stack(outs))
        tensors[f"p{k}.flipped"] = torch.from_numpy(np.stack(flips))
    save_file(tensors, os.path.join(out_dir, "resize_fixture.safetensors"))
    print("wrote", os.path.join(out_dir, "resize_fixture.safetensors"), len(images), "images")


if __name__ == "__main__":
    main()
