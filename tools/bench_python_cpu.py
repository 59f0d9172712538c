"""The Python side of `make bench`: the official-architecture MAE (Hugging Face
ViTMAEForPreTraining) with the mae_vit_tiny_fmnist shapes, trained on the CPU exactly as
maestro-bench --optimizer measures it (random 28x28x1 images, forward + backward +
torch.optim.AdamW with the official grouping), same torch, same thread count. Prints the same
kind of line and writes JSON."""
import argparse
import json
import statistics
import time

import torch
from transformers import ViTMAEConfig, ViTMAEForPreTraining


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-optimizer", action="store_true", help="forward + backward only")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = ViTMAEConfig(image_size=28, patch_size=4, num_channels=1, hidden_size=128, num_hidden_layers=4,
                          num_attention_heads=4, intermediate_size=512, decoder_hidden_size=64,
                          decoder_num_hidden_layers=2, decoder_num_attention_heads=4,
                          decoder_intermediate_size=256, mask_ratio=0.75, layer_norm_eps=1e-6,
                          hidden_act="gelu", qkv_bias=True, attn_implementation="sdpa")
    model = ViTMAEForPreTraining(config).train()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": no_decay, "weight_decay": 0.0},
                                   {"params": decay, "weight_decay": 0.05}], lr=1.5e-4, betas=(0.9, 0.95))
    imgs = torch.randn(args.batch, 1, 28, 28)
    times = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = model(pixel_values=imgs).loss
        loss.backward()
        if not args.no_optimizer:
            optimizer.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    rate = args.batch / median
    what = "fwd+bwd" if args.no_optimizer else "fwd+bwd+adamw"
    print(f"python-hf-tiny          cpu    fp32  batch {args.batch:4d}  {what}  median step "
          f"{median * 1000:9.2f} ms  {rate:10.1f} img/s  (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    if args.out:
        json.dump({"model": "transformers ViTMAEForPreTraining, mae_vit_tiny_fmnist shapes", "device": "cpu",
                   "batch": args.batch, "includes_optimizer": not args.no_optimizer, "median_step_ms": median * 1000,
                   "images_per_second": rate, "torch": torch.__version__, "threads": torch.get_num_threads()},
                  open(args.out, "w"))


if __name__ == "__main__":
    main()
