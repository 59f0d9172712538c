"""The coordinator's Slurm backend against a real two-node Slurm (tools/slurm_cluster.sh): each
attempt one batch job whose `maestro-worker --one-attempt` reports over TLS from its node's
network namespace to the coordinator at 10.233.0.1.

0. The reference: the same experiments through a coordinator with a standing worker daemon.
1. A 4-trial grid through Slurm ends with the same final losses, to the bit, as through the
   worker; its experiment name is hostile shell text that reaches no batch script and runs
   nothing; each trial was one job.
2. While a job runs: its credential is a 0600 file in a 0700 folder, and its text is in no
   `scontrol show job`, `squeue` line, command line or environment of the job's processes.
3. Preemption the Slurm way: `scancel --signal=USR1 --batch` of a running trial's job -> the
   trainer checkpoints, the attempt ends preempted (no restart spent), the next attempt is a new
   job submitted only after the first left the queue, and the run ends bitwise equal to the
   uninterrupted reference.
4. The coordinator SIGKILLed mid-sweep and started again on its store: it finds its running jobs
   by name and follows them by id; each trial keeps its one job and attempt (adopted), none is
   submitted twice, none lost.
5. A 2-node x 1-rank CPU trial (mpirun over the allocation): a node fails under it (every process
   in its namespace killed; Slurm marks it down after SlurmdTimeout), the attempt ends with one
   restart, the node comes back, and the trial completes from its last checkpoint within 1e-5
   relative per tensor of one process at the double batch.
A watcher polls squeue throughout: no trial ever has two jobs Slurm has not ended. The cluster
comes up and goes down within the test. Exit status 0 when everything holds.
"""
import argparse
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

from dist_util import expect_close, weights
from orchestration_test import FAST, ROOT
from run_util import (Checker, CoordinatorCli, Credentials, checkpoint_path, free_port, live_processes,
                      start_listening)
from slurm_test import CLUSTER, cluster_down, cluster_up

CTL = "10.233.0.1"  # the coordinator's address on the test cluster's bridge
SUBNET = "10.233.0.0/24"
HOSTILE = "grid'; touch {marker}; echo \"$(touch {marker})\" `touch {marker}` $HOME"
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
         "BOOT_FAIL", "DEADLINE")


def experiment(path, name, hparams, extra=""):
    values = dict(FAST)
    values.update(hparams)
    lines = [f"name: {json.dumps(name)}", "kind: pretrain", "dataset: fmnist",
             f"config: {ROOT}/configs/fmnist_pretrain.yaml", "hyperparameters:"]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in values.items()]
    lines += ["searcher: {name: grid}", "checkpoint: {interval_steps: 20, keep_last: 20}", extra]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Coordinator(CoordinatorCli):
    """maestro-coordinator with its store and runs folder under `folder`; the CLI against it."""

    def __init__(self, args, folder, credentials, listen, extra):
        self.args, self.folder, self.extra = args, folder, extra
        self.maestro, self.address = args.maestro, listen
        self.credentials = credentials
        self.runs = os.path.join(folder, "runs")
        self.proc = None
        self.worker = None

    def start(self):
        self.proc, _ = start_listening(
            [self.args.coordinator, "--db", os.path.join(self.folder, "db"), "--runs", self.runs,
             "--listen", self.address, "--data-root", self.args.dir, "--heartbeat-ms", "300",
             "--worker-timeout-s", "10", "--grace-s", "20", *self.credentials.server_args(), *self.extra],
            r"listening on port (\d+)")
        log = open(os.path.join(self.folder, "coordinator.log"), "a")
        threading.Thread(target=lambda: shutil.copyfileobj(self.proc.stdout, log), daemon=True).start()

    def start_worker(self, name):
        self.worker = subprocess.Popen(
            [self.args.worker, "--coordinator", self.address, "--id", name, "--slots", "2",
             "--work-dir", os.path.join(self.folder, name), "--runs-root", self.runs, "--data-root", self.args.dir,
             *self.credentials.worker_args(self.address, name)],
            stdout=open(os.path.join(self.folder, f"{name}.log"), "a"), stderr=subprocess.STDOUT)

    def create(self, path):
        return self.cli_json("experiment", "create", path)[0]["experiment"]

    def stop(self):
        for proc in (self.worker, self.proc):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def squeue(env):
    r = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%i|%j|%T"],
                       capture_output=True, text=True, env=env, timeout=30)
    return [line.split("|") for line in r.stdout.splitlines() if line.count("|") == 2]


