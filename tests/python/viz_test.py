"""maestro viz recon and maestro eval recon, end to end with real files.

1. A short maestro-train run with normalized-pixel targets; `maestro viz recon` on its
   checkpoint writes a PNG of the expected size whose caption states the de-normalization;
   `maestro eval recon` writes its JSON.
2. The same commands on a Hugging Face ViTMAE folder (config.json + model.safetensors, from the
   hf_vit_mae fixture): the importer path.
3. Bad input: a missing folder and a non-checkpoint folder fail with status 1 and a message.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", required=True)
    parser.add_argument("--maestro", required=True)
    parser.add_argument("--fixtures", required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    failures = 0

    def expect(ok, what):
        nonlocal failures
        print(("ok    " if ok else "FAIL  ") + what, flush=True)
        failures += 0 if ok else 1

    run_dir = os.path.join(args.dir, "run")
    train = subprocess.run([args.train, "pretrain", "--set", f"run.output_dir={run_dir}", "--set", "optim.max_steps=8",
                            "--set", "optim.batch_size=32", "--set", "model.norm_pix_loss=true",
                            "--set", "run.threads=2"], capture_output=True, text=True, timeout=300)
    expect(train.returncode == 0, f"short norm_pix_loss training run (exit {train.returncode})")
    ckpt = os.path.join(run_dir, "checkpoints", "step-000000000008")
    png = os.path.join(args.dir, "maestro.png")
    viz = subprocess.run([args.maestro, "viz", "recon", "--checkpoint", ckpt, "--out", png, "--images", "6",
                          "--columns", "3", "--mask-ratio", "0.5", "--seed", "3"], capture_output=True, text=True)
    print("      " + (viz.stdout + viz.stderr).strip())
    expect(viz.returncode == 0 and os.path.exists(png), "viz recon on a maestro checkpoint")
    if viz.returncode == 0:
        width, height = png_size(png)
        # 6 triplets of 112 px tiles (28 px x 4) in 2 rows of 3, under a 3-line caption.
        expect(width >= 3 * (3 * 112 + 8) and height >= 2 * 112 + 3 * 14, f"picture size {width}x{height}")
    evaluation = os.path.join(args.dir, "eval.json")
    ev = subprocess.run([args.maestro, "eval", "recon", "--checkpoint", ckpt, "--images", "300", "--out", evaluation],
                        capture_output=True, text=True)
    expect(ev.returncode == 0, "eval recon on a maestro checkpoint")
    if ev.returncode == 0:
        result = json.load(open(evaluation))
        expect(result["images"] == 300 and result["masked_patch_loss"] > 0 and result["mean_of_visible_baseline_loss"] > 0,
               f"eval figures: loss {result['masked_patch_loss']:.4f}, baseline {result['mean_of_visible_baseline_loss']:.4f}")

    for tag in ("pixels", "normpix"):
        hf_dir = os.path.join(args.fixtures, f"hf_{tag}_model")
        hf_png = os.path.join(args.dir, f"hf_{tag}.png")
        viz = subprocess.run([args.maestro, "viz", "recon", "--checkpoint", hf_dir, "--out", hf_png, "--images", "4",
                              "--data-dir", "/usr/share/datasets/fashion-mnist"], capture_output=True, text=True)
        print("      " + (viz.stdout + viz.stderr).strip())
        expect(viz.returncode == 0 and "Hugging Face" in viz.stdout, f"viz recon on a Hugging Face folder ({tag})")

    for bad in (os.path.join(args.dir, "missing"), args.dir):
        r = subprocess.run([args.maestro, "viz", "recon", "--checkpoint", bad, "--out", png], capture_output=True, text=True)
        expect(r.returncode == 1 and "maestro viz recon:" in r.stderr, f"clear error for {os.path.basename(bad)}: {r.stderr.strip()}")

    print("viz test: " + ("PASS" if failures == 0 else f"{failures} FAILURES"))
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
