"""Run the benchmark suites (or read saved pytest-benchmark JSON) and print ONE table of medians.

    python benchmarks/report.py                       # run everything, print the table (takes a few minutes)
    python benchmarks/report.py --skip denormals      # without the long denormals run
    python benchmarks/report.py --json run.json       # report a saved run (pytest ... --benchmark-json=run.json)
    python benchmarks/report.py --save all.json       # also keep the merged JSON of this run
    python benchmarks/report.py --json targets.json   # issue 8's targets (bench_targets.py, run by pytest itself)

Suites run in separate pytest processes: fastnet's kernels, training steps and predict; PyTorch eager (so its OpenMP
threads, which spin after each op, never compete with fastnet's); each peer of ``bench_peers.py`` (torch.compile, JAX
with YNNPACK convolutions, JAX with XLA's convolutions, ONNX Runtime: XLA reads its flags once per process);
startup; denormals. Ratios are speed-ups, ``other median / fast median``: above 1 means fastnet's compiled backend
is faster. "vs torch" uses PyTorch's faster memory layout. The first table's targets are issue 3's, the peers
table's issue 8's. Pass ``-- --fn-threads N`` for a comparison at a fixed thread count (fastnet's default follows
the machine's load, and every peer takes the count fastnet has when the session starts).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

SUITES = {  # name -> (pytest marker expression, extra pytest arguments); one process each
    "fastnet": ("kernels or steps or predict", []),
    "torch": ("torch and not denormals", []),
    "inductor": ("inductor", []),
    "jax": ("jax", ["--fn-jax-convs", "ynnpack"]),
    "jax-xla-convs": ("jax", ["--fn-jax-convs", "xla"]),
    "onnxruntime": ("onnxruntime", []),
    "startup": ("startup", []),
    "denormals": ("denormals", []),
}

# peers table: variant -> column label; the columns in this order
PEER_COLUMNS = [
    ("PyTorch eager", ["torch", "torch-channels_last"]),
    ("torch.compile", ["torch-compile", "torch-compile-channels_last"]),
    ("JAX jit (YNNPACK / XLA convs)", ["jax", "jax-xla-convs"]),
    ("ONNX Runtime", ["onnxruntime"]),
]
PEER_NAMES = {
    "torch": "PyTorch eager",
    "torch-channels_last": "PyTorch eager channels-last",
    "torch-compile": "torch.compile",
    "torch-compile-channels_last": "torch.compile channels-last",
    "jax": "JAX jit (YNNPACK convs)",
    "jax-xla-convs": "JAX jit (XLA convs)",
    "onnxruntime": "ONNX Runtime",
}


# ---- running ---------------------------------------------------------------------------------


def run_suite(name: str, marker: str, extra: list[str]) -> dict | None:
    fd, out = tempfile.mkstemp(suffix=f"-{name}.json")
    os.close(fd)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(HERE),
        "--benchmark-only",
        "-q",
        "-m",
        marker,
        f"--benchmark-json={out}",
        *extra,
    ]
    print(f"# running {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail = [
        ln
        for ln in proc.stdout.splitlines()
        if ln.startswith(("SKIPPED", "FAILED", "ERROR")) or " passed" in ln or " failed" in ln or " skipped" in ln
    ]
    for ln in tail:
        print(f"#   {ln}", file=sys.stderr)
    try:
        with open(out) as f:
            return json.load(f)
    except (OSError, ValueError):
        print(f"# {name}: no results (pytest exit code {proc.returncode})\n{proc.stdout[-2000:]}", file=sys.stderr)
        return None
    finally:
        os.unlink(out)


def merge(runs: list[dict]) -> dict:
    merged = {"machine_info": {}, "benchmarks": []}
    for r in runs:
        if r is None:
            continue
        if not merged["machine_info"]:
            merged["machine_info"] = r.get("machine_info", {})
        merged["benchmarks"].extend(r.get("benchmarks", []))
    return merged


# ---- formatting ------------------------------------------------------------------------------


def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def target_for(group: str) -> tuple[float, float | None]:
    """(minimum speed-up over the NumPy reference, minimum over PyTorch or None) from issue 3's Targets."""
    if group.startswith("kernel "):
        strict = ("conv" in group and group.endswith("fwd+bwd")) or "maxpool" in group
        return (3.0 if strict else 1.0), None
    if group.startswith("step M4"):
        return 2.0, 1.0
    if group.startswith("step M3"):
        return 2.0, 1.2
    return 1.0, 1.2  # M1, M2: "faster than" NumPy (strictly), 1.2x PyTorch


def rows_by_group(benchmarks: list[dict]) -> dict[str, dict[str, dict]]:
    groups: dict[str, dict[str, dict]] = {}
    for b in benchmarks:
        variant = b.get("extra_info", {}).get("variant", b["name"])
        groups.setdefault(b.get("group") or b["name"], {})[variant] = b
    return groups


