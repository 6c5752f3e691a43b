#!/usr/bin/env python3
"""The benchmark driver behind scripts/bench.sh (see its header and README's
"Benchmarks" section for what each figure means). Python standard library only.

    bench.py --meshform BIN --proxy-port P [--sizes 500,2000] [--latency-sizes 100]
             [--latency-ms 150] [--parallelism 10] [--json OUT] [--work DIR]

Expects a moto server behind the counting proxy (scripts/bench_proxy.py) on
127.0.0.1:P. Runs, per stack, apply, a no-op plan and destroy; then, with
the proxy delaying every call, applies (and destroys) the baseline and the
latency-size synthetic stacks and compares each apply's makespan with its
critical-path bound. Prints Markdown tables to stdout, progress to stderr.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STARTED = re.compile(r"^([^:\s]+): (creating|updating|deleting|detaching)\.\.\.$")
FINISHED = re.compile(r"^([^:\s]+): (created|updated|deleted|detached)\b.* \[[0-9.]+s\]$")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Proxy:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def reset(self, delay_ms=0):
        urllib.request.urlopen(
            urllib.request.Request(f"{self.base}/__reset?delay_ms={delay_ms}", method="POST", data=b"")
        ).read()

    def counts(self):
        return json.loads(urllib.request.urlopen(f"{self.base}/__counts").read())


def moto_cpu(pid):
    """CPU seconds (user + system) the moto server has used so far; 0 if unknown."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Run:
    """One meshform command: wall time, exit code, peak RSS and timestamped events."""

    def __init__(self, argv, env, cwd, timeout=3600):
        self.argv = argv
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.events = []  # (monotonic seconds since t0, "start"/"end", address, verb)
        self.stderr_tail = []
        self.stdout = b""

        def read_stderr():
            for raw in proc.stderr:
                now = time.monotonic() - t0
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.stderr_tail = (self.stderr_tail + [line])[-20:]
                if m := STARTED.match(line):
                    self.events.append((now, "start", m.group(1), m.group(2)))
                elif m := FINISHED.match(line):
                    self.events.append((now, "end", m.group(1), m.group(2)))

        def read_stdout():
            self.stdout = proc.stdout.read()

        readers = [threading.Thread(target=read_stderr), threading.Thread(target=read_stdout)]
        for r in readers:
            r.start()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        # wait4 gives this child's own rusage: ru_maxrss is its peak RSS in KiB (Linux).
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.wall = time.monotonic() - t0
        for r in readers:
            r.join()
        self.code = proc.returncode
        self.rss_mib = usage.ru_maxrss / 1024.0
        # meshform's own CPU time: what the emulator spends is apart (moto_cpu).
        self.cpu_s = usage.ru_utime + usage.ru_stime

    def check(self, *ok):
        if self.code not in (ok or (0,)):
            tail = "\n".join(self.stderr_tail)
            raise SystemExit(f"{' '.join(self.argv)} exited {self.code}:\n{tail}")
        return self


