"""The whole orchestration with real processes on 127.0.0.1: maestro-coordinator, two
maestro-worker daemons running real maestro-train children on Fashion-MNIST shards, the maestro
CLI, a real Prometheus server.

1. A 4-trial grid (mask ratio x decoder depth) completes on both workers and `experiment
   results` lists all four with their final loss; `trial logs` has a trainer's output;
   resubmitting the finished grid launches nothing.
2. The worker running a trial is killed with SIGKILL after a checkpoint: its trainer dies with
   it, the trial finishes on the other worker resumed from that checkpoint (the resumed run
   starts at the checkpoint's step and no step after it is trained twice); a trainer of the
   stale attempt run again commits nothing (the attempt fence).
3. A real Prometheus server with the shipped scrape configuration returns a running trial's
   loss series from the coordinator's /metrics through its HTTP query API.
4. The coordinator killed with SIGKILL mid-sweep and restarted: the sweep completes, a process
   watcher never sees two live trainers for one trial, no finished trial is rerun, every trial
   keeps its first attempt (adopted), and the event log is intact (seqs without gaps, the events
   before the kill unchanged).
5. A pipeline (pretrain -> linprobe) of two trials completes; its results table shows both
   linear-probe accuracies.
6. With the coordinator frozen (SIGSTOP), the worker stops its trainer within its lease (half
   the worker timeout), before the coordinator could start it elsewhere; it runs again after.
   `experiment cancel` stops a running trial (SIGTERM, checkpoint) and marks it canceled.
7. A trainer that always crashes is restarted max_restarts times, then the trial is failed with
   its cause.
Exit status 0 when everything holds.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

from run_util import Checker, CoordinatorCli, Credentials, free_port, live_processes, prometheus_poll, start_listening

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FMNIST = "/usr/share/datasets/fashion-mnist"
# Small, fast trials: batch 32 on one thread each (two trainers share this machine's 2 cores).
FAST = {"optim.batch_size": 32, "run.threads": 1, "data.num_workers": 1, "log.interval_steps": 5,
        "optim.warmup_epochs": 0.01}


class Cluster(CoordinatorCli):
    def __init__(self, args):
        self.args = args
        self.maestro = args.maestro
        self.dir = args.dir
        self.db = os.path.join(self.dir, "db")
        self.runs = os.path.join(self.dir, "runs")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.coordinator = None
        self.metrics_port = None
        self.workers = {}
        self.credentials = Credentials(args.maestro, self.dir)

    def start_coordinator(self, worker_timeout_s=20, heartbeat_ms=300):
        self.coordinator, m = start_listening(
            [self.args.coordinator, "--db", self.db, "--runs", self.runs, "--listen", self.address,
             "--data-root", self.dir, "--metrics-listen", "127.0.0.1:0", "--heartbeat-ms", str(heartbeat_ms),
             "--worker-timeout-s", str(worker_timeout_s),
             "--grace-s", "10", *self.credentials.server_args()],
            r"listening on port (\d+), metrics on port (\d+)")
        self.metrics_port = int(m.group(2))
        threading.Thread(target=self.coordinator.stdout.read, daemon=True).start()

    def start_worker(self, name, train_binary=None, slots=1):
        log = open(os.path.join(self.dir, f"{name}.log"), "a")
        command = [self.args.worker, "--coordinator", self.address, "--id", name, "--slots", str(slots),
                   "--work-dir", os.path.join(self.dir, name), "--runs-root", self.runs,
                   "--data-root", self.dir,
                   *self.credentials.worker_args(self.address, name)]
        if train_binary:
            command += ["--train-binary", train_binary]
        self.workers[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def create(self, path):
        return self.cli_json("experiment", "create", path)[0]

    def stop(self):
        for proc in [*self.workers.values(), self.coordinator]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.workers.values(), self.coordinator]:
            if proc is None:
                continue
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def write_experiment(path, name, hparams, kind="pretrain", extra="", searcher="{name: grid}",
                     config=os.path.join(ROOT, "configs", "fmnist_pretrain.yaml"), base=FAST):
    """An experiment file on dataset fmnist: `base` then `hparams` as its hyperparameters,
    `extra` (YAML lines) appended."""
    values = dict(base)
    values.update(hparams)
    lines = [f"name: {name}", f"kind: {kind}", "dataset: fmnist", f"config: {config}",
             "hyperparameters:"]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in values.items()]
    lines += [f"searcher: {searcher}", extra]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def trainers(root):
    """{(trial, attempt): [pids]} of the live maestro-train processes this test's workers started
    (their configs lie under `root`: other tests run trials with the same numbers)."""
    out = {}
    for pid, cmd, _ in live_processes():
        m = re.search(r"trial-(\d+)-attempt-(\d+)\.json", cmd)
        if m and "maestro-train" in cmd and root in cmd:
            out.setdefault((int(m.group(1)), int(m.group(2))), []).append(pid)
    return out


def logged_steps(text):
    return [int(m.group(1)) for m in re.finditer(r"^step (\d+)/", text, re.M)]


def attempt_sections(text):
    """{attempt: its part of a trial log} (each attempt starts with a '=== trial' header)."""
    out = {}
    for part in re.split(r"^(?==== trial )", text, flags=re.M):
        m = re.match(r"=== trial \d+ attempt (\d+)", part)
        if m:
            out[int(m.group(1))] = part
    return out


def prometheus_loss_series(work_dir, metrics_port, trial):
    """A real Prometheus with deploy/prometheus/prometheus.yml (its coordinator target pointed at
    this test's port, scraping every second) returns maestro_trial_loss{trial=...}."""
    with open(os.path.join(ROOT, "deploy", "prometheus", "prometheus.yml")) as f:
        shipped = f.read()
    config = shipped.replace("scrape_interval: 15s", "scrape_interval: 1s").replace(
        "127.0.0.1:9471", f"127.0.0.1:{metrics_port}").replace(
        "- maestro.rules.yml", "- " + os.path.join(ROOT, "deploy", "prometheus", "maestro.rules.yml"))
    if config == shipped:
        return False, "the shipped prometheus.yml has the coordinator target 127.0.0.1:9471"
    query = urllib.parse.quote(f'maestro_trial_loss{{job="maestro-coordinator",trial="{trial}"}}[1m]')

    def series(get):
        result = get(f"query?query={query}")["result"]
        return [float(v) for _, v in result[0]["values"]] if result and len(result[0]["values"]) >= 2 else None

    try:
        values = prometheus_poll(os.path.join(work_dir, "prometheus"), config, series)
    except FileNotFoundError as e:
        return False, f"a real Prometheus server ({e})"
    if values is None:
        return False, f"a real Prometheus server returns trial {trial}'s loss series (none in 60 s)"
    return True, (f"a real Prometheus server returns trial {trial}'s loss series from the "
                  f"coordinator ({len(values)} samples, last {values[-1]:.4f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--maestro", required=True)
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--worker", required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    check = Checker()
    shards = os.path.join(args.dir, "shards")
    for split in ("train", "test"):
        subprocess.run([args.maestro, "data", "ingest", "--format", "idx", "--src", FMNIST, "--out", shards,
                        "--split", split, "--shards", "2"], check=True, capture_output=True, timeout=300)
    cluster = Cluster(args)
    cluster.start_coordinator()
    try:
        r = cluster.cli("dataset", "register", "fmnist", "--path", shards)
        check.expect(r.returncode == 0, f"dataset registered: {r.stdout.strip()} {r.stderr.strip()}")
        cluster.start_worker("w1")
        cluster.start_worker("w2")

        # 1. A 4-trial grid on two workers.
        grid = write_experiment(os.path.join(args.dir, "grid.yaml"), "grid",
                                {"model.mask_ratio": [0.5, 0.75], "model.decoder_depth": [1, 2],
                                 "optim.max_steps": 20})
        created = cluster.create(grid)
        trials = cluster.wait(created["experiment"], lambda ts: all(t["state"] == "completed" for t in ts),
                              "the grid")
        grid_exp, grid_trials = created["experiment"], trials
        holders = {e["worker"] for e in cluster.events() if e["kind"] == "trial_assigned"}
        check.expect(len(trials) == 4 and holders == {"w1", "w2"},
                     f"a 4-trial grid completes on both workers ({sorted(holders)})")
        r = cluster.cli("experiment", "results", str(created["experiment"]))
        rows = [line for line in r.stdout.splitlines() if re.match(r"^\d+\s", line)]
        check.expect(r.returncode == 0 and len(rows) == 4 and all(re.search(r"completed\s+\d+\.\d{4}", x) for x in rows),
                     "experiment results lists all four with their final loss:\n" + r.stdout)
        r = cluster.cli("experiment", "results", str(created["experiment"]), "--format", "csv")
        check.expect(r.stdout.splitlines()[0] == "trial,model.decoder_depth,model.mask_ratio,state,pretrain loss"
                     and len(r.stdout.splitlines()) == 5, "and as CSV")
        r = cluster.cli("trial", "logs", str(trials[0]["id"]))
        check.expect("=== trial" in r.stdout and "completed 20 optimizer steps" in r.stdout,
                     "trial logs shows the trainer's captured output")
        assigned_before = sum(e["kind"] == "trial_assigned" for e in cluster.events())
        again = cluster.create(grid)
        time.sleep(2)
        assigned_after = sum(e["kind"] == "trial_assigned" for e in cluster.events())
        check.expect(again["reused_trials"] == 4 and assigned_after == assigned_before,
                     "resubmitting the finished grid launches nothing (4 trials reused, no assignment)")
        workers = cluster.cli_json("worker", "list")
        check.expect(sorted(w["id"] for w in workers if w["state"] == "alive") == ["w1", "w2"],
                     "worker list shows both workers alive")

        # 2. The worker running a trial is killed with SIGKILL after a checkpoint.
        one = write_experiment(os.path.join(args.dir, "kill-worker.yaml"), "kill-worker",
                               {"model.mask_ratio": 0.6, "optim.max_steps": 240},
                               extra="checkpoint: {interval_steps: 20, keep_last: 3}")
        created = cluster.create(one)
        trial_id = created["trials"][0]
        ckpts = os.path.join(args.dir, "runs", f"trial-{trial_id}", "pretrain", "checkpoints")
        deadline = time.time() + 120
        while time.time() < deadline and not any(
                os.path.exists(os.path.join(ckpts, d, "manifest.json")) and int(d[5:]) >= 40
                for d in (os.listdir(ckpts) if os.path.isdir(ckpts) else []) if d.startswith("step-")):
            time.sleep(0.1)
        holder = cluster.trials(created["experiment"])[0]["worker"]
        other = "w2" if holder == "w1" else "w1"
        cluster.workers[holder].send_signal(signal.SIGKILL)
        cluster.workers[holder].wait()
        committed = max(int(d[5:]) for d in os.listdir(ckpts)
                        if os.path.exists(os.path.join(ckpts, d, "manifest.json")))
        time.sleep(1)
        check.expect((trial_id, 1) not in trainers(args.dir),
                     f"the killed worker's trainer died with it (no maestro-train of trial {trial_id} attempt 1)")
        trials = cluster.wait(created["experiment"], lambda ts: ts[0]["state"] == "completed", "the moved trial")
        t = trials[0]
        logs = attempt_sections(cluster.cli("trial", "logs", str(trial_id)).stdout)
        m = re.search(r"resumed from \S+ at optimizer step (\d+)", logs.get(2, ""))
        resumed_at = int(m.group(1)) if m else -1
        second_steps = logged_steps(logs.get(2, ""))
        with open(os.path.join(args.dir, "runs", f"trial-{trial_id}", "pretrain", "metrics.jsonl")) as f:
            steps = [json.loads(line)["step"] for line in f if '"loss"' in line]
        check.expect(t["worker"] == other and t["attempt"] == 2 and t["failures"][0]["cause_kind"] == "worker_lost",
                     f"the trial finished on the other worker ({t['worker']}), attempt 2, after '{t['failures'][0]['cause']}'")
        check.expect(resumed_at == committed and second_steps and min(second_steps) > resumed_at,
                     f"the resumed run started at the checkpoint's step {committed} (resumed at {resumed_at}, "
                     f"first logged step {min(second_steps) if second_steps else None})")
        check.expect(steps == list(range(1, 241)),
                     "no step after the checkpoint was trained twice: steps 1..240 once each in metrics.jsonl")
        # The fence: a trainer of the stale attempt 1 (its worker only partitioned, say) run
        # again by hand commits nothing over attempt 2's results.
        result_path = os.path.join(args.dir, "runs", f"trial-{trial_id}", "pretrain", "result.json")
        with open(result_path) as f:
            result_before = f.read()
        env = dict(os.environ, MAESTRO_ATTEMPT="1",
                   MAESTRO_ATTEMPT_FENCE=os.path.join(os.path.dirname(result_path), "ATTEMPT"))
        stale = subprocess.run([args.train, "pretrain", "--config",
                                os.path.join(args.dir, holder, "configs", f"trial-{trial_id}-attempt-1.json"),
                                "--resume", "auto"], env=env, capture_output=True, text=True, timeout=120)
        with open(result_path) as f:
            result_after = f.read()
        check.expect(stale.returncode != 0 and "is stale and commits nothing" in stale.stdout + stale.stderr
                     and result_after == result_before,
                     f"a trainer of a stale attempt commits nothing (exit {stale.returncode}; the fence holds "
                     f"attempt 2)")
        cluster.start_worker(holder)

        # 3 + 4. A sweep; Prometheus reads a running trial's loss; the coordinator is killed.
        sweep = write_experiment(os.path.join(args.dir, "sweep.yaml"), "sweep",
                                 {"model.mask_ratio": [0.55, 0.65, 0.7, 0.8], "optim.max_steps": 300},
                                 extra="checkpoint: {interval_steps: 50, keep_last: 2}")
        created = cluster.create(sweep)
        most_live = {}  # trial -> the most live trainers seen at once
        watching = threading.Event()
        watching.set()

        def watch():
            while watching.is_set():
                per_trial = {}
                for (trial, _), pids in trainers(args.dir).items():
                    per_trial[trial] = per_trial.get(trial, 0) + len(pids)
                for trial, n in per_trial.items():
                    most_live[trial] = max(most_live.get(trial, 0), n)
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        running = cluster.wait(created["experiment"],
                               lambda ts: any(t["state"] == "running" and t.get("progress") for t in ts),
                               "a running trial with progress")
        live = next(t for t in running if t["state"] == "running" and t.get("progress"))
        check.expect(*prometheus_loss_series(args.dir, cluster.metrics_port, live["id"]))
        cluster.wait(created["experiment"],
                     lambda ts: sum(t["state"] == "completed" for t in ts) >= 1
                     and sum(t["state"] == "running" for t in ts) >= 1, "a finished and a running trial")
        before_kill = cluster.events()
        finished = [t["id"] for t in cluster.trials(created["experiment"]) if t["state"] == "completed"]
        cluster.coordinator.send_signal(signal.SIGKILL)
        cluster.coordinator.wait()
        time.sleep(1)
        cluster.start_coordinator()
        trials = cluster.wait(created["experiment"], lambda ts: all(t["state"] == "completed" for t in ts),
                              "the sweep after the coordinator's restart")
        watching.clear()
        watcher.join()
        events = cluster.events()
        sweep_ids = set(created["trials"])
        twins = {t: most_live.get(t, 0) for t in sweep_ids}
        check.expect(all(n == 1 for n in twins.values()),
                     f"never two live trainers for one trial (most seen at once per trial: {twins})")
        assigned = {t: sum(e["kind"] == "trial_assigned" and e["trial"] == t for e in events) for t in sweep_ids}
        check.expect(finished and all(assigned[t] == 1 for t in finished),
                     f"no finished trial is rerun (finished before the kill: {finished}; assignments {assigned})")
        check.expect(all(t["attempt"] == 1 for t in trials) and any(e["kind"] == "trial_adopted" for e in events),
                     "every trial kept its first attempt: the running ones were adopted, not restarted")
        check.expect([e["seq"] for e in events] == list(range(1, len(events) + 1))
                     and events[:len(before_kill)] == before_kill,
                     f"the event log is intact ({len(before_kill)} events before the kill unchanged, "
                     f"{len(events)} now, no gaps)")

        # 5. A pipeline: pretraining then a linear probe of each trial's final checkpoint.
        probe = os.path.join(args.dir, "linprobe.yaml")
        with open(os.path.join(ROOT, "configs", "fmnist_linprobe.yaml")) as f:
            text = f.read()
        text = text.replace("batch_size: 256", "batch_size: 64\n  max_steps: 30").replace(
            "threads: 2", "threads: 1").replace("num_workers: 2", "num_workers: 1").replace(
            "eval_split: test", "eval_split: test\n  eval_max_samples: 1000")
        with open(probe, "w") as f:
            f.write(text)
        pipeline = write_experiment(os.path.join(args.dir, "pipeline.yaml"), "pipeline",
                                    {"model.mask_ratio": [0.5, 0.75], "optim.max_steps": 30},
                                    kind="pipeline", extra=f"evaluations:\n  - {{kind: linprobe, config: {probe}}}")
        created = cluster.create(pipeline)
        cluster.wait(created["experiment"], lambda ts: all(t["state"] in ("completed", "failed") for t in ts),
                     "the pipeline")
        r = cluster.cli("experiment", "results", str(created["experiment"]), "--format", "markdown")
        rows = [line for line in r.stdout.splitlines() if re.match(r"^\| \d+", line)]
        check.expect(len(rows) == 2 and "linprobe top-1 %" in r.stdout
                     and all(re.search(r"completed \|\s+\d+\.\d{4}\s+\|\s+\d+\.\d\d\s+\|", x) for x in rows),
                     "a pipeline of two trials completes; its results show both linear-probe accuracies:\n" + r.stdout)

        # 6. The lease: with the coordinator frozen (SIGSTOP: alive, silent), the worker stops
        # its trainer itself before the coordinator could restart it elsewhere. Then cancel.
        long = write_experiment(os.path.join(args.dir, "cancel.yaml"), "cancel",
                                {"model.mask_ratio": 0.45, "optim.max_steps": 100000})
        created = cluster.create(long)
        cluster.wait(created["experiment"], lambda ts: ts[0]["state"] == "running", "the long trial to run")
        cluster.coordinator.send_signal(signal.SIGSTOP)
        frozen_at = time.time()
        while time.time() - frozen_at < 19 and any(t == created["trials"][0] for t, _ in trainers(args.dir)):
            time.sleep(0.1)
        stopped_after = time.time() - frozen_at
        cluster.coordinator.send_signal(signal.SIGCONT)
        check.expect(stopped_after < 19,
                     f"a worker cut off from the coordinator stops its trainer within its lease "
                     f"({stopped_after:.1f} s of the 20 s worker timeout)")
        cluster.wait(created["experiment"], lambda ts: ts[0]["state"] == "running" and ts[0]["attempt"] == 2,
                     "the stopped trial to run again")
        r = cluster.cli("experiment", "cancel", str(created["experiment"]))
        trials = cluster.wait(created["experiment"], lambda ts: ts[0]["state"] == "canceled", "the cancel", 60)
        check.expect(r.returncode == 0 and "1 running trials stopping" in r.stdout
                     and not any(t == created["trials"][0] for t, _ in trainers(args.dir)),
                     "experiment cancel stops the running trainer and marks the trial canceled")

        # 7. A trainer that always crashes.
        for name in ("w1", "w2"):
            cluster.workers[name].send_signal(signal.SIGTERM)
        codes = [cluster.workers[name].wait(timeout=60) for name in ("w1", "w2")]
        check.expect(codes == [0, 0], f"SIGTERM stops the workers cleanly ({codes})")
        crasher = os.path.join(args.dir, "crashing-trainer.sh")
        with open(crasher, "w") as f:
            f.write("#!/bin/sh\necho 'error: this trainer always crashes' >&2\nkill -SEGV $$\n")
        os.chmod(crasher, 0o755)
        cluster.start_worker("w3", train_binary=crasher)
        crash = write_experiment(os.path.join(args.dir, "crash.yaml"), "crash",
                                 {"model.mask_ratio": 0.35, "optim.max_steps": 20}, extra="max_restarts: 2")
        created = cluster.create(crash)
        trials = cluster.wait(created["experiment"], lambda ts: ts[0]["state"] == "failed", "the crashing trial", 90)
        t = trials[0]
        check.expect(t["attempt"] == 3 and "failed 3 times (max_restarts 2)" in t.get("cause", "")
                     and "signal 11" in t["cause"] and "always crashes" in t["cause"],
                     f"a trainer that always crashes is stopped after max_restarts: {t.get('cause')}")
        check.expect(cluster.coordinator.poll() is None and cluster.workers["w3"].poll() is None,
                     "the daemons are still up")

        # 8. A sweep's later life. `experiment continue`: the failed trial runs again, with a fresh
        #    restart budget, now that a worker has a trainer that works.
        cluster.workers["w3"].send_signal(signal.SIGTERM)
        cluster.workers["w3"].wait(timeout=60)
        cluster.start_worker("w4")
        r = cluster.cli("experiment", "continue", str(created["experiment"]))
        trials = cluster.wait(created["experiment"], lambda ts: ts[0]["state"] in ("completed", "failed"),
                              "the continued trial", 120)
        t = trials[0]
        check.expect(r.returncode == 0 and "1 trials queued again" in r.stdout and t["state"] == "completed"
                     and t["restarts"] == 0 and t["attempt"] == 4,
                     f"experiment continue ran the failed trial again with a fresh budget ({r.stdout.strip()}; "
                     f"{t['state']}, attempt {t['attempt']}, restarts {t['restarts']})")
        r = cluster.cli("experiment", "continue", str(created["experiment"]))
        check.expect(r.returncode == 0 and "0 trials queued again" in r.stdout,
                     "continuing it again queues nothing")
        # `experiment extend`: a random search gets its next draw, which runs.
        draw = write_experiment(os.path.join(args.dir, "random.yaml"), "random",
                                {"model.mask_ratio": {"type": "double", "minval": 0.5, "maxval": 0.9},
                                 "optim.max_steps": 20}, searcher="{name: random, max_trials: 1, seed: 3}")
        random_exp = cluster.create(draw)["experiment"]
        r = cluster.cli("experiment", "extend", str(random_exp), "--trials", "1")
        trials = cluster.wait(random_exp, lambda ts: len(ts) == 2 and all(t["state"] == "completed" for t in ts),
                              "the extended search", 120)
        check.expect(r.returncode == 0 and "extended by 1 trials" in r.stdout
                     and trials[0]["hparams"] != trials[1]["hparams"],
                     f"experiment extend adds a random search's next draw and runs it ({r.stdout.strip()})")
        r = cluster.cli("experiment", "extend", str(grid_exp), "--trials", "1")
        check.expect(r.returncode != 0 and "only a random or asha search" in r.stderr,
                     f"a grid is not extended: {r.stderr.strip()[-120:]}")
        # `trial compare`: the keys two grid cells differ in, and both histories.
        a, b = grid_trials[0], grid_trials[-1]
        r = cluster.cli("trial", "compare", str(a["id"]), str(b["id"]))
        differing = {line.split()[0] for line in r.stdout.split("metric histories")[0].splitlines()[2:] if line.strip()}
        swept = {f"pretrain.{k}" for k in a["hparams"] if a["hparams"][k] != b["hparams"][k]}
        compared = cluster.cli_json("trial", "compare", str(a["id"]), str(b["id"]))[0]
        full = [h for h in compared["history"] if h["a"] and h["b"]]
        check.expect(r.returncode == 0 and differing == swept and len(swept) == 2 and full
                     and all(h["a"]["loss"] > 0 and h["b"]["loss"] > 0 for h in full),
                     f"trial compare shows only the keys that differ ({sorted(differing)}) and both histories "
                     f"({len(full)} steps with both)")
        # `experiment results --history`: every record of every trial, as CSV, across pages.
        r = cluster.cli("experiment", "results", str(grid_exp), "--history")
        rows = r.stdout.splitlines()
        per_trial = {}
        for row in rows[1:]:
            per_trial.setdefault(int(row.split(",")[0]), []).append(row)
        stored = {t["id"]: len(cluster.cli_json("trial", "compare", str(t["id"]), str(t["id"]))[0]["history"])
                  for t in grid_trials}
        check.expect(r.returncode == 0 and rows and rows[0].startswith("trial,attempt,stage,step,")
                     and "loss" in rows[0] and set(per_trial) == set(stored)
                     and all(len(per_trial[i]) >= stored[i] > 0 for i in stored),
                     f"experiment results --history lists every trial's records as CSV "
                     f"({len(rows) - 1} rows: {sorted((i, len(v)) for i, v in per_trial.items())})")
    finally:
        cluster.stop()
    codes = [p.returncode for p in [cluster.coordinator, cluster.workers.get("w3")] if p is not None]
    check.expect(all(c == 0 for c in codes), f"SIGTERM stops the coordinator and the last worker cleanly ({codes})")
    print(f"orchestration test: {'PASS' if check.failures == 0 else str(check.failures) + ' FAILURES'}")
    return 0 if check.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
