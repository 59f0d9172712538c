"""Writes the timm oracle for tests/model/vit_timm_parity_test.cpp.

- timm VisionTransformer (small config, LayerNorm eps 1e-6, qkv bias, seeded random init) with
  global average pooling + fc_norm ("avg", the official fine-tuning head) and with the cls
  token ("token"): weights, images and logits in timm_vit_<pool>.safetensors.
- Position-embedding interpolation: a random (1, 1 + 7*7, 32) table resized by timm's
  resample_abs_pos_embed (bicubic, no antialiasing, as the official interpolate_pos_embed) to
  9x9 and to 5x5: timm_pos_embed.safetensors.
"""
import os
import sys
from functools import partial

import torch
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    for pool in ("avg", "token"):
        torch.manual_seed(7)
        model = VisionTransformer(img_size=32, patch_size=4, in_chans=3, num_classes=10, embed_dim=64, depth=2,
                                  num_heads=4, mlp_ratio=4.0, qkv_bias=True, global_pool=pool,
                                  norm_layer=partial(torch.nn.LayerNorm, eps=1e-6)).eval()
        with torch.no_grad():
            model.pos_embed.normal_(0, 0.02)  # a non-trivial table
            images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(8))
            logits = model(images)
        tensors = {f"weights.{k}": v.contiguous() for k, v in model.state_dict().items()}
        tensors["images"] = images
        tensors["logits"] = logits.contiguous()
        save_file(tensors, os.path.join(out_dir, f"timm_vit_{pool}.safetensors"))
    table = torch.randn(1, 1 + 49, 32, generator=torch.Generator().manual_seed(9))
    resized = {"table": table}
    for size in (9, 5):
        resized[f"to{size}"] = resample_abs_pos_embed(table, new_size=(size, size), num_prefix_tokens=1,
                                                      interpolation="bicubic", antialias=False).contiguous()
    save_file(resized, os.path.join(out_dir, "timm_pos_embed.safetensors"))
    print("wrote timm fixtures to", out_dir)


if __name__ == "__main__":
    main()
