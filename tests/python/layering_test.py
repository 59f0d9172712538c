"""The coordinator links and includes nothing from worker/ (the trainer's side).

Read from the build itself, so a new dependency cannot hide behind a CMake variable: every
compile command of a coordinator source carries no include folder under worker/, the link
lines of the coordinator's executables name no library built under worker/, and no coordinator
source includes a worker header (maestro/engine, maestro/model, maestro/dist, maestro/worker).
"""
import argparse
import json
import os
import re
import sys

WORKER_HEADERS = re.compile(r'#\s*include\s*"maestro/(engine|model|dist|worker)/')


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, help="the source tree's root")
    parser.add_argument("--build", required=True, help="the build folder (compile_commands.json)")
    args = parser.parse_args()
    source = os.path.realpath(args.source)
    build = os.path.realpath(args.build)
    worker_dir = os.path.join(source, "worker") + os.sep
    coordinator_sources = (os.path.join(source, "coordinator") + os.sep,
                           os.path.join(source, "tools", "src", "maestro_coordinator.cpp"),
                           os.path.join(source, "tools", "src", "bench_coordinator.cpp"))
    problems = []

    with open(os.path.join(build, "compile_commands.json")) as f:
        commands = json.load(f)
    checked = 0
    for entry in commands:
        path = os.path.realpath(entry["file"])
        if not path.startswith(coordinator_sources):
            continue
        checked += 1
        words = entry.get("command", " ".join(entry.get("arguments", []))).split()
        for i, word in enumerate(words):
            folder = None
            if word.startswith("-I"):
                folder = word[2:] or (words[i + 1] if i + 1 < len(words) else "")
            elif word in ("-isystem", "-iquote") and i + 1 < len(words):
                folder = words[i + 1]
            if folder and os.path.realpath(folder).startswith(worker_dir):
                problems.append(f"{path}: compiled with the include folder {folder}")
    if checked < 5:
        problems.append(f"only {checked} coordinator sources in compile_commands.json: "
                        "is this the right build folder?")

    for target in ("maestro-coordinator", "maestro-bench-coordinator"):
        link = os.path.join(build, "tools", "CMakeFiles", target + ".dir", "link.txt")
        if not os.path.exists(link):
            problems.append(f"{link}: missing (the target is not in this build)")
            continue
        with open(link) as f:
            words = f.read().split()
        for word in words:
            if "/worker/" in word or word.startswith("worker/"):
                problems.append(f"{target} links {word}")

    for root, _, files in os.walk(os.path.join(source, "coordinator")):
        for name in files:
            path = os.path.join(root, name)
            with open(path, errors="replace") as f:
                for number, line in enumerate(f, 1):
                    if WORKER_HEADERS.search(line):
                        problems.append(f"{path}:{number}: {line.strip()}")

    for problem in problems:
        print("layering: " + problem)
    if problems:
        return 1
    print(f"layering: {checked} coordinator sources and 2 executables depend on nothing "
          "under worker/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
