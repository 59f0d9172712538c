"""maestro's AdamW against PyTorch's torch.optim.AdamW with the official MAE grouping.

Runs tests/engine/adamw_tool, fused and single-tensor (five steps on the small model's named parameters, seeded
gradients, a different lr each step), then replays the same steps with torch.optim.AdamW on
two groups built as the official main_pretrain.py does (timm's param_groups_weight_decay:
no decay for 1-D parameters and biases; fixed position embeddings are not trained) and
compares every parameter: relative difference (norm-wise) at most 1e-6.
"""
import argparse
import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

FIXED = {"pos_embed", "decoder_pos_embed"}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tool", required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    status = 0
    for mode in ("fused", "single"):
        status |= check(args, mode)
    print("adamw oracle: " + ("PASS" if status == 0 else "FAIL"))
    return status


def check(args, mode):
    os.makedirs(args.dir, exist_ok=True)
    subprocess.run([args.tool, args.dir] + ([] if mode == "fused" else ["single"]), check=True, timeout=120)
    init = load_file(os.path.join(args.dir, "init.safetensors"))
    grads = load_file(os.path.join(args.dir, "grads.safetensors"))
    result = load_file(os.path.join(args.dir, "result.safetensors"))
    lrs = json.load(open(os.path.join(args.dir, "lrs.json")))

    params = {name: torch.nn.Parameter(t.clone()) for name, t in init.items() if name not in FIXED}
    decay, no_decay = [], []
    for name, p in params.items():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": no_decay, "weight_decay": 0.0},
                                   {"params": decay, "weight_decay": 0.05}], lr=lrs[0], betas=(0.9, 0.95))
    for k, lr in enumerate(lrs):
        for group in optimizer.param_groups:
            group["lr"] = lr
        for name, p in params.items():
            p.grad = grads[f"{k}.{name}"].clone()
        optimizer.step()

    worst, worst_name = 0.0, ""
    for name, p in params.items():
        want = p.detach().double()
        got = result[name].double()
        rel = ((got - want).norm() / want.norm()).item()
        if rel > worst:
            worst, worst_name = rel, name
    for name in FIXED:
        if not torch.equal(result[name], init[name]):
            print(f"{name} changed, but it is fixed")
            return 1
    ok = worst <= 1e-6
    print(f"{mode} AdamW vs torch.optim.AdamW, {len(params)} parameters ({len(decay)} decayed), 5 steps: "
          f"worst relative difference {worst:.3e} {worst_name} {'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
