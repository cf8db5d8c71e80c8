"""Merging result files from several machines: one markdown table, one plot.

Rows are (engine, provider, io, batch); each machine gets a column of images/s and p99
latency. Ratios to PyTorch are computed within one result file only: a ratio never mixes
numbers measured on two machines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..runtime.files import write_atomic

SCHEMA = "clothes-extractor-bench/1"


def load_results(paths: list[Path], skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """The benchmark results among ``paths``. A file that is not one (another JSON in the
    results folder, a broken file) is left out and named in ``skipped`` with the reason;
    ``InputError`` if none is left."""
    loaded = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            reason = f"{path}: not readable JSON ({exc})"
        else:
            if isinstance(data, dict) and data.get("schema") == SCHEMA:
                data["_path"] = str(path)
                loaded.append(data)
                continue
            reason = f"{path}: not a clothes-extractor benchmark result ({SCHEMA})"
        if skipped is None:
            raise InputError(reason)
        skipped.append(reason)
    if not loaded:
        raise InputError("none of the files is a clothes-extractor benchmark result: " + "; ".join(skipped or []))
    return loaded


def models_differ(results: list[dict[str, Any]]) -> str | None:
    """A warning when the results time different models (their rows do not compare)."""
    models = {(r["model"]["sha256"], r["model"]["file"]) for r in results}
    if len(models) < 2:
        return None
    names = ", ".join(sorted(f"{name} ({digest[:12]})" for digest, name in models))
    return f"these results time different models: {names}; their rows do not compare like for like"


def machine_name(result: dict[str, Any]) -> str:
    fp = result["fingerprint"]
    return fp.get("label") or (fp["gpu"]["name"] if fp.get("gpu") else fp["cpu"])


def torch_ratios(result: dict[str, Any]) -> dict[tuple[str, str, str, int], float]:
    """onnxruntime images/s over the best PyTorch images/s, per (engine, provider, io, batch), same file."""
    best_torch: dict[tuple[str, int], float] = {}
    for row in result["results"]:
        if row["engine"].startswith("torch"):
            key = (row["provider"] if row["provider"] == "cpu" else "gpu", row["batch"])
            best_torch[key] = max(best_torch.get(key, 0.0), row["images_per_s"])
    ratios = {}
    for row in result["results"]:
        if row["engine"].startswith("onnxruntime"):
            key = ("cpu" if row["provider"] == "cpu" else "gpu", row["batch"])
            if best_torch.get(key):
                ratios[(row["engine"], row["provider"], row["io"], row["batch"])] = (
                    row["images_per_s"] / best_torch[key]
                )
    return ratios


def markdown_table(results: list[dict[str, Any]]) -> str:
    machines = [machine_name(r) for r in results]
    header = ["engine", "provider", "io", "batch"] + [f"{m}: images/s (p99 ms)" for m in machines]
    header += [f"{m}: vs PyTorch" for m in machines]
    rows: dict[tuple, list[str]] = {}
    for column, result in enumerate(results):
        ratios = torch_ratios(result)
        for row in result["results"]:
            key = (row["engine"], row["provider"], row["io"], row["batch"])
            cells = rows.setdefault(key, ["-"] * (2 * len(results)))
            cells[column] = f"{row['images_per_s']:,.1f} ({row['latency_ms']['p99']:.2f})"
            ratio = ratios.get(key)
            cells[len(results) + column] = f"{ratio:.2f}x" if ratio else "-"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in sorted(rows, key=lambda k: (k[0] != "onnxruntime", k[0], k[1], k[2], k[3])):
        lines.append("| " + " | ".join([*map(str, key), *rows[key]]) + " |")
    notes = []
    for result in results:
        fp = result["fingerprint"]
        card = fp.get("gpu")
        gpu = f"{card['name']} (driver {card['driver']}, CUDA {card['cuda']})" if card else "no GPU"
        versions = ", ".join(f"{k} {v}" for k, v in fp["versions"].items() if v)
        model = result["model"]
        notes.append(
            f"- **{machine_name(result)}**: {fp['cpu']} ({fp['cores']} cores), {gpu}; {versions}; "
            f"model {model['file']} {model['precision']} {model['input'][0]}x{model['input'][1]} "
            f"(sha256 {model['sha256'][:12]}); {fp['date']}"
        )
        e2e = result.get("e2e")
        if e2e:
            notes.append(_e2e_note(e2e))
    warning = models_differ(results)
    if warning:
        notes.append(f"- **warning**: {warning}")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def _e2e_note(e2e: dict[str, Any]) -> str:
    shares = ", ".join(f"{k} {v:.0%}" for k, v in e2e["stage_share"].items()) or "not timed (worker processes)"
    vs_model = f"{e2e['vs_model_only']:.2f}x the model-only rate" if e2e.get("vs_model_only") else "no model-only row"
    ceiling = e2e.get("ceiling")
    vs_ceiling = (
        f"; host ceiling (decode + fit + encode, no model, {ceiling['workers']} processes) "
        f"{ceiling['images_per_s']:.1f} images/s, extract at {e2e['vs_ceiling']:.2f}x it"
        if ceiling
        else ""
    )
    failed = (
        f" ({e2e['failed']} failed: the rate counts the {e2e['ok']} extracted; `extract` on the folder says why)"
        if e2e.get("failed")
        else ""
    )
    cpu, calling = e2e.get("calling_cpu_ms"), ""  # (results before 2026-12-04 have none)
    if cpu:
        in_models = cpu.get("main_thread_in_models")  # (the day's first results have none either)
        in_models = "" if in_models is None else f", {in_models:.1f} of it in the models' runs"
        pool = cpu.get("pool_threads")  # (with worker processes, since the 49th stop)
        pool = f"; the process pool's threads {pool:.1f}" if pool else ""
        main = f"main thread {cpu['main_thread']:.1f}{in_models}{pool}"
        calling = f"; the calling process's CPU {cpu['process']:.1f} ms a photo ({main})"
    crossed = e2e.get("crossed")  # (with worker processes, since the 50th stop)
    if crossed:
        shared, tasks = crossed.get("shared memory", 0), sum(crossed.values())
        calling += f"; {shared} of {tasks} tasks' arrays in shared memory" + (
            "" if shared == tasks else " (see `info`)"
        )
    return (
        f"  - end-to-end `extract` on {e2e['photos']} photos{failed}: {e2e['images_per_s']:.1f} images/s "
        f"({e2e['provider']}, batch {e2e['batch']}, {e2e.get('cpu_streams') or 1} stream(s), "
        f"{e2e['workers']} {e2e.get('worker_kind', 'workers')}; {vs_model}{vs_ceiling}); stage shares: {shares}"
        f"{calling}"
    )


PLOT_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg", "webp")  # what --plot writes, by its suffix


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Throughput and p99 latency against batch size, a line per machine x engine x provider."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError('the plot needs matplotlib: pip install "clothes-extractor[bench]"') from None
    fig, (ax_tp, ax_lat) = plt.subplots(1, 2, figsize=(12, 4.5))
    for result in results:
        series: dict[tuple[str, str, str], list[dict]] = {}
        for row in result["results"]:
            series.setdefault((row["engine"], row["provider"], row["io"]), []).append(row)
        for (engine, provider, io), rows in sorted(series.items()):
            rows.sort(key=lambda r: r["batch"])
            label = f"{machine_name(result)} {engine} {provider}" + (f" ({io})" if provider != "cpu" else "")
            batches = [r["batch"] for r in rows]
            ax_tp.plot(batches, [r["images_per_s"] for r in rows], marker="o", label=label)
            ax_lat.plot(batches, [r["latency_ms"]["p99"] for r in rows], marker="o", label=label)
    for ax, title, unit in ((ax_tp, "throughput", "images/s"), (ax_lat, "p99 latency", "ms")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax_tp.legend(fontsize=7)
    fig.tight_layout()
    try:
        write_atomic(path, lambda handle: fig.savefig(handle, format=path.suffix.lower().lstrip("."), dpi=120))
    finally:
        plt.close(fig)
