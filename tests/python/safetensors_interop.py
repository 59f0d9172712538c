"""Safetensors files cross between the Python `safetensors` package and maestro's C++ code.

1. Python writes F32 / BF16 / F16 / I64 tensors with metadata; the C++ tool reads and checks
   them (`safetensors_tool check FILE`).
2. The C++ tool writes the same tensors (`safetensors_tool write FILE`); Python reads and checks.
3. A truncated and a header-corrupted copy make the C++ tool fail with a clear message, not a
   crash (exit status 1, never a signal).
Exit status 0 when all hold. The expected values are defined identically in safetensors_tool.cpp.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file


def expected() -> dict:
    return {
        "f32": torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) * 0.5 - 3.0,
        "bf16": (torch.arange(8, dtype=torch.float32) * 0.25 - 1.0).to(torch.bfloat16),
        "f16": (torch.arange(6, dtype=torch.float32) / 8.0).reshape(3, 2).to(torch.float16),
        "i64": torch.tensor([-(2**40), 0, 7, 2**50], dtype=torch.int64),
        "empty": torch.zeros(0, 5, dtype=torch.float32),
    }


METADATA = {"format": "pt", "producer": "maestro-interop"}


def run(tool, *args):
    proc = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tool", required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    failures = 0

    py_file = os.path.join(args.dir, "from_python.safetensors")
    save_file(expected(), py_file, metadata=METADATA)
    code, text = run(args.tool, "check", py_file)
    print(f"C++ reads Python's file: exit {code}: {text}")
    failures += code != 0

    cpp_file = os.path.join(args.dir, "from_cpp.safetensors")
    code, text = run(args.tool, "write", cpp_file)
    print(f"C++ writes: exit {code}: {text}")
    failures += code != 0
    if code == 0:
        with safe_open(cpp_file, framework="pt") as f:
            got_meta = f.metadata()
            names = sorted(f.keys())
            for name, want in expected().items():
                got = f.get_tensor(name)
                same = got.dtype == want.dtype and got.shape == want.shape and torch.equal(got, want)
                if not same:
                    print(f"  tensor {name}: got {got.dtype} {tuple(got.shape)}, want {want.dtype} {tuple(want.shape)}")
                    failures += 1
        if names != sorted(expected()):
            print(f"  names {names} != {sorted(expected())}")
            failures += 1
        if got_meta != METADATA:
            print(f"  metadata {got_meta} != {METADATA}")
            failures += 1
        print("Python reads C++'s file: " + ("ok" if failures == 0 else "MISMATCH"))

    data = open(py_file, "rb").read()
    corrupt_cases = {
        "truncated": data[: len(data) - 10],
        "bad_header": data[:8] + b"{not json" + data[17:],
        "short": data[:5],
    }
    for label, blob in corrupt_cases.items():
        path = os.path.join(args.dir, f"{label}.safetensors")
        with open(path, "wb") as f:
            f.write(blob)
        code, text = run(args.tool, "check", path)
        ok = code == 1 and text and "DATA_LOSS" in text
        print(f"corrupt ({label}): exit {code}: {text}")
        if not ok:
            print(f"  expected exit 1 with a DATA_LOSS message")
            failures += 1

    print("safetensors interop: " + ("PASS" if failures == 0 else f"{failures} FAILURES"))
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
