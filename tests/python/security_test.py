"""Security with real processes on 127.0.0.1: a coordinator and a worker with a real trainer,
all with credentials from `maestro cluster init`.

1. While a trial runs, an attacker holding credentials of its own (a second enrolled worker,
   w2, and a user token, mallory) replays the attacks of an open cluster: a forged exit report
   for the running trial naming a checkpoint of /etc/passwd (as the victim worker, with its
   own worker token and with its user token), a registration with the victim's worker id, log
   chunks for an attempt it does not hold, a cancel of another user's experiment, a
   re-pointing of another user's dataset; and every call without a credential or with a
   revoked one. Each is refused with its code; the trial completes with the loss of an
   undisturbed run of the same config, its checkpoint its own; the stored experiments, trials
   and events are unchanged apart from the trial's own progress; the refusals are counted in
   maestro_coordinator_auth_failures_total.
2. No secret is on a command line or in an environment: the trainer's data token comes in a
   file of mode 0600.
3. A worker pointed at a coordinator whose certificate another CA signed refuses to talk to it
   and says why; it creates nothing.
Exit status 0 when everything holds.
"""
import argparse
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.request

from run_util import Checker, Credentials, free_port, live_processes, start_listening

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FMNIST = "/usr/share/datasets/fashion-mnist"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    for flag in ("--maestro", "--coordinator", "--worker", "--train", "--attack", "--dir"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    check = Checker()
    shards = os.path.join(args.dir, "shards")
    subprocess.run([args.maestro, "data", "ingest", "--format", "idx", "--src", FMNIST, "--out", shards,
                    "--split", "train", "--shards", "2"], check=True, capture_output=True, timeout=300)
    credentials = Credentials(args.maestro, args.dir)
    address = f"127.0.0.1:{free_port()}"
    coordinator, m = start_listening(
        [args.coordinator, "--db", os.path.join(args.dir, "db"), "--runs", os.path.join(args.dir, "runs"),
         "--listen", address, "--metrics-listen", "127.0.0.1:0", "--heartbeat-ms", "300", "--data-root", args.dir,
         *credentials.server_args()], r"listening on port (\d+), metrics on port (\d+)")
    metrics_port = int(m.group(2))
    coordinator_log = []
    threading.Thread(target=lambda: coordinator_log.extend(coordinator.stdout), daemon=True).start()
    processes = [coordinator]

    def cli(*words, token=None, check_ok=True):
        env = dict(os.environ)
        if token:
            env["MAESTRO_TOKEN_FILE"] = token
        r = subprocess.run([args.maestro, *words, "--coordinator", address], capture_output=True, text=True,
                           timeout=120, env=env)
        if check_ok and r.returncode != 0:
            raise RuntimeError(f"maestro {' '.join(words)}: {r.stderr.strip()}")
        return r

    def cli_json(*words, token=None):
        return [json.loads(line) for line in cli(*words, "--json", token=token).stdout.splitlines() if line]

    try:
        owner = credentials.token(address, "user", "owner")
        mallory = credentials.token(address, "user", "mallory")
        w2 = credentials.enroll(address, "w2")  # enrolled, but its daemon never runs
        work = os.path.join(args.dir, "w1")
        worker = subprocess.Popen([args.worker, "--coordinator", address, "--id", "w1", "--slots", "1",
                                   "--work-dir", work, "--runs-root", os.path.join(args.dir, "runs"),
                                   "--data-root", args.dir, *credentials.worker_args(address, "w1")],
                                  stdout=open(os.path.join(args.dir, "w1.log"), "w"), stderr=subprocess.STDOUT)
        processes.append(worker)
        cli("dataset", "register", "fmnist", "--path", shards, token=owner)
        experiment_file = os.path.join(args.dir, "one.yaml")
        with open(experiment_file, "w") as f:
            f.write(f"name: one\nkind: pretrain\ndataset: fmnist\nconfig: {ROOT}/configs/fmnist_pretrain.yaml\n"
                    "hyperparameters:\n  optim.batch_size: 32\n  run.threads: 1\n  data.num_workers: 1\n"
                    "  log.interval_steps: 5\n  optim.warmup_epochs: 0.01\n  optim.max_steps: 150\n"
                    "searcher: {name: grid}\n")
        created = json.loads(cli("experiment", "create", experiment_file, "--json", token=owner).stdout)
        experiment, trial = created["experiment"], created["trials"][0]

        def describe():
            return cli_json("experiment", "describe", str(experiment))[0]

        deadline = time.time() + 180
        while time.time() < deadline:
            t = describe()["trials"][0]
            if t["state"] == "running":
                break
            time.sleep(0.3)
        check.expect(t["state"] == "running", f"the trial runs on w1 (state {t['state']})")
        attempt = t["attempt"]
        events_before = cli_json("event", "list")
        experiments_before = cli_json("experiment", "list")
        datasets_before = cli_json("dataset", "list")

        # 1. The attacks, while the trial runs.
        def attack(kind, token, *extra):
            r = subprocess.run([args.attack, kind, "--address", address, "--ca", credentials.ca,
                                "--token-file", token, "--trial", str(trial), "--attempt", str(attempt), *extra],
                               capture_output=True, text=True, timeout=60)
            return r.stdout.split(" ", 1)[0] if r.returncode == 0 else f"tool failed: {r.stderr.strip()}"

        revoked = credentials.token(address, "admin", "leaked")
        cli("token", "revoke", open(revoked).read().strip()[5:21])
        cases = [
            ("a forged exit (completed, checkpoint /etc/passwd) as w1 with w2's token", "PERMISSION_DENIED",
             attack("exit", w2, "--worker", "w1", "--checkpoint", "/etc/passwd")),
            ("the same forged exit with a user token", "PERMISSION_DENIED",
             attack("exit", mallory, "--worker", "w1", "--checkpoint", "/etc/passwd")),
            ("the same forged exit as w2 itself (it holds no such attempt)", "ABORTED",
             attack("exit", w2, "--worker", "w2", "--checkpoint", "/etc/passwd")),
            ("a registration with the live worker's id w1 (w2's token)", "PERMISSION_DENIED",
             attack("register", w2, "--worker", "w1")),
            ("log chunks for w1's attempt (w2's token)", "PERMISSION_DENIED",
             attack("log", w2, "--worker", "w1", "--attempt", "-1")),
            ("a forged exit with a revoked admin token", "UNAUTHENTICATED",
             attack("exit", revoked, "--worker", "w1")),
        ]
        for what, want, got in cases:
            check.expect(got == want, f"{what}: {got}")
        r = cli("experiment", "cancel", str(experiment), token=mallory, check_ok=False)
        check.expect(r.returncode != 0 and "PERMISSION_DENIED" in r.stderr,
                     f"another user's cancel is refused: {r.stderr.strip()[-90:]}")
        r = cli("dataset", "register", "fmnist", "--path", shards, token=mallory, check_ok=False)
        check.expect(r.returncode != 0 and ("PERMISSION_DENIED" in r.stderr or "NOT_FOUND" in r.stderr),
                     f"re-pointing another user's dataset is refused: {r.stderr.strip()[-90:]}")
        evil = os.path.join(args.dir, "evil")
        os.makedirs(os.path.join(evil, "train"))
        with open(os.path.join(evil, "train", "manifest.json"), "w") as f:
            json.dump({"content_hash": "e" * 64, "count": 10}, f)
        r = cli("dataset", "register", "fmnist", "--path", evil, token=mallory, check_ok=False)
        check.expect(r.returncode != 0 and "PERMISSION_DENIED" in r.stderr,
                     f"re-pointing another user's dataset at a folder of its own is refused: {r.stderr.strip()[-90:]}")
        os.environ.pop("MAESTRO_TOKEN_FILE")
        r = cli("experiment", "cancel", str(experiment), check_ok=False)
        check.expect(r.returncode != 0 and "UNAUTHENTICATED" in r.stderr,
                     f"a cancel without a credential is refused: {r.stderr.strip()[-90:]}")
        os.environ["MAESTRO_TOKEN_FILE"] = credentials.admin_token_file
        check.expect(worker.poll() is None and describe()["trials"][0]["attempt"] == attempt,
                     "the real worker still runs its attempt")

        # 2. No secret on a command line or in an environment.
        secrets = [open(p).read().strip() for p in (credentials.admin_token_file, owner, mallory, w2,
                                                     os.path.join(credentials.dir, "worker-w1.token"))]
        token_files = [f for f in os.listdir(os.path.join(work, "secrets"))]
        secrets += [open(os.path.join(work, "secrets", f)).read().strip() for f in token_files]
        leaks = [pid for pid, cmd, environ in live_processes()
                 if any(s in cmd or s.encode() in environ for s in secrets)]
        modes = {f: stat.S_IMODE(os.stat(os.path.join(work, "secrets", f)).st_mode) for f in token_files}
        check.expect(token_files and not leaks and all(mode == 0o600 for mode in modes.values()),
                     f"no token in any process's command line or environment ({len(secrets)} secrets, "
                     f"leaks in {leaks}); the trainer's data token file is mode 0600 ({modes})")

        # The trial finishes undisturbed.
        deadline = time.time() + 300
        while time.time() < deadline and describe()["trials"][0]["state"] not in ("completed", "failed", "canceled"):
            time.sleep(0.5)
        t = describe()["trials"][0]
        result = t.get("results", {}).get("pretrain") or {}
        check.expect(t["state"] == "completed" and t["attempt"] == attempt
                     and result.get("checkpoint", "").startswith(os.path.join(args.dir, "runs")),
                     f"the trial completes in its attempt with its own checkpoint ({t['state']}, attempt "
                     f"{t['attempt']}, {result.get('checkpoint')})")
        config = os.path.join(work, "configs", f"trial-{trial}-attempt-{attempt}.json")
        alone = os.path.join(args.dir, "undisturbed")
        r = subprocess.run([args.train, "pretrain", "--config", config, "--set", f"run.output_dir={alone}",
                            "--set", f"checkpoint.dir={alone}/checkpoints"], capture_output=True, text=True,
                           timeout=600)
        undisturbed = json.load(open(os.path.join(alone, "result.json"))) if r.returncode == 0 else {}
        check.expect(undisturbed.get("final_train_loss") == result.get("final_train_loss"),
                     f"its loss equals an undisturbed run's ({result.get('final_train_loss')} vs "
                     f"{undisturbed.get('final_train_loss')})")
        events_after = cli_json("event", "list")
        new = events_after[len(events_before):]
        foreign = [e for e in new if e.get("trial") != trial and e["kind"] not in ("token_created", "token_revoked")]
        by_attacker = [e for e in new if any(name in e.get("by", "") for name in ("mallory", "w2:"))]
        check.expect(events_after[:len(events_before)] == events_before and not foreign and not by_attacker
                     and cli_json("dataset", "list") == datasets_before
                     and [(e["id"], e["name"], e["dataset"], e["trials"]) for e in cli_json("experiment", "list")]
                     == [(e["id"], e["name"], e["dataset"], e["trials"]) for e in experiments_before],
                     f"experiments, datasets and events are unchanged but for the trial's own progress "
                     f"({len(new)} new events: {sorted(set(e['kind'] for e in new))}; foreign {foreign}, "
                     f"by the attacker {by_attacker}; experiments {cli_json('experiment', 'list')} vs "
                     f"{experiments_before})")
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        counted = {m.group(1): float(m.group(2)) for m in
                   re.finditer(r'maestro_coordinator_auth_failures_total\{reason="(\w+)"\} (\S+)', body)}
        check.expect(all(counted.get(r, 0) >= 1 for r in ("worker_id", "role", "revoked", "missing", "owner")),
                     f"every refusal is counted by reason: {counted}")
        logged = "".join(coordinator_log)
        check.expect("refused ReportTrialExit from ipv4:127.0.0.1" in logged and "credential 'w2'" in logged
                     and not any(s in logged for s in secrets),
                     "refusals are logged with the peer and the credential's name, never a secret")
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)

        # 3. A worker pointed at a coordinator of another cluster.
        impostor_dir = os.path.join(args.dir, "impostor")
        r = subprocess.run([args.maestro, "cluster", "init", "--dir", os.path.join(impostor_dir, "cluster")],
                           capture_output=True, text=True, timeout=60)
        impostor_address = f"127.0.0.1:{free_port()}"
        impostor, _ = start_listening(
            [args.coordinator, "--db", os.path.join(impostor_dir, "db"), "--runs", os.path.join(impostor_dir, "runs"),
             "--listen", impostor_address, "--credentials", os.path.join(impostor_dir, "cluster")],
            r"listening on port (\d+)")
        processes.append(impostor)
        fooled_work = os.path.join(args.dir, "fooled")
        fooled = subprocess.Popen([args.worker, "--coordinator", impostor_address, "--id", "w1", "--slots", "1",
                                   "--work-dir", fooled_work, "--runs-root", os.path.join(args.dir, "runs"),
                                   *credentials.worker_args(address, "w1")],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(fooled)
        time.sleep(4)
        fooled.send_signal(signal.SIGTERM)
        said = fooled.communicate(timeout=60)[0]
        check.expect("does not verify against the cluster CA" in said and "registered" not in said,
                     f"a worker refuses a coordinator whose certificate another CA signed, saying why: "
                     f"{said.strip().splitlines()[0][-160:] if said.strip() else '(nothing)'}")
        check.expect(sorted(os.listdir(fooled_work)) == ["configs", "lease", "logs", "secrets"]
                     and not os.listdir(os.path.join(fooled_work, "logs"))
                     and not os.path.exists(os.path.join(impostor_dir, "runs", "trial-1")),
                     "it created nothing for the impostor")
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in processes:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print(f"security test: {'PASS' if check.failures == 0 else str(check.failures) + ' FAILURES'}")
    return 0 if check.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
