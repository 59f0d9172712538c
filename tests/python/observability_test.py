"""Observability against real processes: maestro-data serve, maestro-coordinator and one
maestro-worker on 127.0.0.1 with TLS, a pretraining trial streaming its shards from the data
service.

1. docs/metrics.md is the truth: each daemon exports exactly the series families the catalogue
   lists for it (nothing missing either way), with the listed type and label names, and
   `promtool check metrics` accepts every scrape.
2. The Grafana dashboards, proven the honest way (Grafana is not installable here): a real
   Prometheus scrapes the three daemons with the shipped configuration (rules loaded), and
   every query of every panel, its template variables filled from Prometheus' own label values,
   is accepted by Prometheus' HTTP query API and returns at least one series. Each dashboard
   has what Grafana's provisioning needs (uid, title, schemaVersion, panels with a datasource
   and targets), and the provisioning files name the data source the panels use.
Exit status 0 when everything holds.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

from orchestration_test import ROOT, write_experiment
from run_util import Checker, CoordinatorCli, Credentials, free_port, prometheus_poll, start_listening

CATALOGUE = os.path.join(ROOT, "docs", "metrics.md")
GRAFANA = os.path.join(ROOT, "deploy", "grafana")
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


def dashboards():
    return {os.path.basename(p): json.load(open(p)) for p in sorted(glob.glob(os.path.join(GRAFANA, "dashboards", "*.json")))}


def provisioning_problems(boards):
    """What Grafana's file provisioning needs of the dashboards and their data source."""
    problems = []
    datasource = open(os.path.join(GRAFANA, "provisioning", "datasources", "maestro.yml")).read()
    provider = open(os.path.join(GRAFANA, "provisioning", "dashboards", "maestro.yml")).read()
    if "type: prometheus" not in datasource or "uid: maestro-prometheus" not in datasource:
        problems.append("the data source is not the Prometheus uid maestro-prometheus")
    if "type: file" not in provider or "path:" not in provider:
        problems.append("the dashboard provider is not a file provider with a path")
    uids = set()
    for name, board in boards.items():
        for key in ("uid", "title", "schemaVersion", "panels"):
            if not board.get(key):
                problems.append(f"{name}: no {key}")
        uids.add(board.get("uid"))
        variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
        if variables.get("datasource", {}).get("current", {}).get("value") != "maestro-prometheus":
            problems.append(f"{name}: its datasource variable does not default to maestro-prometheus")
        for panel in board.get("panels", []):
            if panel.get("type") == "text":
                continue
            if panel.get("datasource", {}).get("type") != "prometheus" or not panel.get("targets"):
                problems.append(f"{name}: panel {panel.get('title')!r} has no Prometheus datasource or targets")
            for target in panel.get("targets", []):
                if not target.get("expr") or not target.get("refId"):
                    problems.append(f"{name}: panel {panel.get('title')!r} has a target without expr or refId")
    if len(uids) != len(boards):
        problems.append("two dashboards share a uid")
    return problems


def panel_queries(boards, get):
    """{(dashboard, panel title, expr): number of series} with template variables filled from
    Prometheus' label values (the first value of each) and $__rate_interval as 1m."""
    out = {}
    for name, board in boards.items():
        values = {"__rate_interval": "1m", "__interval": "15s"}
        for v in board.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            m = re.fullmatch(r"label_values\((\w+), *(\w+)\)", v["definition"])
            found = get(f"label/{m.group(2)}/values?match[]={m.group(1)}") if m else []
            values[v["name"]] = found[0] if found else "none"
        for panel in board.get("panels", []):
            for target in panel.get("targets", []):
                expr = target["expr"]
                for key, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
                    expr = expr.replace("$" + key, value).replace("${" + key + "}", value)
                result = get("query?query=" + urllib.parse.quote(expr))["result"]
                out[(name, panel["title"], expr)] = len(result)
    return out


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
        # 2. The dashboards against a real Prometheus scraping the three daemons.
        boards = dashboards()
        problems = provisioning_problems(boards)
        check.expect(len(boards) >= 4 and not problems,
                     f"{len(boards)} dashboards with what Grafana's provisioning needs: {problems}")
        shipped = open(os.path.join(ROOT, "deploy", "prometheus", "prometheus.yml")).read()
        config = (shipped.replace("scrape_interval: 15s", "scrape_interval: 1s")
                  .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
                  .replace("127.0.0.1:9470", f"127.0.0.1:{ports['data']}")
                  .replace("127.0.0.1:9471", f"127.0.0.1:{ports['coordinator']}")
                  .replace('"127.0.0.1:9472", "127.0.0.1:9473"', f'"127.0.0.1:{ports["worker"]}"')
                  .replace("- maestro.rules.yml", "- " + os.path.join(ROOT, "deploy", "prometheus", "maestro.rules.yml")))
        last = {}

        def every_panel_answers(get):
            targets = get("targets")["activeTargets"]
            if len(targets) != 3 or any(t["health"] != "up" for t in targets):
                return None
            last.clear()
            last.update(panel_queries(boards, get))
            return last if all(n > 0 for n in last.values()) else None

        answered = prometheus_poll(os.path.join(args.dir, "prometheus"), config, every_panel_answers, timeout=90)
        empty = sorted(f"{d}: {t}: {e}" for (d, t, e), n in last.items() if n == 0)
        check.expect(answered is not None,
                     f"a real Prometheus scraping the three daemons answers all {len(last)} panel queries of "
                     f"{len(boards)} dashboards with at least one series each (empty: {empty})")
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
