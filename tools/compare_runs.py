#!/usr/bin/env python3
"""Compares two maestro-train runs: every parameter tensor of their checkpoints at one step
(||other - reference|| / ||reference||, per tensor) and, optionally, a run's loss curve against
the reference's or another's (|loss - reference loss| / reference loss, per logged step).

    tools/compare_runs.py --reference RUN --other RUN --step N [--param-tol 1e-3]
                          [--curve RUN [--curve-reference RUN] --loss-tol 0.02] [--out FILE.json]

RUN is a run.output_dir (checkpoints under RUN/checkpoints/step-<12 digits>/, losses in
RUN/metrics.jsonl). Reads safetensors itself (numpy, else torch: the GPU machines have torch
and nothing else of ours). Prints one line per check and the worst tensors; exit status 0
when every check holds, 1 when one does not, 2 when a file is missing or unreadable.
"""
import argparse
import json
import math
import os
import struct
import sys

try:
    import numpy as np

    def vector(raw, dtype):
        return np.frombuffer(raw, dtype={"F32": np.float32, "F64": np.float64}[dtype]).astype(np.float64)

    def norm(v):
        return float(np.linalg.norm(v))
except ImportError:  # the GPU machines
    import torch

    def vector(raw, dtype):
        kind = {"F32": torch.float32, "F64": torch.float64}[dtype]
        return torch.frombuffer(bytearray(raw), dtype=kind).to(torch.float64)

    def norm(v):
        return float(torch.linalg.vector_norm(v))


def load_safetensors(path):
    """{name: float64 vector} of a safetensors file's F32/F64 tensors."""
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    body = data[8 + header_len:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] not in ("F32", "F64"):
            continue
        begin, end = info["data_offsets"]
        out[name] = vector(body[begin:end], info["dtype"])
    return out


def checkpoint(run, step):
    return os.path.join(run, "checkpoints", f"step-{step:012d}", "model.safetensors")


def losses(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return {r["step"]: r["loss"] for r in records if "loss" in r and "step" in r}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="the reference run's output_dir")
    parser.add_argument("--other", required=True, help="the run compared with it, parameter by parameter")
    parser.add_argument("--step", type=int, required=True, help="the checkpoint step both runs wrote")
    parser.add_argument("--param-tol", type=float, default=1e-3, help="largest relative difference per tensor")
    parser.add_argument("--curve", help="a run whose loss curve is compared with the reference's")
    parser.add_argument("--curve-reference", help="the run whose loss curve --curve is held against "
                        "(default: --reference)")
    parser.add_argument("--loss-tol", type=float, default=0.02, help="largest relative loss difference per step")
    parser.add_argument("--out", help="write the figures to this JSON file")
    args = parser.parse_args()

    try:
        reference = load_safetensors(checkpoint(args.reference, args.step))
        other = load_safetensors(checkpoint(args.other, args.step))
        curves = (losses(args.curve_reference or args.reference), losses(args.curve)) if args.curve else None
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = {"step": args.step, "param_tol": args.param_tol}
    ok = True
    if set(reference) != set(other):
        print(f"FAIL  the checkpoints hold different tensors: {sorted(set(reference) ^ set(other))[:5]}")
        return 1
    errors = {}
    for name, ref in reference.items():
        errors[name] = norm(other[name] - ref) / max(norm(ref), 1e-30)
    worst = sorted(errors, key=errors.get, reverse=True)
    passed = errors[worst[0]] <= args.param_tol
    ok &= passed
    print(f"{'ok  ' if passed else 'FAIL'}  every parameter tensor within {args.param_tol:g} relative after "
          f"{args.step} steps ({len(errors)} tensors; worst {errors[worst[0]]:.2e}, {worst[0]})")
    for name in worst[:5]:
        print(f"      {errors[name]:.2e}  {name}")
    report["tensors"] = len(errors)
    report["worst"] = {name: errors[name] for name in worst[:10]}
    if curves:
        ref_curve, curve = curves
        steps = sorted(set(ref_curve) & set(curve))
        gaps = {s: abs(curve[s] - ref_curve[s]) / abs(ref_curve[s]) for s in steps if ref_curve[s] != 0}
        finite = all(math.isfinite(curve[s]) for s in steps)
        worst_step = max(gaps, key=gaps.get) if gaps else None
        passed = bool(steps) and finite and gaps[worst_step] <= args.loss_tol
        ok &= passed
        print(f"{'ok  ' if passed else 'FAIL'}  its loss curve within {args.loss_tol:g} relative of the reference's "
              f"at every one of {len(steps)} logged steps"
              + (f" (worst {gaps[worst_step]:.2e} at step {worst_step})" if worst_step is not None else ""))
        report["loss_tol"] = args.loss_tol
        report["loss_steps"] = len(steps)
        report["loss_gap_worst"] = gaps[worst_step] if worst_step is not None else None
        report["losses"] = {str(s): [ref_curve[s], curve[s]] for s in steps}
    report["passed"] = ok
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