class Bench:
    def __init__(self, args):
        self.bin = args.meshform
        self.proxy = Proxy(args.proxy_port)
        self.parallelism = args.parallelism
        self.moto_pid = args.moto_pid
        # State files and generated stacks; bench.sh passes a directory it removes.
        self.work = args.work or tempfile.mkdtemp(prefix="meshform-bench-")
        os.makedirs(self.work, exist_ok=True)
        self.env = dict(os.environ)
        self.env.update({
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{args.proxy_port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-west-2",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        })

    def meshform(self, *argv):
        before = moto_cpu(self.moto_pid)
        run = Run([self.bin, *argv], self.env, self.work)
        run.moto_cpu_s = moto_cpu(self.moto_pid) - before
        return run

    def state(self, label):
        return os.path.join(self.work, f"{label}.json")

    def synthetic(self, size, tag):
        name = f"bench-{tag}-{size}-{os.getpid()}"
        path = os.path.join(self.work, f"{name}.toml")
        with open(path, "w") as f:
            f.write(subprocess.check_output([sys.executable, os.path.join(ROOT, "scripts", "bench_stack.py"),
                                             str(size), name], text=True))
        return path

    def figures(self, label, stack):
        """Apply, no-op plan (with its calls counted), destroy, without added latency."""
        st = self.state(label)
        self.proxy.reset(0)
        log(f"{label}: apply")
        apply = self.meshform("apply", stack, "--auto-approve", "--parallelism", str(self.parallelism),
                              "--state", st).check()
        apply_calls = self.proxy.counts()
        resources = json.load(open(st)).get("resources", {})
        self.proxy.reset(0)
        log(f"{label}: no-op plan")
        plan = self.meshform("plan", stack, "--detailed-exitcode", "--state", st).check(0)
        plan_calls = self.proxy.counts()
        self.proxy.reset(0)
        log(f"{label}: destroy")
        destroy = self.meshform("destroy", stack, "--auto-approve", "--parallelism", str(self.parallelism),
                                "--state", st).check()
        destroy_calls = self.proxy.counts()
        return {
            "label": label,
            "resources": len(resources),
            "apply_s": apply.wall,
            "apply_calls": sum(apply_calls.values()),
            "plan_s": plan.wall,
            "plan_calls": sum(plan_calls.values()),
            "plan_calls_by_op": plan_calls,
            "destroy_s": destroy.wall,
            "destroy_calls": sum(destroy_calls.values()),
            "apply_cpu_s": apply.cpu_s,
            "apply_moto_cpu_s": apply.moto_cpu_s,
            "plan_cpu_s": plan.cpu_s,
            "plan_moto_cpu_s": plan.moto_cpu_s,
            "rss_apply_mib": apply.rss_mib,
            "rss_plan_mib": plan.rss_mib,
            "rss_destroy_mib": destroy.rss_mib,
        }

    def latency(self, label, stack, delay_ms):
        """Apply through the delaying proxy; makespan against the critical-path bound."""
        st = self.state(f"{label}-latency")
        self.proxy.reset(0)
        plan = json.loads(self.meshform("plan", stack, "--json", "--state", st).check().stdout)
        # Apply plans first, with the same calls: those are not the steps'.
        plan_calls = sum(self.proxy.counts().values())
        deps = {r["address"]: [d for d in r["dependencies"]] for r in plan["resources"]
                if r["action"] == "create"}
        self.proxy.reset(delay_ms)
        log(f"{label}: apply with {delay_ms} ms per call")
        apply = self.meshform("apply", stack, "--auto-approve", "--parallelism", str(self.parallelism),
                              "--state", st).check()
        calls = self.proxy.counts()
        self.proxy.reset(0)
        log(f"{label}: destroy (no added latency)")
        self.meshform("destroy", stack, "--auto-approve", "--state", st).check()
        starts = {a: t for t, kind, a, _ in apply.events if kind == "start"}
        ends = {a: t for t, kind, a, _ in apply.events if kind == "end"}
        missing = set(deps) - set(starts) - set(ends)
        if missing:
            raise SystemExit(f"{label}: no start/end lines for {sorted(missing)[:5]}")
        duration = {a: ends[a] - starts[a] for a in deps}
        finish = {}

        def longest(a):  # the longest chain ending with a, each step costed at its measured duration
            if a not in finish:
                finish[a] = duration[a] + max((longest(d) for d in deps[a] if d in deps), default=0.0)
            return finish[a]

        sys.setrecursionlimit(max(10000, 4 * len(deps)))
        critical = max(longest(a) for a in deps)
        work = sum(duration.values())
        makespan = max(ends.values()) - min(starts.values())
        bound = max(critical, work / self.parallelism)
        return {
            "label": label,
            "steps": len(deps),
            "delay_ms": delay_ms,
            "calls": sum(calls.values()),
            "step_calls": sum(calls.values()) - plan_calls,
            "apply_wall_s": apply.wall,
            "makespan_s": makespan,
            "critical_path_s": critical,
            "work_s": work,
            "work_over_parallelism_s": work / self.parallelism,
            "makespan_over_critical_path": makespan / critical,
            "makespan_over_bound": makespan / bound,
            # How much longer the steps took than their calls' injected delay alone.
            "work_over_step_calls_delay": work / max(1, sum(calls.values()) - plan_calls) / (delay_ms / 1000.0),
        }


def fmt(x, digits=2):
    return f"{x:.{digits}f}"


def report(results, latency, sizes, parallelism, delay_ms):
    out = []
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    out.append(f"meshform benchmark, {when}, {platform.machine()} {os.cpu_count()} CPUs ({cpu}), "
               f"moto behind the counting proxy, --parallelism {parallelism}")
    out.append("")
    out.append("| stack | resources | apply s | apply calls | no-op plan s | no-op plan calls | "
               "destroy s | peak RSS MiB (apply/plan/destroy) | apply ms/resource | plan calls/resource |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        n = max(r["resources"], 1)
        out.append(f"| {r['label']} | {r['resources']} | {fmt(r['apply_s'])} | {r['apply_calls']} | "
                   f"{fmt(r['plan_s'])} | {r['plan_calls']} | {fmt(r['destroy_s'])} | "
                   f"{fmt(r['rss_apply_mib'], 0)}/{fmt(r['rss_plan_mib'], 0)}/{fmt(r['rss_destroy_mib'], 0)} | "
                   f"{fmt(1000 * r['apply_s'] / n, 1)} | {fmt(r['plan_calls'] / n)} |")
    synth = [r for r in results if r["label"].startswith("synthetic")]
    if len(synth) >= 2:
        small, large = synth[0], synth[-1]
        out.append("")
        out.append(f"Growth {small['label']} -> {large['label']} (same run; resources x"
                   f"{large['resources'] / small['resources']:.2f}; 4.00 means linear in a 4x size):")
        out.append("")
        out.append("| figure | ratio |")
        out.append("|---|---:|")
        for key, name in [("apply_s", "apply time"), ("apply_calls", "apply calls"),
                          ("plan_s", "no-op plan time"), ("plan_calls", "no-op plan calls"),
                          ("apply_cpu_s", "apply CPU time, meshform"),
                          ("apply_moto_cpu_s", "apply CPU time, moto (the emulator)"),
                          ("plan_cpu_s", "no-op plan CPU time, meshform"),
                          ("plan_moto_cpu_s", "no-op plan CPU time, moto (the emulator)"),
                          ("destroy_s", "destroy time"), ("rss_apply_mib", "peak RSS (apply)"),
                          ("rss_plan_mib", "peak RSS (plan)")]:
            if small[key] > 0:
                out.append(f"| {name} | {fmt(large[key] / small[key])} |")
    out.append("")
    out.append("No-op plan calls by service:operation:")
    out.append("")
    ops = sorted({op for r in results for op in r["plan_calls_by_op"]})
    out.append("| operation | " + " | ".join(r["label"] for r in results) + " |")
    out.append("|---|" + "---:|" * len(results))
    for op in ops:
        out.append(f"| {op} | " + " | ".join(str(r["plan_calls_by_op"].get(op, 0)) for r in results) + " |")
    if latency:
        out.append("")
        out.append(f"Apply through the proxy adding {delay_ms} ms to every call (critical path: the longest "
                   "chain of dependent steps, each costed at its measured duration; work bound: the sum "
                   f"of step durations / {parallelism}):")
        out.append("")
        out.append("| stack | steps | step calls | apply wall s | makespan s | critical path s | "
                   "work/parallelism s | makespan / critical path | makespan / max(bounds) | "
                   "work / (step calls x delay) |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in latency:
            out.append(f"| {r['label']} | {r['steps']} | {r['step_calls']} | {fmt(r['apply_wall_s'])} | "
                       f"{fmt(r['makespan_s'])} | {fmt(r['critical_path_s'])} | "
                       f"{fmt(r['work_over_parallelism_s'])} | {fmt(r['makespan_over_critical_path'])} | "
                       f"{fmt(r['makespan_over_bound'])} | {fmt(r['work_over_step_calls_delay'])} |")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--meshform", required=True)
    p.add_argument("--proxy-port", type=int, required=True)
    p.add_argument("--sizes", default="500,2000")
    p.add_argument("--latency-sizes", default="200")
    p.add_argument("--latency-ms", type=int, default=150)
    p.add_argument("--parallelism", type=int, default=10)
    p.add_argument("--json")
    p.add_argument("--moto-pid", type=int, default=0, help="moto's pid, to report its CPU time")
    p.add_argument("--work", help="scratch directory (default: a new one under $TMPDIR, kept)")
    args = p.parse_args()
    bench = Bench(args)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    baseline = os.path.join(ROOT, "stacks", "baseline.toml")
    results = [bench.figures("baseline", baseline)]
    for size in sizes:
        results.append(bench.figures(f"synthetic-{size}", bench.synthetic(size, "s")))
    latency = [bench.latency("baseline", baseline, args.latency_ms)]
    for size in [int(s) for s in args.latency_sizes.split(",") if s]:
        latency.append(bench.latency(f"synthetic-{size}", bench.synthetic(size, "l"), args.latency_ms))
    text = report(results, latency, sizes, args.parallelism, args.latency_ms)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"figures": results, "latency": latency}, f, indent=2)


if __name__ == "__main__":
    main()
