"""The two fault windows of Hardening I, with real processes and real signals on 127.0.0.1.

1. The coordinator SIGKILLed and started again within 2 s while a trial runs: the worker
   registers again before its lease runs out, so the trainer keeps running (the same pid the
   whole time) and no preemption is recorded.
2. A worker daemon frozen with SIGSTOP for 30 s while its trial runs, for a 1-slot trial and a
   2-rank `mpirun` trial: the trainer ranks notice the worker's lease is not renewed and stop
   themselves before the coordinator starts the trial on the other worker, so a /proc watcher
   never sees trainers of two attempts of the trial alive at once; the trial completes there.
Exit status 0 when everything holds.
"""
import argparse
import os
import re
import shutil
import signal
import sys
import threading
import time

from orchestration_test import Cluster, write_experiment
from run_util import Checker, ingest_fmnist, live_processes


def trainers_of(trial, root):
    """{pid: attempt} of the live maestro-train processes of `trial` (ranks included) that this
    test's workers started (their config lies under `root`: other tests run trials too)."""
    out = {}
    for pid, cmd, environ in live_processes():
        if "maestro-train" not in cmd.split(" ")[0] or root not in cmd:
            continue
        fields = dict(item.split(b"=", 1) for item in environ.split(b"\0") if b"=" in item)
        if fields.get(b"MAESTRO_TRIAL") == str(trial).encode():
            out[pid] = int(fields.get(b"MAESTRO_ATTEMPT", b"0"))
    return out


class Watcher:
    """Samples the trial's trainers every 20 ms: the most attempts ever alive at once."""

    def __init__(self, trial, root):
        self.trial, self.root, self.most, self.stop, self.seen = trial, root, 0, False, set()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            alive = trainers_of(self.trial, self.root)
            self.seen |= set(alive.values())
            self.most = max(self.most, len(set(alive.values())))
            time.sleep(0.02)

    def finish(self):
        self.stop = True
        self.thread.join(timeout=5)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    for flag in ("--maestro", "--coordinator", "--worker", "--train", "--dir"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    check = Checker()
    shards = ingest_fmnist(args.maestro, os.path.join(args.dir, "shards"))
    cluster = Cluster(args)
    try:
        cluster.start_coordinator(worker_timeout_s=10, heartbeat_ms=1000)  # the defaults: a 5 s lease
        cluster.start_worker("w1", slots=2)
        cluster.cli("dataset", "register", "fmnist", "--path", shards)

        def one_trial(name, hparams, extra=""):
            path = write_experiment(os.path.join(args.dir, f"{name}.yaml"), name, hparams, extra=extra)
            created = cluster.create(path)
            return created["experiment"], created["trials"][0]

        def wait_step(experiment, step, timeout=180):
            deadline = time.time() + timeout
            while time.time() < deadline:
                t = cluster.trials(experiment)[0]
                if t.get("progress", {}).get("step", 0) >= step:
                    return t
                time.sleep(0.2)
            return cluster.trials(experiment)[0]

        # 1. A coordinator blip.
        experiment, trial = one_trial("blip", {"optim.max_steps": 300, "model.mask_ratio": 0.6},
                                      "checkpoint: {interval_steps: 50}")
        t = wait_step(experiment, 10)
        before = trainers_of(trial, args.dir)
        killed_at = time.time()
        cluster.coordinator.send_signal(signal.SIGKILL)
        cluster.coordinator.wait(timeout=30)
        time.sleep(1.9)
        cluster.start_coordinator(worker_timeout_s=10, heartbeat_ms=1000)
        restarted = time.time() - killed_at
        time.sleep(8)
        after = trainers_of(trial, args.dir)
        log = open(os.path.join(args.dir, "w1.log")).read()
        registered = log.count("registered with")
        events = cluster.events()
        preempted = [e for e in events if e.get("kind") in ("trial_preempted", "trial_assignment_lost")
                     and e.get("trial") == trial]
        silent = re.findall(r"reachable again, (\d+) ms after its last answer", log)
        check.expect(before and after == before and registered >= 2 and not preempted and "stopping" not in log,
                     f"a coordinator back after {restarted:.1f} s: the trainer kept running (pids {sorted(before)} "
                     f"-> {sorted(after)}), the worker heard from it again {silent[-1:]} ms after its last answer "
                     f"(its lease: 5000 ms), no preemption ({len(preempted)})")
        cluster.cli("experiment", "cancel", str(experiment))

        # 2. A frozen worker, for a 1-slot trial and a 2-rank mpirun trial.
        cluster.start_worker("w2", slots=2)
        for name, slots in (("frozen-1", 1), ("frozen-2", 2)):
            deadline = time.time() + 60
            while time.time() < deadline and trainers_of(trial, args.dir):
                time.sleep(0.2)  # the previous trial's trainers are gone
            experiment, trial = one_trial(name, {"optim.max_steps": 500, "model.mask_ratio": 0.55 + slots / 100},
                                          f"resources: {{slots_per_trial: {slots}}}\nmax_restarts: 3\n"
                                          "checkpoint: {interval_steps: 20}")
            t = wait_step(experiment, 5)
            victim = t.get("worker")
            watcher = Watcher(trial, args.dir)
            worker = cluster.workers[victim]
            worker.send_signal(signal.SIGSTOP)
            frozen_at = time.time()
            time.sleep(30)
            worker.send_signal(signal.SIGCONT)
            deadline = time.time() + 240
            while time.time() < deadline and cluster.trials(experiment)[0]["state"] not in ("completed", "failed"):
                time.sleep(0.5)
            watcher.finish()
            final = cluster.trials(experiment)[0]
            check.expect(watcher.most == 1 and len(watcher.seen) >= 2 and final["state"] == "completed"
                         and final.get("worker") != victim,
                         f"{slots}-rank trial, worker {victim} frozen for 30 s: at most {watcher.most} attempt alive "
                         f"at once (attempts seen {sorted(watcher.seen)}), {final['state']} on {final.get('worker')}")
            logs = os.path.join(args.dir, victim, "logs")
            said = [line for name in sorted(os.listdir(logs)) if name.startswith(f"trial-{trial}-attempt-")
                    for line in open(os.path.join(logs, name), errors="replace") if "lease" in line]
            check.expect(any("has not renewed its lease" in line for line in said),
                         f"the trainer said why it stopped: {said[:1]}")
    finally:
        cluster.stop()
    print(f"{check.failures} failure(s)")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
