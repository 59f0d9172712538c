"""maestro across separate network stacks (Security II): network namespaces on one machine,
each with an address that exists only inside them, joined by a bridge held in a namespace of its
own (nothing is added to the machine's own network stack).

  ctl  10.231.0.2  maestro-coordinator and maestro-data, with certificates for 10.231.0.2
  w1   10.231.0.3  a maestro-worker
  w2   10.231.0.4  a maestro-worker
  atk  10.231.0.5  the attacker: a user token of its own (mallory), a coordinator of another
                   CA, and a listener posing as a data service

1. A 2-trial sweep is submitted from a file naming a base config; both files are deleted. The
   trials run on w1 and w2 over TLS, streaming their data from maestro-data in ctl. Once they
   have checkpointed, the coordinator is SIGKILLed and started again: it starts (it never reads
   the deleted files) and the sweep completes.
2. While it runs, the attacker tries: a CreateExperiment whose config is a path on the
   coordinator's host (/etc/shadow, a file that exists, one that does not), a dataset registered
   outside --data-root, a trial config naming its own data service (in the config, as a
   hyperparameter), plaintext calls, a coordinator --insecure on a non-loopback address, and
   its own coordinator that copies of w1 and w2 are pointed at. Each is refused with its code;
   the coordinator's answer quotes no file and is the same whether the file exists; no
   connection reaches the fake data service; nothing is created outside the roots.
3. A coordinator restarted with a runs folder outside the workers' --runs-root (misconfigured,
   or compromised): the worker refuses the assignment, says why, and creates nothing there.

When namespaces cannot be made (no root, no iproute2) the test fails and says why.
Exit status 0 when everything holds.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from run_util import Checker, Credentials, ingest_fmnist, start_listening

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SUBNET = "10.231.0"
HOSTS = {"ctl": 2, "w1": 3, "w2": 4, "atk": 5}


class Network:
    """The namespaces, the bridge and the veth pairs; removed by close() whatever happened."""

    def __init__(self):
        self.prefix = f"mh{os.getpid() % 100000}"
        self.names = []

    def ns(self, host):
        return f"{self.prefix}-{host}"

    def ip(self, *words):
        r = subprocess.run(["ip", *words], capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise RuntimeError(f"ip {' '.join(words)}: {r.stderr.strip()}")

    def up(self):
        hub = self.ns("hub")
        for name in [hub] + [self.ns(h) for h in HOSTS]:
            self.ip("netns", "add", name)
            self.names.append(name)
        self.ip("-n", hub, "link", "add", "br0", "type", "bridge")
        self.ip("-n", hub, "link", "set", "br0", "up")
        for host, last in HOSTS.items():
            outer, inner = f"{self.prefix}h{last}", f"{self.prefix}p{last}"
            # Made inside the hub namespace, the peer moved straight into the host's.
            self.ip("-n", hub, "link", "add", outer, "type", "veth", "peer", "name", inner,
                    "netns", self.ns(host))
            self.ip("-n", hub, "link", "set", outer, "master", "br0", "up")
            self.ip("-n", self.ns(host), "link", "set", inner, "name", "eth0")
            self.ip("-n", self.ns(host), "addr", "add", f"{SUBNET}.{last}/24", "dev", "eth0")
            self.ip("-n", self.ns(host), "link", "set", "eth0", "up")
            self.ip("-n", self.ns(host), "link", "set", "lo", "up")

    def run(self, host, command, **kwargs):
        return subprocess.run(["ip", "netns", "exec", self.ns(host), *command], **kwargs)

    def popen(self, host, command, **kwargs):
        return subprocess.Popen(["ip", "netns", "exec", self.ns(host), *command], **kwargs)

    def close(self):
        for name in reversed(self.names):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
        self.names = []


def addr(host):
    return f"{SUBNET}.{HOSTS[host]}"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    for flag in ("--maestro", "--coordinator", "--worker", "--data", "--attack", "--dir"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    check = Checker()
    net = Network()
    try:
        net.up()
    except (RuntimeError, OSError) as e:
        net.close()
        print(f"FAIL  network namespaces cannot be made here (root and iproute2 are needed): {e}")
        return 1
    # The test's addresses exist only inside its namespaces, never on the machine's own stack.
    own = subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
    check.expect(SUBNET + "." not in own, f"no {SUBNET}.x address outside the namespaces")
    processes = []

    def stop(proc, sig=signal.SIGTERM, timeout=60):
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    data_root = os.path.join(args.dir, "data")
    runs = os.path.join(args.dir, "runs")
    outside = os.path.join(args.dir, "outside")  # under no root of anyone's
    os.makedirs(outside)
    try:
        shards = os.path.join(data_root, "fmnist")
        ingest_fmnist(args.maestro, shards)
        credentials = Credentials(args.maestro, args.dir, hosts=[addr("ctl")])
        env = dict(os.environ)

        def log_file(name):
            return open(os.path.join(args.dir, f"{name}.log"), "a")

        data, m = start_listening(
            ["ip", "netns", "exec", net.ns("ctl"), args.data, "serve", "--dataset", f"fmnist={shards}",
             "--listen", f"{addr('ctl')}:0", *credentials.server_args()], r"listening on port (\d+)")
        processes.append(data)
        threading.Thread(target=data.stdout.read, daemon=True).start()
        data_address = f"{addr('ctl')}:{m.group(1)}"
        port = None

        def start_coordinator(runs_folder):
            nonlocal port
            proc, m = start_listening(
                ["ip", "netns", "exec", net.ns("ctl"), args.coordinator, "--db", os.path.join(args.dir, "db"),
                 "--runs", runs_folder, "--data-root", data_root, "--listen", f"{addr('ctl')}:{port or 0}",
                 "--heartbeat-ms", "300", "--worker-timeout-s", "20", "--grace-s", "10",
                 *credentials.server_args()], r"listening on port (\d+)")
            port = int(m.group(1))
            lines = []
            threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
            processes.append(proc)
            return proc, lines

        coordinator, coordinator_log = start_coordinator(runs)
        address = f"{addr('ctl')}:{port}"

        def cli(host, *words, token=None, check_ok=True, extra_env=None):
            e = dict(env)
            if token:
                e["MAESTRO_TOKEN_FILE"] = token
            e.update(extra_env or {})
            r = net.run(host, [args.maestro, *words, "--coordinator", address], capture_output=True,
                        text=True, timeout=120, env=e)
            if check_ok and r.returncode != 0:
                raise RuntimeError(f"maestro {' '.join(words)}: {r.stderr.strip()}")
            return r

        def enroll(worker):
            path = os.path.join(credentials.dir, f"worker-{worker}.token")
            cli("w1", "worker", "enroll", worker, "--out", path)
            return path

        owner = os.path.join(credentials.dir, "owner.token")
        cli("w1", "token", "create", "--role", "user", "--name", "owner", "--expires", "1h", "--out", owner)
        mallory = os.path.join(credentials.dir, "mallory.token")
        cli("w1", "token", "create", "--role", "user", "--name", "mallory", "--expires", "1h", "--out", mallory)
        tokens = {w: enroll(w) for w in ("w1", "w2")}
        workers = {}
        for w in ("w1", "w2"):
            workers[w] = net.popen(
                w, [args.worker, "--coordinator", address, "--id", w, "--slots", "1", "--address", addr(w),
                    "--work-dir", os.path.join(args.dir, "work", w), "--runs-root", runs,
                    "--data-root", data_root, "--token-file", tokens[w]],
                stdout=log_file(w), stderr=subprocess.STDOUT, env=env)
            processes.append(workers[w])
        cli("w1", "dataset", "register", "fmnist", "--service", data_address, token=owner)

        # 1. The sweep, from files deleted once submitted.
        submit = os.path.join(args.dir, "submit")
        os.makedirs(submit)
        shutil.copy(os.path.join(ROOT, "configs", "fmnist_pretrain.yaml"), os.path.join(submit, "base.yaml"))
        sweep_file = os.path.join(submit, "sweep.yaml")
        with open(sweep_file, "w") as f:
            f.write("name: across hosts\nkind: pretrain\ndataset: fmnist\nconfig: base.yaml\n"
                    "hyperparameters:\n  model.mask_ratio: [0.5, 0.75]\n  optim.batch_size: 32\n"
                    "  run.threads: 1\n  data.num_workers: 1\n  log.interval_steps: 5\n"
                    "  optim.warmup_epochs: 0.01\n  optim.max_steps: 80\n"
                    "searcher: {name: grid}\nmax_concurrent_trials: 2\nmax_restarts: 2\n"
                    "checkpoint: {interval_steps: 20, keep_last: 2}\n")
        created = json.loads(cli("w1", "experiment", "create", sweep_file, "--json", token=owner).stdout)
        experiment, trials = created["experiment"], created["trials"]
        shutil.rmtree(submit)
        check.expect(len(trials) == 2 and not os.path.exists(submit),
                     f"a 2-trial sweep submitted from w1's namespace; its files deleted: {trials}")

        def describe(host="w1"):
            r = cli(host, "experiment", "describe", str(experiment), "--json", token=owner, check_ok=False)
            return json.loads(r.stdout) if r.returncode == 0 else None

        # 2. The attacks, while the trials run.
        def attack(*words, token=mallory, target=None):
            command = [args.attack, words[0], "--address", target or address, "--ca", credentials.ca,
                       "--token-file", token or "", *words[1:]]
            r = net.run("atk", command, capture_output=True, text=True, timeout=60)
            out = (r.stdout + r.stderr).strip()
            return out.split(" ", 1)[0], out

        def create_json(experiment_json, **kwargs):
            return attack("create", "--experiment-json", json.dumps(experiment_json), **kwargs)

        with open("/etc/shadow") as f:
            shadow_first = f.readline().strip()
        answers = {}
        for path in ("/etc/shadow", "/etc/hostname", "/nonexistent/maestro.yaml"):
            code, out = create_json({"name": "x", "kind": "pretrain", "dataset": "fmnist", "config": path})
            answers[path] = (code, out.replace(path, "PATH"))
        check.expect(all(code == "INVALID_ARGUMENT" for code, _ in answers.values())
                     and len({out for _, out in answers.values()}) == 1,
                     f"a config naming a coordinator-host file (existing or not): one answer, "
                     f"{answers['/etc/shadow'][1][:110]}")
        check.expect(shadow_first not in answers["/etc/shadow"][1] and "root:" not in answers["/etc/shadow"][1],
                     "nothing of /etc/shadow is quoted")
        code, out = create_json({"name": "x", "kind": "pretrain", "dataset": "fmnist", "config": "/etc/shadow"},
                                token=None)
        check.expect(code == "UNAUTHENTICATED", f"the same without a credential: {out[:80]}")

        evil = os.path.join(args.dir, "evil-dataset")
        os.makedirs(os.path.join(evil, "train"))
        with open(os.path.join(evil, "train", "manifest.json"), "w") as f:
            json.dump({"content_hash": "e" * 64, "count": 10}, f)
        r = cli("atk", "dataset", "register", "evil", "--path", evil, token=mallory, check_ok=False)
        check.expect(r.returncode != 0 and "PERMISSION_DENIED" in r.stderr and "outside --data-root" in r.stderr,
                     f"a dataset outside --data-root: {r.stderr.strip()[-120:]}")
        r = cli("atk", "dataset", "register", "etc", "--path", "/etc", token=mallory, check_ok=False)
        check.expect(r.returncode != 0, f"a dataset at /etc: {r.stderr.strip()[-100:]}")

        fake_data = f"{addr('atk')}:7072"
        # A listener posing as a data service: every connection it accepts is counted.
        listener = net.popen("atk", [sys.executable, "-c", (
            "import socket, sys\n"
            "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(('{addr('atk')}', 7072)); s.listen(8); print('listening', flush=True)\n"
            "while True:\n"
            "    c, peer = s.accept(); print('connection from', peer[0], flush=True); c.close()\n")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(listener)
        listener.stdout.readline()
        listener_lines = []
        threading.Thread(target=lambda: listener_lines.extend(listener.stdout), daemon=True).start()
        own_service = os.path.join(args.dir, "own-service.yaml")
        with open(own_service, "w") as f:
            f.write(f"name: mine\nkind: pretrain\ndataset: fmnist\nconfig: {{data: {{service: '{fake_data}'}}}}\n")
        r = cli("atk", "experiment", "create", own_service, token=mallory, check_ok=False)
        check.expect(r.returncode != 0 and "INVALID_ARGUMENT" in r.stderr and "cannot name a data service" in r.stderr,
                     f"a trial config naming its own data service: {r.stderr.strip()[-110:]}")
        code, out = create_json({"name": "mine", "kind": "pretrain", "dataset": "fmnist", "config": {},
                                 "hyperparameters": {"data.service": [fake_data]}})
        check.expect(code == "INVALID_ARGUMENT", f"... or searching over it: {out[:110]}")
        code, out = create_json({"name": "mine", "kind": "finetune", "dataset": "fmnist",
                                 "config": {"classify": {"num_classes": 10, "pretrained": "/root"}}})
        check.expect(code == "PERMISSION_DENIED", f"pretrained weights outside the roots: {out[:110]}")

        code, out = attack("create", "--plaintext", "--experiment-json", "{}")
        check.expect(code == "UNAVAILABLE", f"a plaintext call (with mallory's token): {out[:100]}")
        r = cli("atk", "experiment", "list", token=mallory, check_ok=False, extra_env={"MAESTRO_CA": ""})
        check.expect(r.returncode != 0 and "plaintext" in r.stderr,
                     f"maestro without the CA will not speak plaintext across hosts: {r.stderr.strip()[-90:]}")
        r = net.run("atk", [args.coordinator, "--db", os.path.join(args.dir, "atk-db"), "--runs",
                            os.path.join(args.dir, "atk-runs-insecure"), "--listen", f"{addr('atk')}:0", "--insecure"],
                    capture_output=True, text=True, timeout=60)
        check.expect(r.returncode == 2 and "--insecure serves only loopback" in r.stderr,
                     f"a coordinator will not serve plaintext on a network address: {r.stderr.strip()[-90:]}")
        r = net.run("atk", [args.data, "serve", "--dataset", f"fmnist={shards}", "--listen", f"{addr('atk')}:0",
                            "--insecure"], capture_output=True, text=True, timeout=60)
        check.expect(r.returncode != 0 and "--insecure serves only loopback" in r.stderr,
                     f"... nor will a data service: {r.stderr.strip()[-90:]}")
        r = net.run("atk", [args.coordinator, "--db", os.path.join(args.dir, "atk-db"), "--runs",
                            os.path.join(args.dir, "atk-runs-insecure"), "--listen", "127.0.0.1:0", "--insecure",
                            "--metrics-listen", f"{addr('atk')}:0"], capture_output=True, text=True, timeout=60)
        check.expect(r.returncode != 0 and "loopback addresses only" in r.stderr,
                     f"/metrics is not served on a network address: {r.stderr.strip()[-110:]}")

        # The attacker's own coordinator (its own CA, a certificate for its address), and copies
        # of w1 and w2 with their real credentials pointed at it.
        fake_dir = os.path.join(args.dir, "atk")
        r = net.run("atk", [args.maestro, "cluster", "init", "--dir", os.path.join(fake_dir, "cluster"),
                            "--host", addr("atk")], capture_output=True, text=True, timeout=60)
        fake_runs = os.path.join(fake_dir, "runs")
        fake, _ = start_listening(
            ["ip", "netns", "exec", net.ns("atk"), args.coordinator, "--db", os.path.join(fake_dir, "db"),
             "--runs", fake_runs, "--listen", f"{addr('atk')}:7071", "--credentials",
             os.path.join(fake_dir, "cluster")], r"listening on port (\d+)")
        processes.append(fake)
        fake_lines = []
        threading.Thread(target=lambda: fake_lines.extend(fake.stdout), daemon=True).start()
        fooled = {}
        for w in ("w1", "w2"):
            fooled[w] = net.popen(
                w, [args.worker, "--coordinator", f"{addr('atk')}:7071", "--id", w, "--slots", "1",
                    "--work-dir", os.path.join(args.dir, "fooled", w), "--runs-root", runs,
                    "--token-file", tokens[w]],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            processes.append(fooled[w])

        # 1 (cont.): once both trials have a checkpoint, SIGKILL the coordinator and restart it.
        deadline, d = time.time() + 300, None
        while time.time() < deadline:
            d = describe()
            if d and all(t.get("progress", {}).get("step", 0) >= 25 for t in d["trials"]):
                break
            time.sleep(0.5)
        running_on = sorted(t.get("worker", "") for t in d["trials"]) if d else []
        steps = [t.get("progress", {}).get("step") for t in d["trials"]] if d else []
        check.expect(running_on == ["w1", "w2"],
                     f"the trials run one on each worker's namespace: {running_on}, at steps {steps} of 80")
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait(timeout=30)
        coordinator, coordinator_log = start_coordinator(runs)
        check.expect(True, "the coordinator SIGKILLed and started again, its experiment files long deleted")

        deadline = time.time() + 400
        while time.time() < deadline:
            d = describe()
            if d and all(t["state"] in ("completed", "failed", "canceled") for t in d["trials"]):
                break
            time.sleep(1)
        states = [t["state"] for t in d["trials"]] if d else []
        check.expect(states == ["completed", "completed"],
                     f"the sweep completes across the namespaces over TLS: {states} "
                     f"{[t.get('failures') for t in (d or {}).get('trials', []) if t['state'] != 'completed']}")
        losses = [t.get("results", {}).get("pretrain", {}).get("final_train_loss") for t in d["trials"]] if d else []
        check.expect(all(isinstance(x, float) for x in losses), f"each has its final loss: {losses}")

        for w in ("w1", "w2"):
            stop(fooled[w])
        fooled_out = {w: fooled[w].stdout.read() for w in ("w1", "w2")}
        check.expect(all("does not verify against the cluster CA" in out and "registered" not in out
                         for out in fooled_out.values()),
                     f"w1 and w2 pointed at the attacker's coordinator refuse it and say why: "
                     f"{[line for line in fooled_out['w1'].splitlines() if 'cluster CA' in line][:1]}")
        stop(fake)
        check.expect(not any("registered" in line or "w1" in line or "w2" in line for line in fake_lines)
                     and not os.path.exists(os.path.join(fake_runs, "trial-1")),
                     f"the attacker's coordinator heard from no worker: {''.join(fake_lines).strip()[-150:]}")
        stop(listener)
        check.expect(not any("connection from" in line for line in listener_lines),
                     f"no connection reached the attacker's data service: {listener_lines}")
        r = cli("w1", "dataset", "list", "--json", token=owner)
        names = sorted(json.loads(line)["name"] for line in r.stdout.splitlines() if line.strip())
        check.expect(names == ["fmnist"], f"the datasets are only the owner's: {names}")

        # 3. The coordinator restarted with its runs folder outside the workers' --runs-root.
        stop(coordinator)
        coordinator, coordinator_log = start_coordinator(outside)
        probe = os.path.join(args.dir, "probe.yaml")
        with open(probe, "w") as f:
            f.write(f"name: probe\nkind: pretrain\ndataset: fmnist\nconfig: {ROOT}/configs/fmnist_pretrain.yaml\n"
                    "hyperparameters:\n  optim.max_steps: 5\n  optim.batch_size: 32\n  run.threads: 1\n"
                    "searcher: {name: grid}\nmax_restarts: 0\n")
        probe_created = json.loads(cli("w1", "experiment", "create", probe, "--json", token=owner).stdout)
        deadline, t = time.time() + 120, {}
        while time.time() < deadline:
            r = cli("w1", "experiment", "describe", str(probe_created["experiment"]), "--json", token=owner)
            t = json.loads(r.stdout)["trials"][0]
            if t["state"] in ("failed", "completed"):
                break
            time.sleep(0.5)
        cause = (t.get("failures") or [{}])[-1].get("cause", "")
        check.expect(t.get("state") == "failed" and "refused the assignment" in cause
                     and "outside --runs-root" in cause,
                     f"a worker refuses an output folder outside its --runs-root: {cause[:200]}")
        created_outside = [p for p in os.listdir(outside)]
        check.expect(created_outside == [], f"nothing was created outside the roots: {created_outside}")
    finally:
        for proc in reversed(processes):
            stop(proc, timeout=30)
        net.close()
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    check.expect(net.prefix + "-" not in left, "the namespaces are gone")
    print(f"{check.failures} failure(s)")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