def med(entry: dict | None) -> float | None:
    return None if entry is None else entry["stats"]["median"]


def _throughput(entry: dict | None) -> str:
    """samples/s for training steps, GFLOP/s for GEMM-bound kernels, GB/s (input read) for the others."""
    x = (entry or {}).get("extra_info", {})
    if "samples_per_s" in x:
        return f"{x['samples_per_s']:,.0f} samples/s"
    if "gflops" in x:
        return f"{x['gflops']:.1f} GFLOP/s"
    if "gbytes_per_s" in x:
        return f"{x['gbytes_per_s']:.1f} GB/s"
    return "-"


def speed_table(groups: dict) -> list[str]:
    lines = [
        "| benchmark | fast | NumPy ref | PyTorch (default / channels-last) | fast vs ref | fast vs torch "
        "| fast throughput | target (ref / torch) | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    steps = [g for g in groups if g.startswith("step ")]
    # M1..M4, smaller batch first (the group name ends in "b<batch>")
    steps.sort(key=lambda g: (g.split()[1], int(g.rsplit("b", 1)[1]) if g.rsplit("b", 1)[1].isdigit() else 0))
    names = [g for g in groups if g.startswith("kernel ")] + steps
    if not names:  # e.g. only predict was run
        return []
    for g in names:
        v = groups[g]
        fast, ref = med(v.get("fast")), med(v.get("numpy"))
        t_def, t_cl = med(v.get("torch")), med(v.get("torch-channels_last"))
        torch_best = min([t for t in (t_def, t_cl) if t is not None], default=None)
        vs_ref = ref / fast if fast and ref else None
        vs_torch = torch_best / fast if fast and torch_best else None
        want_ref, want_torch = target_for(g)
        met = []
        if vs_ref is not None:
            ok = vs_ref > want_ref if want_ref == 1.0 and g.startswith("step") else vs_ref >= want_ref
            met.append("yes" if ok else "MISSED")
        if want_torch is not None and vs_torch is not None:
            met.append("yes" if vs_torch >= want_torch else "MISSED")
        throughput = _throughput(v.get("fast"))
        torch_cell = fmt_time(t_def) + (f" / {fmt_time(t_cl)}" if t_cl is not None else "")
        target = f">={want_ref:g}x" + (f" / >={want_torch:g}x" if want_torch is not None else "")
        lines.append(
            f"| {g} | {fmt_time(fast)} | {fmt_time(ref)} | {torch_cell} | {fmt_ratio(vs_ref)} | "
            f"{fmt_ratio(vs_torch)} | {throughput} | {target} | "
            f"{' / '.join(met) or 'not measured'} |"
        )
    return lines


def _batch_of(group: str) -> int:
    tail = group.rsplit("b", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def peer_target(group: str) -> float:
    """Issue 8's target for fastnet / best peer: 2x on the MLPs, 1.5x on the conv nets' steps, 1x on predict."""
    if group.startswith("predict "):
        return 1.0
    return 2.0 if group.split()[1] in ("M1", "M2") else 1.5


def best_peer(variants: dict) -> tuple[str, float] | None:
    times = [(v, med(e)) for v, e in variants.items() if v in PEER_NAMES and med(e)]
    return min(times, key=lambda t: t[1]) if times else None


def peers_table(groups: dict) -> list[str]:
    names = sorted(g for g in groups if g.startswith(("step ", "predict ")) and best_peer(groups[g]) is not None)
    if not names:
        return []
    head = " | ".join(label for label, _ in PEER_COLUMNS)
    lines = [
        "",
        "Against the strongest peers (issue 8): fastnet / best peer = best peer median / fastnet median.",
        "",
        f"| workload | fastnet | {head} | best peer | fastnet / best peer | target | met |",
        "|---" * (6 + len(PEER_COLUMNS)) + "|",
    ]
    for g in sorted(names, key=lambda g: (g.split()[0] != "step", g.split()[1], _batch_of(g))):
        v = groups[g]
        fast = med(v.get("fast"))
        cells = [" / ".join(fmt_time(med(v.get(k))) for k in keys) for _, keys in PEER_COLUMNS]
        peer, t_peer = best_peer(v)
        ratio = t_peer / fast if fast else None
        want = peer_target(g)
        met = "not measured" if ratio is None else ("yes" if ratio >= want else "MISSED")
        lines.append(
            f"| {g} | {fmt_time(fast)} | {' | '.join(cells)} | {PEER_NAMES[peer]} | {fmt_ratio(ratio)} | "
            f">={want:g}x | {met} |"
        )
    return lines


def peer_versions(benchmarks: list[dict]) -> list[str]:
    seen = {}
    for b in benchmarks:
        x = b.get("extra_info", {})
        for key in ("torch", "jax", "optax", "onnxruntime"):
            if key in x:
                seen[key] = x[key]
        if x.get("variant", "").startswith("jax") and x.get("XLA_FLAGS") is not None:
            seen[f"XLA_FLAGS ({x['variant']})"] = x["XLA_FLAGS"] or "(none)"
    return [f"Peers: {'; '.join(f'{k} {v}' for k, v in seen.items())}."] if seen else []


def startup_table(groups: dict) -> list[str]:
    names = sorted(g for g in groups if g.startswith("startup "))
    if not names:
        return []
    lines = [
        "",
        "| time from `import fastnet` to the first finished step | cache | import | first step | total | steady step |",
        "|---|---|---|---|---|---|",
    ]
    for g in names:
        for cache in ("cold", "warm"):
            e = groups[g].get(cache)
            if e is None:
                continue
            x = e["extra_info"]
            lines.append(
                f"| {x.get('model', g)} | {cache} | {fmt_time(x.get('import_s'))} | "
                f"{fmt_time(x.get('first_step_s'))} | {fmt_time(x.get('total_s'))} | "
                f"{fmt_time(x.get('second_step_s'))} |"
            )
    return lines


def denormal_table(groups: dict) -> list[str]:
    g = groups.get("denormals M1 long run")
    if not g:
        return []
    lines = [
        "",
        "| M1 long run (RMSprop, batch 128) | steps | early step (median / p10) | late step (median / p10) "
        "| late / early (median / p10) | subnormal share of optimizer state |",
        "|---|---|---|---|---|---|",
    ]
    for variant in sorted(g):
        x = g[variant]["extra_info"]
        lines.append(
            f"| {variant} | {x.get('steps')} | {x.get('early_ms', 0):.2f} / {x.get('early_p10_ms', 0):.2f} ms "
            f"| {x.get('late_ms', 0):.2f} / {x.get('late_p10_ms', 0):.2f} ms | "
            f"{x.get('late_over_early', 0):.2f} / {x.get('late_over_early_p10', 0):.2f} | "
            f"{x.get('subnormal_share_optimizer_state', 0):.2%} |"
        )
    return lines


def machine_lines(info: dict) -> list[str]:
    fi = info.get("fastnet") or {}
    if not fi:
        return [f"Machine: {info.get('cpu', {}).get('brand_raw', info.get('processor', 'unknown'))}"]
    return [
        f"Machine: {fi['cpu']} (vector flags: {fi.get('vector_flags', 'not recorded')}), {fi['logical_cpus']} logical "
        f"CPUs ({fi['affinity_cpus']} in the affinity mask), {fi['fastnet_threads']} threads for fastnet and the "
        f"peers; Python {fi['python']}, NumPy {fi['numpy']}, "
        f"Numba {fi['numba']}, PyTorch {fi['torch'] or 'not installed'}; BLAS: {fi['blas']}; "
        f"OPENBLAS_CORETYPE={fi['OPENBLAS_CORETYPE']}; "
        f"OPENBLAS_THREAD_TIMEOUT={fi.get('OPENBLAS_THREAD_TIMEOUT', '(unknown)')}; fastnet flush-to-zero "
        f"{ {True: 'on', False: 'off'}.get(fi.get('flush_denormals'), 'unknown') } (PyTorch: its default, off)."
    ]


def data_line(benchmarks: list[dict]) -> list[str]:
    sources = sorted({b["extra_info"]["data"] for b in benchmarks if "data" in b.get("extra_info", {})})
    return [f"Data for the training steps: {', '.join(sources)}."] if sources else []


def noise_lines(benchmarks: list[dict], limit: float = 0.2) -> list[str]:
    """Name the timings whose interquartile range is more than ``limit`` of the median: read those ratios warily."""
    noisy = [
        f"{b.get('group')} [{b.get('extra_info', {}).get('variant', b['name'])}] "
        f"{b['stats']['iqr'] / b['stats']['median']:.0%}"
        for b in benchmarks
        if b["stats"]["median"] > 0
        and b["stats"].get("rounds", 0) > 1
        and b["stats"]["iqr"] / b["stats"]["median"] > limit
    ]
    return ["", f"Noisy (IQR > {limit:.0%} of the median): " + "; ".join(noisy) + "."] if noisy else []


def conv_rate_table(groups: dict) -> list[str]:
    """Issue 8's target 3: every conv benchmark's GFLOP/s (direct-convolution FLOPs) against the GEMM rate
    measured in the same run (``bench_kernels.py::test_gemm_rate``)."""
    gemm = next((v.get("fast") for g, v in groups.items() if g.startswith("gemm ")), None)
    rate = (gemm or {}).get("extra_info", {}).get("gflops")
    convs = [
        (g, name, entry["extra_info"]["gflops"])
        for g, v in groups.items()
        if g.startswith(("kernel conv", "conv engine"))
        for name, entry in v.items()
        if name in ("fast", "im2col", "winograd", "blocked", "strided") and "gflops" in entry.get("extra_info", {})
    ]
    if not rate or not convs:
        return []
    lines = ["", f"Convolutions against this run's float32 GEMM rate ({gemm['group']}: {rate:.1f} GFLOP/s):", ""]
    lines += ["| benchmark | variant | GFLOP/s | % of GEMM rate |", "|---|---|---|---|"]
    lines += [f"| {g} | {name} | {gf:.1f} | {100 * gf / rate:.0f}% |" for g, name, gf in convs]
    return lines


def _target_cell(x: dict) -> str:
    if x["target_kind"] == "conv rate":
        return f"{x['conv_gflops']:.0f} GFLOP/s, GEMM {x['gemm_gflops']:.0f}: {100 * x['ratio']:.0f}%"
    if x["target_kind"] == "peak memory":
        r = x["rows"]
        torch_peak = min(r["torch"]["peak_mb"], r["torch-channels_last"]["peak_mb"])
        return f"fastnet {r['fastnet']['peak_mb']:.0f} MB, PyTorch {torch_peak:.0f} MB"
    lo, hi = x["ratio_range"]
    fast, peer = x["median_ms"]["fastnet"], x["median_ms"][x["best_peer"]]
    return f"{fast:.2f} ms vs {x['best_peer']} {peer:.2f} ms: **{x['ratio']:.2f}x** ({lo:.2f}-{hi:.2f})"


def targets_table(benchmarks: list[dict]) -> list[str]:
    """Issue 8's targets from ``bench_targets.py``: one row per workload, 2 threads and 1 thread side by side."""
    rows: dict[str, dict[int, dict]] = {}
    for b in benchmarks:
        x = b.get("extra_info", {})
        if "target_kind" in x:
            name = b["group"].removeprefix("target ").removesuffix(f" {x.get('threads')}t")
            rows.setdefault(name, {})[x.get("threads", 0)] = x
    if not rows:
        return []
    lines = ["", "Issue 8's targets (bench_targets.py; fastnet / best peer, above 1: fastnet faster):", ""]
    lines += ["| target | 2 threads | 1 thread | wanted | met |", "|---|---|---|---|---|"]
    for name, by_threads in rows.items():
        cells = [_target_cell(by_threads[t]) if t in by_threads else "-" for t in (2, 1)]
        if 0 in by_threads:  # not per thread count (peak memory)
            cells = [_target_cell(by_threads[0]), "-"]
        any_x = next(iter(by_threads.values()))
        kind, want = any_x["target_kind"], any_x["target"]
        wanted = {"conv rate": f">= {100 * want:.0f}% of GEMM", "peak memory": "<= PyTorch"}.get(kind, f">= {want:g}x")
        met = " / ".join("met" if x["met"] else "missed" for _, x in sorted(by_threads.items(), reverse=True))
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {wanted} | {met} |")
    return lines


def report(data: dict) -> str:
    groups = rows_by_group(data["benchmarks"])
    out = (
        machine_lines(data.get("machine_info", {})) + peer_versions(data["benchmarks"]) + data_line(data["benchmarks"])
    )
    out += [""]
    out += ["Medians; ratios are speed-ups of fastnet's compiled backend (other / fast, above 1 = fastnet faster)."]
    out += (
        [""]
        + speed_table(groups)
        + conv_rate_table(groups)
        + targets_table(data["benchmarks"])
        + peers_table(groups)
        + startup_table(groups)
        + denormal_table(groups)
        + noise_lines(data["benchmarks"])
    )
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", nargs="+", help="report saved pytest-benchmark JSON file(s) instead of running")
    ap.add_argument("--skip", default="", help=f"comma-separated suites not to run, of {', '.join(SUITES)}")
    ap.add_argument("--save", help="write the merged JSON of this run here")
    ap.add_argument("pytest_args", nargs="*", help="passed to pytest after --, e.g. -- --fn-rounds 30")
    args = ap.parse_args(argv)
    if args.json:
        runs = []
        for path in args.json:
            with open(path) as f:
                runs.append(json.load(f))
    else:
        skip = {s.strip() for s in args.skip.split(",") if s.strip()}
        unknown = skip - set(SUITES)
        if unknown:
            ap.error(f"--skip: unknown suite(s) {sorted(unknown)}, expected some of {list(SUITES)}")
        runs = [
            run_suite(name, marker, more + args.pytest_args)
            for name, (marker, more) in SUITES.items()
            if name not in skip
        ]
    data = merge(runs)
    if args.save:
        with open(args.save, "w") as f:
            json.dump(data, f, indent=1)
    if not data["benchmarks"]:
        print("no benchmark results", file=sys.stderr)
        return 1
    print(report(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
