"""docs/metrics.md is the truth: the three daemons, with a trial running and streaming from the
data service, export exactly the series families the catalogue lists for them (nothing missing
either way), with the listed type and label names, and `promtool check metrics` accepts every
scrape.

maestro-data serve, maestro-coordinator and one maestro-worker run on 127.0.0.1 with TLS; a
pretraining trial reads its shards from the data service. Exit status 0 when everything holds.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

from orchestration_test import ROOT, write_experiment
from run_util import Checker, CoordinatorCli, Credentials, free_port, start_listening

CATALOGUE = os.path.join(ROOT, "docs", "metrics.md")
EXPORTERS = ("coordinator", "worker", "data")


def catalogue():
    """{name: (type, frozenset of label names, exporter)} from the table in docs/metrics.md."""
    out = {}
    for line in open(CATALOGUE):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and re.fullmatch(r"`[a-z_]+`", cells[0]):
            labels = frozenset(x.strip() for x in cells[3].split(",") if x.strip())
            out[cells[0].strip("`")] = (cells[1], labels, cells[4])
    return out


def scrape(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()


def families(text):
    """{family: (type, frozenset of label names)} of an exposition (a histogram's `le` left out)."""
    types, labels = {}, {}
    for line in text.splitlines():
        m = re.match(r"^# TYPE (\S+) (\S+)$", line)
        if m:
            types[m.group(1)] = m.group(2)
            labels.setdefault(m.group(1), set())
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? ", line)
        if not m:
            continue
        name = m.group(1)
        family = next((f for f in (name, re.sub(r"_(bucket|sum|count)$", "", name)) if f in types), name)
        names = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
        labels.setdefault(family, set()).update(names - {"le"})
    return {f: (types.get(f, "untyped"), frozenset(labels.get(f, set()))) for f in set(types) | set(labels)}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    for flag in ("maestro", "coordinator", "worker", "data", "dir"):
        parser.add_argument("--" + flag, required=True)
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    check = Checker()
    expected = catalogue()
    check.expect(len(expected) >= 20 and {e for _, _, e in expected.values()} == {*EXPORTERS, "every daemon"},
                 f"docs/metrics.md lists {len(expected)} series families for the three daemons")
    credentials = Credentials(args.maestro, args.dir)
    shards = os.path.join(args.dir, "shards")
    subprocess.run([args.maestro, "data", "ingest", "--format", "idx", "--src", "/usr/share/datasets/fashion-mnist",
                    "--out", shards, "--split", "train", "--shards", "2"], check=True, capture_output=True, timeout=300)
    procs = []
    try:
        data, m = start_listening([args.data, "serve", "--dataset", f"fmnist={shards}", "--listen", "127.0.0.1:0",
                                   "--metrics-listen", "127.0.0.1:0", *credentials.server_args()],
                                  r"listening on port (\d+), metrics on port (\d+)")
        procs.append(data)
        data_port, ports = int(m.group(1)), {"data": int(m.group(2))}
        address = f"127.0.0.1:{free_port()}"
        coordinator, m = start_listening(
            [args.coordinator, "--db", os.path.join(args.dir, "db"), "--runs", os.path.join(args.dir, "runs"),
             "--listen", address, "--metrics-listen", "127.0.0.1:0", "--heartbeat-ms", "300",
             *credentials.server_args()], r"listening on port (\d+), metrics on port (\d+)")
        procs.append(coordinator)
        ports["coordinator"] = int(m.group(2))
        for proc in (data, coordinator):
            threading.Thread(target=proc.stdout.read, daemon=True).start()
        worker, m = start_listening(
            [args.worker, "--coordinator", address, "--id", "w1", "--work-dir", os.path.join(args.dir, "w1"),
             "--runs-root", os.path.join(args.dir, "runs"), "--metrics-listen", "127.0.0.1:0",
             *credentials.worker_args(address, "w1")], r"metrics on port (\d+)")
        procs.append(worker)
        threading.Thread(target=worker.stdout.read, daemon=True).start()
        ports["worker"] = int(m.group(1))
        cli = CoordinatorCli()
        cli.maestro, cli.address = args.maestro, address
        r = cli.cli("dataset", "register", "fmnist", "--service", f"127.0.0.1:{data_port}")
        check.expect(r.returncode == 0, f"the data service's dataset registered {r.stderr.strip()}")
        exp = cli.cli_json("experiment", "create", write_experiment(
            os.path.join(args.dir, "running.yaml"), "running", {"model.mask_ratio": 0.6, "optim.max_steps": 100000}))[0]
        cli.wait(exp["experiment"], lambda ts: ts[0]["state"] == "running" and "progress" in ts[0],
                 "a running trial with progress", 180)
        time.sleep(1)  # the coordinator's metrics follow its snapshot twice a second
        for exporter in EXPORTERS:
            text = scrape(ports[exporter])
            got = families(text)
            want = {n: (t, labels) for n, (t, labels, e) in expected.items() if e in (exporter, "every daemon")}
            missing = sorted(set(want) - set(got))
            unlisted = sorted(set(got) - set(want))
            differ = sorted(f"{n}: {got[n]} != {want[n]}" for n in set(got) & set(want) if got[n] != want[n])
            check.expect(not missing and not unlisted and not differ,
                         f"{exporter}: exports exactly its {len(want)} catalogued families with their types and "
                         f"labels (missing {missing}, not catalogued {unlisted}, differing {differ})")
            lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                                  timeout=60)
            check.expect(lint.returncode == 0, f"{exporter}: promtool check metrics accepts the scrape "
                                               f"{(lint.stdout + lint.stderr).strip()[-300:]}")
        cli.cli("experiment", "cancel", str(exp["experiment"]))
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print(f"metrics catalogue test: {check.failures} FAILURES" if check.failures else "metrics catalogue test: all ok")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
