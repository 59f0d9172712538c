"""Fine-tuning and linear probing with maestro-train, with real processes and real signals.

1. Exact resume: a fine-tuning run (every augmentation on: RandAugment, random erasing,
   mixup/cutmix, label smoothing, drop path) and a linear probe are killed with SIGKILL at a
   random moment after their checkpoint at step N and resumed with --resume auto: every loss
   after N and the final weights (BatchNorm statistics included) equal an uninterrupted run's,
   bit for bit.
2. Records: result.json names the pretraining checkpoint (path, sha256 of its weights file) and
   holds the final top-1 / top-5 / loss; metrics.jsonl has the evaluation records.
3. Where the encoder comes from: a maestro checkpoint location, a .safetensors file with
   official names, a Hugging Face ViTMAE folder (transformers' save_pretrained); the linear
   probe's frozen encoder equals the source weights afterwards. Partial fine-tuning
   (tune_blocks=1) changes the last block only. Another image size interpolates pos_embed.
4. Bad input fails with status 2 and says what does not match: another architecture, a
   weights file with missing tensors, a missing head size, no pretrained source.
CPU, fixed thread count. Exit status 0 when everything holds.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file, save_file

from run_util import Checker, checkpoint_path, log_tail, wait_for_checkpoint

N = 10
TOTAL = 2 * N


def start(train, job, out_dir, *extra):
    common = ["--set", f"run.output_dir={out_dir}", "--set", "run.threads=2", "--set", "data.num_workers=2",
              "--set", "optim.batch_size=32", "--set", "log.interval_steps=5", "--set", "run.seed=5"]
    if job != "pretrain":
        common += ["--set", "classify.num_classes=10", "--set", "classify.eval_batch_size=500",
                   "--set", "classify.eval_max_samples=2000"]
    log = open(out_dir + ".log", "ab")
    return subprocess.Popen([train, job, *common, *extra], stdout=log, stderr=subprocess.STDOUT)


def run(train, job, out_dir, *extra, timeout=600):
    return start(train, job, out_dir, *extra).wait(timeout=timeout)


def losses(out_dir):
    out = {}
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            if record.get("kind") != "eval":
                out[record["step"]] = record["loss"]
    return out


def model_file(out_dir, step):
    return os.path.join(checkpoint_path(out_dir, step), "model.safetensors")


def exact_resume(check, train, root, job, pretrained, rng, *extra):
    schedule = ["--set", f"optim.max_steps={TOTAL}", "--set", "checkpoint.interval_steps=5",
                "--set", "checkpoint.keep_last=0", "--set", f"classify.pretrained={pretrained}", *extra]
    a = os.path.join(root, f"{job}-a")
    code = run(train, job, a, *schedule)
    check.expect(code == 0, f"{job}: uninterrupted run completes (exit {code})")
    if code != 0:
        print(log_tail(a))
        return None
    b = os.path.join(root, f"{job}-b")
    proc = start(train, job, b, *schedule)
    wait_for_checkpoint(proc, b, N)
    delay = rng.uniform(0.0, 0.6)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    print(f"      SIGKILL {delay:.3f} s after checkpoint {N}")
    code = run(train, job, b, *schedule, "--resume", "auto")
    check.expect(code == 0, f"{job}: resumed run completes (exit {code})")
    ref, got = losses(a), losses(b)
    check.expect(sorted(ref) == list(range(1, TOTAL + 1)) and all(got.get(s) == ref[s] for s in range(N + 1, TOTAL + 1)),
                 f"{job}: losses after step {N} are bitwise equal after SIGKILL + resume")
    with open(model_file(a, TOTAL), "rb") as fa, open(model_file(b, TOTAL), "rb") as fb:
        check.expect(fa.read() == fb.read(), f"{job}: final weights are bitwise equal after SIGKILL + resume")
    ra = json.load(open(os.path.join(a, "result.json")))
    rb = json.load(open(os.path.join(b, "result.json")))
    check.expect(ra["final"]["top1"] == rb["final"]["top1"], f"{job}: the same final top-1 ({ra['final']['top1']:.2f}%)")
    return a


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    rng = random.Random()
    check = Checker()
    train = args.train

    # A short pretraining of the small preset, and one of another architecture.
    pre = os.path.join(args.dir, "pre")
    code = run(train, "pretrain", pre, "--set", "optim.max_steps=6")
    other = os.path.join(args.dir, "pre-other")
    code2 = run(train, "pretrain", other, "--set", "optim.max_steps=1", "--set", "model.embed_dim=64",
                "--set", "model.depth=2")
    check.expect(code == 0 and code2 == 0, "pretraining runs for the encoders complete")
    if code or code2:
        print(log_tail(pre), log_tail(other))
        return 1
    pre_ckpt = checkpoint_path(pre, 6)
    pre_weights = load_file(model_file(pre, 6))

    # 1 + 2. Exact resume and records.
    ft = exact_resume(check, train, args.dir, "finetune", os.path.join(pre, "checkpoints"), rng)
    lp = exact_resume(check, train, args.dir, "linprobe", pre_ckpt, rng)
    if ft:
        result = json.load(open(os.path.join(ft, "result.json")))
        sha = hashlib.sha256(open(model_file(pre, 6), "rb").read()).hexdigest()
        check.expect(result["pretrained"]["sha256"] == sha and result["pretrained"]["path"] == pre_ckpt,
                     "result.json names the pretraining checkpoint and the sha256 of its weights")
        final = result["final"]
        check.expect(all(k in final for k in ("top1", "top5", "loss")) and 0 <= final["top1"] <= final["top5"] <= 100
                     and final["samples"] == 2000, f"final metrics on the first 2,000 test images: {final}")
        evals = [json.loads(l) for l in open(os.path.join(ft, "metrics.jsonl")) if '"kind":"eval"' in l]
        check.expect(len(evals) == 1 and evals[0]["step"] == TOTAL, "metrics.jsonl holds the evaluation record")
    if lp:
        state = load_file(model_file(lp, TOTAL))
        frozen = [k for k in pre_weights if k.startswith(("blocks.", "patch_embed.", "cls_token", "norm."))]
        check.expect(all(torch.equal(state[k], pre_weights[k]) for k in frozen),
                     "linear probe: the encoder (final norm included) is frozen at the pretrained weights")
        check.expect("head_bn.running_mean" in state and state["head_bn.running_mean"].abs().sum() > 0,
                     "linear probe: BatchNorm statistics are trained and checkpointed")

    # 3. Sources: a .safetensors file with official names, a Hugging Face folder; partial fine-tuning.
    lp_file = os.path.join(args.dir, "lp-file")
    code = run(train, "linprobe", lp_file, "--set", "optim.max_steps=2",
               "--set", f"classify.pretrained={model_file(pre, 6)}")
    ok = code == 0 and all(torch.equal(load_file(model_file(lp_file, 2))[k], pre_weights[k])
                           for k in pre_weights if k.startswith("blocks."))
    check.expect(ok, f"a .safetensors file with official names loads (exit {code})")

    from transformers import ViTMAEConfig, ViTMAEForPreTraining
    torch.manual_seed(3)
    hf = ViTMAEForPreTraining(ViTMAEConfig(
        image_size=28, patch_size=4, num_channels=1, hidden_size=128, num_hidden_layers=4,
        num_attention_heads=4, intermediate_size=512, decoder_hidden_size=64, decoder_num_hidden_layers=2,
        decoder_num_attention_heads=4, decoder_intermediate_size=256, layer_norm_eps=1e-6, qkv_bias=True))
    hf_dir = os.path.join(args.dir, "hf-model")
    hf.save_pretrained(hf_dir)
    lp_hf = os.path.join(args.dir, "lp-hf")
    code = run(train, "linprobe", lp_hf, "--set", "optim.max_steps=2", "--set", f"classify.pretrained={hf_dir}")
    ok = code == 0
    if ok:
        got = load_file(model_file(lp_hf, 2))
        sd = hf.state_dict()  # transformers 5 names: vit.layers.N.attention.{q,k,v}_proj
        qkv = torch.cat([sd[f"vit.layers.1.attention.{p}_proj.weight"] for p in "qkv"])
        ok = torch.equal(got["blocks.1.attn.qkv.weight"], qkv) and "Hugging Face" in log_tail(lp_hf)
    check.expect(ok, f"a Hugging Face ViTMAE folder loads under its imported names (exit {code})")

    partial = os.path.join(args.dir, "ft-partial")
    code = run(train, "finetune", partial, "--set", "optim.max_steps=2", "--set", f"classify.pretrained={pre_ckpt}",
               "--set", "classify.tune_blocks=1")
    ok = code == 0
    if ok:
        got = load_file(model_file(partial, 2))
        ok = (all(torch.equal(got[k], pre_weights[k]) for k in pre_weights
                  if k.startswith(("blocks.0.", "blocks.1.", "blocks.2.", "patch_embed.", "cls_token")))
              and not torch.equal(got["blocks.3.mlp.fc1.weight"], pre_weights["blocks.3.mlp.fc1.weight"]))
    check.expect(ok, f"tune_blocks=1 trains the last block and leaves the others (exit {code})")

    # Another image size: the position embedding is interpolated (7 x 7 -> 8 x 8 patches).
    resized = os.path.join(args.dir, "ft-32px")
    code = run(train, "finetune", resized, "--set", "optim.max_steps=1", "--set", f"classify.pretrained={pre_ckpt}",
               "--set", "model.img_size=32")
    ok = code == 0 and tuple(load_file(model_file(resized, 1))["pos_embed"].shape) == (1, 65, 128)
    check.expect(ok, f"fine-tuning at 32 px from a 28 px encoder interpolates pos_embed (exit {code})")

    # 4. Bad input.
    bad = os.path.join(args.dir, "bad")
    code = run(train, "finetune", bad, "--set", f"classify.pretrained={checkpoint_path(other, 1)}")
    log = log_tail(bad)
    check.expect(code == 2 and "does not fit" in log and "blocks.0.attn.qkv.weight' has shape [192, 64]" in log
                 and "missing 'blocks.3." in log, "a checkpoint of another architecture: status 2, every mismatch listed")
    partial_file = os.path.join(args.dir, "missing.safetensors")
    save_file({k: v for k, v in pre_weights.items() if not k.startswith("blocks.2.")}, partial_file)
    code = run(train, "finetune", bad, "--set", f"classify.pretrained={partial_file}")
    log = log_tail(bad)
    check.expect(code == 2 and "missing 'blocks.2.attn.proj.weight'" in log,
                 "a weights file with missing tensors: status 2, the missing names listed")
    proc = subprocess.run([train, "finetune", "--set", f"classify.pretrained={pre_ckpt}"], capture_output=True, text=True)
    check.expect(proc.returncode == 2 and "classify.num_classes" in proc.stderr,
                 f"a missing head size: status 2 naming classify.num_classes ({proc.stderr.strip()})")
    proc = subprocess.run([train, "linprobe", "--set", "classify.num_classes=10"], capture_output=True, text=True)
    check.expect(proc.returncode == 2 and "classify.pretrained" in proc.stderr,
                 f"no pretrained source: status 2 naming classify.pretrained ({proc.stderr.strip()})")
    code = run(train, "finetune", bad, "--set", "classify.pretrained=/nonexistent/ckpt")
    check.expect(code == 2 and "does not exist" in log_tail(bad), "a pretrained path that does not exist: status 2")

    print(f"classify test: {'PASS' if check.failures == 0 else str(check.failures) + ' FAILURES'}")
    return 0 if check.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
