"""Writes the timm oracle for tests/dataloader/augment_timm_parity_test.cpp.

- augment_ops.safetensors: an RGB and a grayscale test image and, for every operation of timm's
  RandAugment `inc1` policy at magnitude 9 and both directions, timm's output
  (`<image>.<op>.<pos|neg>`), with the fill color of timm's fine-tuning transform and bicubic
  resampling as timm's create_transform(interpolation="bicubic") configures them.
  Also the evaluation transform (resize to 28 / 0.875, center crop 28) as torchvision does it.
- mixup.safetensors: a batch and labels and, for given (lambda, mode, box center) cases, the
  images and soft targets timm's Mixup(mode="batch", label_smoothing=0.1) produces.
"""
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from timm.data import auto_augment as aa
from timm.data import mixup as mx

MAGNITUDE = 9


def test_images():
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:32, 0:32]
    rgb = np.stack([(x * 8) % 256, (y * 7 + 20) % 256, ((x + y) * 4) % 256], axis=-1).astype(np.float64)
    rgb[8:20, 10:26] = [200, 40, 90]  # an object with edges
    rgb += rng.normal(0, 12, rgb.shape)
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    gray = np.zeros((28, 28), np.float64)
    gray[5:23, 7:21] = 150 + 40 * np.sin(np.arange(14) / 3.0)[None, :]  # a garment-like blob
    gray += rng.normal(0, 6, gray.shape) * (gray > 0)
    gray = np.clip(gray, 0, 255).astype(np.uint8)
    return {"rgb": (rgb, (124, 116, 104)), "gray": (gray, 73)}


def augment_ops(out_dir):
    tensors = {}
    for name, (pixels, fill) in test_images().items():
        tensors[f"{name}.image"] = torch.from_numpy(pixels.reshape(pixels.shape[0], pixels.shape[1], -1).copy())
        tensors[f"{name}.fill"] = torch.tensor(fill if isinstance(fill, tuple) else (fill,), dtype=torch.uint8)
        for op_name in aa._RAND_INCREASING_TRANSFORMS:
            for direction in ("pos", "neg"):
                aa._randomly_negate = (lambda v: -v) if direction == "neg" else (lambda v: v)
                op = aa.AugmentOp(op_name, prob=1.0, magnitude=MAGNITUDE,
                                  hparams=dict(img_mean=fill, interpolation=Image.BICUBIC,
                                               translate_const=int(pixels.shape[0] * 0.45)))
                out = np.asarray(op(Image.fromarray(pixels)))
                tensors[f"{name}.{op_name}.{direction}"] = torch.from_numpy(
                    out.reshape(out.shape[0], out.shape[1], -1).copy())
    # The evaluation transform: torchvision Resize(int(28 / 0.875), bicubic) + CenterCrop(28) on
    # a 40 x 60 photograph-like image (PIL's antialiased bicubic shrinks it to 32 x 48).
    from torchvision import transforms
    rng = np.random.default_rng(4)
    y, x = np.mgrid[0:40, 0:60]
    wide = np.stack([(x * 4) % 256, (y * 6) % 256, ((x * y) // 7) % 256], axis=-1).astype(np.float64)
    wide = np.clip(wide + rng.normal(0, 10, wide.shape), 0, 255).astype(np.uint8)
    crop = transforms.Compose([transforms.Resize(int(28 / 0.875), interpolation=transforms.InterpolationMode.BICUBIC),
                               transforms.CenterCrop(28)])
    tensors["eval.image"] = torch.from_numpy(wide.copy())
    tensors["eval.expected"] = torch.from_numpy(np.asarray(crop(Image.fromarray(wide))).copy())
    save_file(tensors, os.path.join(out_dir, "augment_ops.safetensors"))


def mixup(out_dir):
    g = torch.Generator().manual_seed(5)
    images = torch.randn(8, 3, 16, 12, generator=g)
    labels = torch.randint(0, 10, (8,), generator=g)
    tensors = {"images": images, "labels": labels}
    # (name, lambda, cutmix, center_y, center_x)
    cases = [("mixup", 0.37, False, 0, 0), ("cutmix", 0.6, True, 5, 7), ("cutmix_edge", 0.3, True, 0, 11),
             ("none", 1.0, False, 0, 0)]
    for name, lam, cutmix, cy, cx in cases:
        fn = mx.Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, mode="batch",
                      label_smoothing=0.1, num_classes=10)
        fn._params_per_batch = lambda lam=lam, cutmix=cutmix: (lam, cutmix)
        centers = iter([cy, cx])
        saved = np.random.randint
        np.random.randint = lambda *a, **k: next(centers)
        try:
            x, target = fn(images.clone(), labels.clone())
        finally:
            np.random.randint = saved
        tensors[f"{name}.params"] = torch.tensor([lam, float(cutmix), cy, cx], dtype=torch.float64)
        tensors[f"{name}.images"] = x.contiguous()
        tensors[f"{name}.targets"] = target.contiguous()
    save_file(tensors, os.path.join(out_dir, "mixup.safetensors"))


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    augment_ops(out_dir)
    mixup(out_dir)
    print("wrote augmentation fixtures to", out_dir)


if __name__ == "__main__":
    main()
