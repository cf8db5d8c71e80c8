"""``clothes-extractor info``: what this machine can run, and a model's contract."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .common import LocalPath, reports_errors, verbose_option


@click.command()
@click.option(
    "--model",
    type=LocalPath(path_type=Path, dir_okay=False),
    help="Also show this model's contract and metadata: a served ONNX model, or a bundled one by task (generator, "
    "segmenter, tryon: its CPU file).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-probe", is_flag=True, help="Do not start each provider to check that it works.")
@verbose_option
@reports_errors
def info(model: Path | None, as_json: bool, no_probe: bool) -> None:
    """Versions, onnxruntime build, which providers start here, GPU, and a model's contract.

    Exits 1 when the runtime cannot work here at all (onnxruntime missing or broken).
    """
    from .. import __version__
    from ..models import bundled_models
    from ..runtime.environment import environment_info

    data = {
        "clothes-extractor": __version__,
        **environment_info(probe=not no_probe),
        "bundled models": bundled_models(),
    }
    if model is not None:
        from ..runtime.session import contract_of

        model = _bundled(model)
        contract = contract_of(model)
        data["model"] = {"path": str(model), "contract": contract.to_json()}
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        _print(data, model)
    if data.get("warning"):
        click.secho(f"WARNING: {data['warning']}", fg="red", bold=True, err=True)
    for problem in data["problems"]:
        click.secho(f"ERROR: {problem}", fg="red", bold=True, err=True)
    if data["problems"]:
        sys.exit(1)


def _bundled(model: Path) -> Path:
    """``--model``: a file, or a task's name (``generator``, as ``evaluate`` and ``bench`` take one)
    where no file has that name: the bundled model's CPU file."""
    from ..models import TASKS, task_model

    if model.exists() or str(model) not in TASKS:
        return model
    return task_model(str(model), gpu=False)


def _print(data: dict, model: Path | None) -> None:
    for key, value in data.items():
        if key in ("warning", "model", "providers", "problems"):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
        elif isinstance(value, list):
            value = ", ".join(value) or "none"
        click.echo(f"{key}: {value}")
    click.echo("providers:")
    for name, state in data["providers"].items():
        click.echo(f"  {name}: {state}")
    if model is not None:
        click.echo(f"model: {model}")
        for key, value in data["model"]["contract"].items():
            click.echo(f"  {key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
