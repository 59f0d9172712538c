"""The Python baseline for maestro-bench on a GPU: Hugging Face ViTMAEForPreTraining with the
ViT-B/16 MAE shapes (decoder 512 x 8), bf16 autocast, SDPA attention, forward + backward,
median step time. Run in the same call as maestro-bench so the two are comparable."""
import argparse
import json
import statistics
import time

import torch
from transformers import ViTMAEConfig, ViTMAEForPreTraining


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_python_reference: no CUDA device: skipped")
        return
    config = ViTMAEConfig(layer_norm_eps=1e-6, qkv_bias=True, hidden_act="gelu")
    model = ViTMAEForPreTraining(config).cuda().train()
    imgs = torch.randn(args.batch, 3, 224, 224, device="cuda")
    times = []
    for step in range(args.warmup + args.steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for p in model.parameters():
            p.grad = None
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(pixel_values=imgs).loss
        loss.backward()
        torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    img_s = args.batch / median
    print(f"python-hf-vit-b         cuda:0 bf16  batch {args.batch:4d}  fwd+bwd  median step "
          f"{median * 1000:9.2f} ms  {img_s:10.1f} img/s  (torch {torch.__version__})")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"model": "transformers ViTMAEForPreTraining ViT-B/16", "precision": "bf16",
                       "batch": args.batch, "median_step_ms": median * 1000,
                       "images_per_second": img_s, "torch": torch.__version__}, f)


if __name__ == "__main__":
    main()
