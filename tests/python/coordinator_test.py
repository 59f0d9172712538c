"""maestro-coordinator and `maestro experiment create|list|describe` with real processes
(the experiments part):

1. An experiment is created (6 trials); the same request retried with its idempotency key
   returns the first result; the same grid submitted anew shares all 6 trials (none rerun).
2. Bad input: a trial config the trainer's schema rejects (checked by the coordinator), an
   unknown key in the file, an unknown experiment id: clear errors; the daemon stays up.
3. A second coordinator on the same state folder is refused while the first runs.
4. The coordinator killed with SIGKILL and restarted loses no experiment or trial.
5. SIGTERM stops it cleanly.
Exit status 0 when everything holds.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys

from run_util import Checker, Credentials, start_listening

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "experiments",
                       "fmnist_mask_ratio_x_decoder_depth.yaml")


def start(coordinator, db, credentials, port=0):
    runs = os.path.join(os.path.dirname(db), "runs")
    proc, m = start_listening([coordinator, "--db", db, "--runs", runs, "--listen", f"127.0.0.1:{port}",
                               "--data-root", os.path.dirname(db), *credentials.server_args()],
                              r"listening on port (\d+)")
    return proc, int(m.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--maestro", required=True)
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    check = Checker()
    db = os.path.join(args.dir, "state")
    credentials = Credentials(args.maestro, args.dir)
    proc, port = start(args.coordinator, db, credentials)
    address = f"127.0.0.1:{port}"

    def cli(*words):
        return subprocess.run([args.maestro, "experiment", *words, "--coordinator", address],
                              capture_output=True, text=True, timeout=120)

    try:
        # The example names dataset fmnist: registered from a folder of split manifests (this
        # test runs no trainer, so the manifests alone are enough).
        shards = os.path.join(args.dir, "fmnist-shards")
        for split in ("train", "test"):
            os.makedirs(os.path.join(shards, split))
            with open(os.path.join(shards, split, "manifest.json"), "w") as f:
                json.dump({"content_hash": split * 8, "count": 10}, f)
        r = subprocess.run([args.maestro, "experiment", "create", EXAMPLE, "--coordinator", address],
                           capture_output=True, text=True, timeout=120)
        check.expect(r.returncode != 0 and "unknown dataset 'fmnist'" in r.stderr and "NOT_FOUND" in r.stderr,
                     f"an unregistered dataset is refused: {r.stderr.strip()[-120:]}")
        r = subprocess.run([args.maestro, "dataset", "register", "fmnist", "--path", shards,
                            "--coordinator", address], capture_output=True, text=True, timeout=60)
        check.expect(r.returncode == 0 and "2 splits" in r.stdout,
                     f"maestro dataset register reads the split manifests: {r.stdout.strip()} {r.stderr.strip()}")
        first = cli("create", EXAMPLE, "--idempotency-key", "k1", "--json")
        a = json.loads(first.stdout) if first.returncode == 0 else {}
        check.expect(a.get("experiment") == 1 and len(a.get("trials", [])) == 6 and not a.get("existed"),
                     f"an experiment is created with its 6 trials (exit {first.returncode} {first.stderr.strip()})")
        retry = cli("create", EXAMPLE, "--idempotency-key", "k1", "--json")
        b = json.loads(retry.stdout) if retry.returncode == 0 else {}
        check.expect(b.get("existed") and b.get("experiment") == 1 and b.get("trials") == a.get("trials"),
                     "a retried request (same idempotency key) returns the first result")
        again = cli("create", EXAMPLE, "--json")
        c = json.loads(again.stdout) if again.returncode == 0 else {}
        check.expect(c.get("experiment") == 2 and c.get("reused_trials") == 6 and c.get("trials") == a.get("trials"),
                     "the same grid submitted anew shares all 6 trials: none is run twice")

        bad = os.path.join(args.dir, "bad.yaml")
        with open(bad, "w") as f:
            f.write("name: bad\nkind: pretrain\ndataset: fmnist\nhyperparameters: {model.mask_ratioo: [0.5]}\n")
        r = cli("create", bad)
        check.expect(r.returncode != 0 and "unknown key 'model.mask_ratioo'" in r.stderr
                     and "INVALID_ARGUMENT" in r.stderr,
                     f"the coordinator refuses a trial config the trainer rejects: {r.stderr.strip()[-120:]}")
        with open(bad, "w") as f:
            f.write("name: bad\nkind: pretrain\ndataset: fmnist\nsearcher: {nmae: grid}\n")
        r = cli("create", bad)
        check.expect(r.returncode != 0 and "unknown key 'searcher.nmae'" in r.stderr,
                     "an unknown key in the file is named")
        r = cli("describe", "42")
        check.expect(r.returncode != 0 and "NOT_FOUND" in r.stderr and "no experiment 42" in r.stderr,
                     "an unknown experiment id: NOT_FOUND with the id")
        check.expect(proc.poll() is None, "the daemon is still up after the bad requests")

        twin = subprocess.run([args.coordinator, "--db", db, "--runs", os.path.join(args.dir, "runs"),
                               "--listen", "127.0.0.1:0", *credentials.server_args()], capture_output=True,
                              text=True, timeout=60)
        check.expect(twin.returncode == 3 and "lock" in twin.stderr.lower(),
                     f"a second coordinator on the same state is refused: {twin.stderr.strip()[-100:]}")

        before = cli("describe", "1", "--json").stdout
        listed = cli("list", "--json").stdout
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc, port = start(args.coordinator, db, credentials, port)
        after = cli("describe", "1", "--json").stdout
        check.expect(before and after == before and cli("list", "--json").stdout == listed,
                     "after SIGKILL and a restart every experiment and trial is there, unchanged")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        check.expect(code == 0, f"SIGTERM stops the coordinator cleanly (exit {code})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    print(f"coordinator test: {'PASS' if check.failures == 0 else str(check.failures) + ' FAILURES'}")
    return 0 if check.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