class Watcher(threading.Thread):
    """Polls squeue: the most jobs of one trial Slurm had not ended at once."""

    def __init__(self, env):
        super().__init__(daemon=True)
        self.env, self.stop, self.worst, self.seen = env, False, {}, {}

    def run(self):
        while not self.stop:
            live = {}
            for job, name, state in squeue(self.env):
                if name.startswith("maestro-"):
                    trial = tuple(name.split("-")[1:3])  # (runs tag, trial)
                    self.seen.setdefault(trial, set()).add(job)
                    if state not in ENDED:
                        live[trial] = live.get(trial, 0) + 1
            for trial, n in live.items():
                self.worst[trial] = max(self.worst.get(trial, 0), n)
            time.sleep(0.2)


def job_of(env, trial, states=("RUNNING",)):
    for job, name, state in squeue(env):
        if name.startswith("maestro-") and name.split("-")[2] == str(trial) and state in states:
            return job
    return None


def wait_checkpoint(out, step, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline and not os.path.exists(os.path.join(checkpoint_path(out, step), "manifest.json")):
        time.sleep(0.2)


def final_losses(trials):
    return {json.dumps(t["hparams"], sort_keys=True): t["results"]["pretrain"]["final_train_loss"]
            for t in trials}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    for flag in ("maestro", "coordinator", "worker", "train", "dir"):
        parser.add_argument("--" + flag, required=True)
    args = parser.parse_args()
    cluster = os.path.join(args.dir, "slurm-cluster")  # (Credentials take <dir>/cluster)
    check = Checker()
    up, env = cluster_up(args.dir, cluster)
    os.environ["SLURM_CONF"] = env["SLURM_CONF"]
    reference = slurm = watcher = None
    try:
        check.expect(up.returncode == 0, f"the test cluster comes up: {up.stderr.strip()[-300:]}")
        if up.returncode != 0:
            return 1
        credentials = Credentials(args.maestro, args.dir, hosts=[CTL])
        shards = os.path.join(args.dir, "shards")
        subprocess.run([args.maestro, "data", "ingest", "--format", "idx", "--src", "/usr/share/datasets/fashion-mnist",
                        "--out", shards, "--split", "train", "--shards", "2"], check=True, capture_output=True, timeout=300)
        marker = os.path.join(args.dir, "pwned")
        grid_values = {"model.mask_ratio": [0.5, 0.75], "model.decoder_depth": [1, 2], "optim.max_steps": 20}
        long_values = {"model.mask_ratio": 0.6, "optim.max_steps": 160}
        gang_steps = 100
        files = {
            "grid": experiment(os.path.join(args.dir, "grid.yaml"), HOSTILE.format(marker=marker), grid_values),
            "long": experiment(os.path.join(args.dir, "long.yaml"), "long", long_values),
            "gang-ref": experiment(os.path.join(args.dir, "gang-ref.yaml"), "gang-ref",
                                   {"model.mask_ratio": 0.7, "optim.max_steps": gang_steps, "optim.batch_size": 64}),
            "timeout": experiment(os.path.join(args.dir, "timeout.yaml"), "timeout",
                                  {"model.mask_ratio": 0.62, "optim.max_steps": 160}),
            "cancel": experiment(os.path.join(args.dir, "cancel.yaml"), "cancel",
                                 {"model.mask_ratio": 0.45, "optim.max_steps": 100000}),
            "adopt": experiment(os.path.join(args.dir, "adopt.yaml"), "adopt",
                                {"model.mask_ratio": [0.55, 0.65], "optim.max_steps": 200}),
            "gang": experiment(os.path.join(args.dir, "gang.yaml"), "gang",
                               {"model.mask_ratio": 0.7, "optim.max_steps": gang_steps},
                               extra="resources: {slots_per_trial: 1, nodes: 2}\nmax_restarts: 3"),
        }

        # 0. The reference: a standing worker.
        reference = Coordinator(args, os.path.join(args.dir, "workers"), credentials, f"127.0.0.1:{free_port()}", [])
        reference.start()
        r = reference.cli("dataset", "register", "fmnist", "--path", shards)
        check.expect(r.returncode == 0, f"dataset registered with the reference coordinator {r.stderr.strip()}")
        reference.start_worker("w1")
        ref = {name: reference.create(files[name]) for name in ("grid", "long", "gang-ref")}
        ref_trials = {name: reference.wait(exp, lambda ts: all(t["state"] == "completed" for t in ts), name)
                      for name, exp in ref.items()}
        reference.stop()

        # 1. The same grid through Slurm.
        address = f"{CTL}:{free_port()}"
        slurm_flags = ["--backend", "slurm", "--slurm-partition", "debug", "--slurm-poll-ms", "300",
                       "--slurm-env", "OMPI_MCA_btl=self,tcp", "--slurm-env", f"OMPI_MCA_btl_tcp_if_include={SUBNET}",
                       "--slurm-env", f"OMPI_MCA_oob_tcp_if_include={SUBNET}"]
        slurm = Coordinator(args, os.path.join(args.dir, "slurm"), credentials, address, slurm_flags)
        slurm.start()
        watcher = Watcher(env)
        watcher.start()
        r = slurm.cli("dataset", "register", "fmnist", "--path", shards)
        check.expect(r.returncode == 0, f"dataset registered with the Slurm coordinator {r.stderr.strip()}")
        grid = slurm.create(files["grid"])
        trials = slurm.wait(grid, lambda ts: all(t["state"] in ("completed", "failed") for t in ts), "the grid")
        got, want = final_losses(trials), final_losses(ref_trials["grid"])
        check.expect(len(got) == 4 and got == want and all(t["state"] == "completed" for t in trials),
                     f"a 4-trial grid through Slurm ends with the worker's final losses, to the bit: {sorted(got.values())}")
        submitted = [e for e in slurm.events() if e["kind"] == "slurm_job_submitted"]
        check.expect(sorted(e["trial"] for e in submitted) == sorted(t["id"] for t in trials)
                     and all(t["attempt"] == 1 for t in trials),
                     f"each trial was one batch job ({[(e['trial'], e['job_id']) for e in submitted]})")
        scripts = []
        for base, _, names in os.walk(slurm.runs):
            scripts += [open(os.path.join(base, n)).read() for n in names if n == "job.sh"]
        check.expect(not os.path.exists(marker) and len(scripts) == 4 and not any("touch" in s for s in scripts),
                     "the hostile experiment name reached no batch script and ran nothing")

        def past_checkpoint(name, step=40):
            """Experiment `name` created and its trial past checkpoint `step`: (experiment, trial,
            its output folder, its running job)."""
            exp = slurm.create(files[name])
            trial = slurm.trials(exp)[0]
            out = os.path.join(slurm.runs, f"trial-{trial['id']}", "pretrain")
            wait_checkpoint(out, step)
            return exp, trial, out, job_of(env, trial["id"])

        # 2 and 3. A long trial: its secrets while it runs, then preempted the Slurm way.
        long, trial, out, job = past_checkpoint("long")
        folder = os.path.join(slurm.runs, f"trial-{trial['id']}", "slurm", "attempt-1")
        token_file = os.path.join(folder, "worker.token")
        check.expect(job is not None and os.path.exists(token_file), f"the trial runs as Slurm job {job}")
        if job is not None and os.path.exists(token_file):
            token = open(token_file).read().strip()
            shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, env=env).stdout
            listed = subprocess.run(["squeue", "--noheader", "--format=%all"], capture_output=True, text=True, env=env).stdout
            procs = [(cmd, environ) for _, cmd, environ in live_processes() if folder in cmd or "slurm-" in cmd]
            check.expect(stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
                         and stat.S_IMODE(os.stat(folder).st_mode) == 0o700,
                         "the job's credential is a file of mode 0600 in a folder of mode 0700")
            check.expect(len(token) > 16 and token not in shown and token not in listed and procs
                         and not any(token in cmd or token.encode() in environ for cmd, environ in procs),
                         f"its text is in no scontrol show job, squeue line, command line or environment "
                         f"({len(procs)} processes read)")
            subprocess.run(["scancel", "--signal=USR1", "--batch", job], env=env, timeout=30)
        trials = slurm.wait(long, lambda ts: ts[0]["state"] in ("completed", "failed"), "the preempted trial")
        t = trials[0]
        kinds = [e["kind"] for e in slurm.events() if e.get("trial") == t["id"]]
        long_jobs = [e["job_id"] for e in slurm.events() if e["kind"] == "slurm_job_submitted" and e["trial"] == t["id"]]
        check.expect(t["state"] == "completed" and t["restarts"] == 0 and t["attempt"] == 2
                     and "trial_preempted" in kinds and len(set(long_jobs)) == 2,
                     f"SIGUSR1 to the job: checkpoint, preempted for free, resumed as a new job "
                     f"(state {t['state']}, restarts {t['restarts']}, attempt {t['attempt']}, jobs {long_jobs})")
        if t["state"] == "completed":
            a = weights(os.path.join(reference.runs, f"trial-{ref_trials['long'][0]['id']}", "pretrain"), 160)
            b = weights(out, 160)
            check.expect(set(a) == set(b) and all((a[k] == b[k]).all() for k in a),
                         "the preempted run's final parameters are bitwise equal to the uninterrupted run's")

        # 3b. The time-limit warning (what --signal=B:USR2@N sends): a timeout, one restart.
        timeout, t, out, job = past_checkpoint("timeout")
        subprocess.run(["scancel", "--signal=USR2", "--batch", str(job)], env=env, timeout=30)
        t = slurm.wait(timeout, lambda ts: ts[0]["state"] in ("completed", "failed"), "the timed-out trial")[0]
        causes = [f["cause_kind"] for f in t.get("failures", [])]
        check.expect(job is not None and t["state"] == "completed" and t["restarts"] == 1 and causes == ["timeout"],
                     f"the job's time-limit warning: checkpoint, one restart (a timeout), resumed and completed "
                     f"(state {t['state']}, restarts {t['restarts']}, causes {causes})")

        # 3c. `experiment cancel`: the running job gets the grace signal, the trial ends canceled,
        #     the job leaves the queue.
        cancel = slurm.create(files["cancel"])
        t = slurm.wait(cancel, lambda ts: ts[0]["state"] == "running", "the trial to cancel")[0]
        job = job_of(env, t["id"])
        r = slurm.cli("experiment", "cancel", str(cancel))
        t = slurm.wait(cancel, lambda ts: ts[0]["state"] in ("canceled", "failed", "completed"), "the cancel")[0]
        deadline = time.time() + 60
        while time.time() < deadline and job_of(env, t["id"], states=("PENDING", "RUNNING", "COMPLETING")):
            time.sleep(0.5)
        log = os.path.join(slurm.runs, f"trial-{t['id']}", "slurm", "attempt-1", "logs", f"trial-{t['id']}-attempt-1.log")
        text = open(log).read() if os.path.exists(log) else ""
        check.expect(r.returncode == 0 and job is not None and t["state"] == "canceled"
                     and job_of(env, t["id"], states=("PENDING", "RUNNING", "COMPLETING")) is None
                     and "preempted by signal" in text,
                     f"experiment cancel: the job's trainer stopped at the grace signal with a checkpoint, the trial "
                     f"is {t['state']}, job {job} left the queue")

        # A standing worker has no place here.
        stray = subprocess.run([args.worker, "--coordinator", address, "--id", "stray", "--work-dir",
                                os.path.join(args.dir, "stray"), "--runs-root", slurm.runs,
                                *credentials.worker_args(address, "stray")],
                               capture_output=True, text=True, timeout=60)
        check.expect(stray.returncode == 2 and "takes no standing worker" in stray.stdout + stray.stderr,
                     f"a standing worker is refused by a coordinator run --backend slurm (exit {stray.returncode})")

        # 4. The coordinator SIGKILLed mid-sweep, then started again: its jobs re-adopted.
        adopt = slurm.create(files["adopt"])
        slurm.wait(adopt, lambda ts: all(t["state"] == "running" for t in ts), "both trials running")
        before = {t["id"]: job_of(env, t["id"]) for t in slurm.trials(adopt)}
        slurm.proc.send_signal(signal.SIGKILL)
        slurm.proc.wait()
        time.sleep(1)
        slurm.start()
        trials = slurm.wait(adopt, lambda ts: all(t["state"] in ("completed", "failed") for t in ts), "the sweep")
        events = slurm.events()
        jobs = {t["id"]: [e["job_id"] for e in events if e["kind"] == "slurm_job_submitted" and e["trial"] == t["id"]]
                for t in trials}
        adopted = {e["trial"] for e in events if e["kind"] == "trial_adopted"}
        check.expect(all(t["state"] == "completed" and t["attempt"] == 1 and t["restarts"] == 0 for t in trials)
                     and all(jobs[i] == [before[i]] for i in jobs) and adopted >= set(jobs),
                     f"after a SIGKILL the restarted coordinator re-adopted the running jobs by id: {before} -> "
                     f"{jobs}, adopted {sorted(adopted)}, attempts {[t['attempt'] for t in trials]}")

        # 5. A node fails under a running 2-node trial.
        gang, t, out, _ = past_checkpoint("gang")
        log = os.path.join(slurm.runs, f"trial-{t['id']}", "slurm", "attempt-1", "logs", f"trial-{t['id']}-attempt-1.log")
        text = open(log).read() if os.path.exists(log) else ""
        check.expect("data-parallel: 2 ranks (mpi)" in text,
                     "the 2-node trial's ranks run on both nodes (mpirun over the allocation)")
        failed = subprocess.run([CLUSTER, "fail", cluster, "node2"], capture_output=True, text=True, timeout=60)
        deadline = time.time() + 60
        state = ""
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "--noheader", "--nodes=node2", "--format=%T"], capture_output=True,
                                   text=True, env=env).stdout.strip()
            if state.startswith("down"):
                break
            time.sleep(0.5)
        check.expect(failed.returncode == 0 and state.startswith("down"),
                     f"node2's processes killed; Slurm marked it down ({state})")
        slurm.wait(gang, lambda ts: ts[0]["attempt"] >= 2, "the gang's next attempt", timeout=120)
        subprocess.run([CLUSTER, "revive", cluster, "node2"], capture_output=True, text=True, timeout=60)
        trials = slurm.wait(gang, lambda ts: ts[0]["state"] in ("completed", "failed"), "the gang", timeout=300)
        t = trials[0]
        causes = [f["cause_kind"] for f in t.get("failures", [])]
        check.expect(t["state"] == "completed" and t["restarts"] == 1,
                     f"the node back, the trial restarted once from its checkpoint and completed "
                     f"(state {t['state']}, restarts {t['restarts']}, causes {causes})")
        if t["state"] == "completed":
            single = os.path.join(reference.runs, f"trial-{ref_trials['gang-ref'][0]['id']}", "pretrain")
            expect_close(check, single, out, gang_steps, "its final parameters (one process at the double batch: "
                                                         "every tensor)")
        tokens = [x for x in slurm.cli_json("token", "list") if x.get("name", "").startswith("slurm-")]
        check.expect(len(tokens) >= 10 and all(x.get("revoked_ms", 0) > 0 for x in tokens),
                     f"every attempt's credential was revoked once its job was gone ({len(tokens)} tokens)")
        watcher.stop = True
        watcher.join(timeout=5)
        check.expect(watcher.seen and max(watcher.worst.values(), default=0) <= 1,
                     f"no trial ever had two jobs Slurm had not ended ({len(watcher.seen)} trials watched, "
                     f"jobs per trial {sorted(len(v) for v in watcher.seen.values())})")
    finally:
        if watcher is not None:
            watcher.stop = True
        for c in (slurm, reference):
            if c is not None:
                c.stop()
        cluster_down(cluster, env)
    print(f"slurm backend test: {check.failures} FAILURES" if check.failures else "slurm backend test: all ok")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
