"""``clothes-extractor info``: what this machine can run, and a model's contract."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import reports_errors


@click.command()
@click.option(
    "--model", type=click.Path(path_type=Path, dir_okay=False), help="Also show this model's contract and metadata."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-probe", is_flag=True, help="Do not start each provider to check that it works.")
@reports_errors
def info(model: Path | None, as_json: bool, no_probe: bool) -> None:
    """Versions, onnxruntime build, which providers start here, GPU, and a model's contract."""
    from ..runtime.environment import environment_info

    data = environment_info(probe=not no_probe)
    if model is not None:
        from ..runtime import ModelSession

        session = ModelSession(model, "cpu")
        data["model"] = {
            "path": str(model),
            "contract": json.loads(next(iter(session.contract.to_metadata().values()))),
            "metadata": {k: v for k, v in session.metadata.items()},
        }
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            if key in ("warning", "model", "providers"):
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
            contract = data["model"]["contract"]
            click.echo(f"model: {model}")
            for key, value in contract.items():
                click.echo(f"  {key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    if data.get("warning"):
        click.secho(f"WARNING: {data['warning']}", fg="red", bold=True, err=True)
