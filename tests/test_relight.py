"""``train --relight``: the try-on network puts the studio-lit catalog garment in the person's
light (a gain per colour channel, read from the photo), a layer a file from before it lacks:
``--init`` from such a file starts it at the identity, and the run keeps the file's function.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from test_served_init import MODELS, network_for, outputs
from test_train import tiny_config

from clothes_extractor.errors import CheckpointError
from clothes_extractor.eval.synthetic import synthetic_feeds
from clothes_extractor.export.onnx_export import export_checked
from clothes_extractor.runtime.session import ModelSession, contract_of
from clothes_extractor.train.architectures import build
from clothes_extractor.train.checkpoint import load_model, load_weights
from clothes_extractor.train.config import TrainConfig
from clothes_extractor.train.loop import train
from clothes_extractor.train.objectives import Objective
from clothes_extractor.train.served_init import load_init
from clothes_extractor.train.tryon import (
    LIGHT_STATISTICS_SCALE,
    RELIGHT_RANGE,
    TryOnConfig,
    TryOnGenerator,
    light_statistics,
    relit,
    tryon_inputs,
)
from conftest import dress_code_folder


def relit_network(path):
    """An untrained network of the settings the served model at ``path`` records, with --relight."""
    record = dict(contract_of(path).training["architecture"])
    record.pop("name")
    return build("tryon-flow", {**record, "relight": True})


def test_the_bundled_tryon_takes_the_relight_layer_at_the_identity():
    path = MODELS / "tryon-fp32.onnx"
    assert not contract_of(path).training["architecture"].get("relight")  # a file without the layer
    model = relit_network(path)
    load_init(path, model, "--init")  # (checked to reproduce the file as export checks one)
    for weight in (model.relight.weight, model.relight.bias, model.relight_colour.weight):
        assert torch.count_nonzero(weight) == 0
    with ModelSession(path, "cpu") as session:
        feeds = synthetic_feeds(session.contract, 2, seed=5)
        want = session.run(**feeds)["image"]
        names = [spec.name for spec in session.contract.inputs]
    model.eval()
    (have,) = outputs(model, feeds, names)
    diff = np.abs(have.numpy().astype(np.int16) - want.astype(np.int16))
    assert diff.mean() < 0.5 and diff.max() <= 16
    load_init(path, network_for(path), "--init")  # without the layer, the file is taken as it always was


def test_the_gain_puts_the_warped_garment_in_the_persons_light():
    torch.manual_seed(0)
    model = TryOnGenerator(TryOnConfig(height=64, width=48, ngf=4, levels=3, top=4, relight=True)).eval()
    person = torch.rand(2, 3, 64, 48) * 2 - 1
    region = torch.zeros(2, 1, 64, 48)
    region[:, :, 16:48, 8:40] = 1
    garment, garment_mask = torch.rand(2, 3, 64, 48) * 2 - 1, torch.ones(2, 1, 64, 48)
    person_side, garment_side = tryon_inputs(person, region, garment, garment_mask)
    with torch.no_grad():
        plain = model(person_side, garment_side)
        assert torch.equal(plain["gain"], torch.ones(2, 3, 1, 1))  # the layer starts at zero: the identity
        assert torch.allclose(plain["warped"], garment, atol=1e-5)
        want = torch.tensor([0.5, 0.8, 1.2])  # a darker, bluer light
        model.relight.bias.copy_(torch.atanh(torch.log(want) / RELIGHT_RANGE))
        lit = model(person_side, garment_side)
    assert torch.allclose(lit["gain"].flatten(1), want.expand(2, 3), atol=1e-5)
    assert torch.allclose((lit["warped"] + 1) / 2, (garment + 1) / 2 * want.view(1, 3, 1, 1), atol=1e-5)
    outside = region.expand(-1, 3, -1, -1) == 0
    assert torch.equal(lit["image"][outside], person[outside])  # the person outside the region untouched
    inside = region.expand(-1, 3, -1, -1) > 0
    assert not torch.allclose(lit["image"][inside], plain["image"][inside], atol=1e-3)


def test_the_light_statistics_read_the_persons_light_outside_the_region():
    """A gain on the light adds its log to the geometric means, whatever the photo shows; the
    bright-weighted means follow it; the region to dress (the old top) does not count."""
    torch.manual_seed(2)
    rgb = torch.rand(2, 3, 64, 48) * 0.6 + 0.2  # no pixel near black or clipped
    region = torch.zeros(2, 1, 64, 48)
    region[:, :, 16:48, 8:40] = 1

    def statistics(photo):
        return light_statistics(torch.cat([photo * 2 - 1, region * 2 - 1], 1)).flatten(1) / LIGHT_STATISTICS_SCALE

    warm = torch.tensor([1.15, 1.0, 0.7])
    shift = statistics(rgb * warm.view(1, 3, 1, 1)) - statistics(rgb)
    assert torch.allclose(shift[:, :3], torch.log(warm).expand(2, 3), atol=0.02)  # (the log's floor)
    assert torch.allclose(shift[:, 3:], torch.log(warm).expand(2, 3), atol=0.03)
    repainted = torch.where(region.bool(), torch.rand_like(rgb), rgb)
    assert torch.allclose(statistics(repainted), statistics(rgb), atol=1e-6)
    assert not torch.allclose(statistics(rgb.flip(0)), statistics(rgb), atol=1e-3)
    large = torch.cat([torch.rand(1, 3, 512, 384) * 2 - 1, -torch.ones(1, 1, 512, 384)], 1)  # nothing to dress
    half = light_statistics(large.half())  # (an fp16 export's arithmetic: sums would overflow here)
    assert torch.isfinite(half).all() and torch.allclose(half.float(), light_statistics(large), atol=0.05)
    black = light_statistics(-torch.ones(1, 4, 64, 48))  # a black photo, nothing to dress: no weight at all
    assert torch.isfinite(black).all()


def test_the_colour_layer_gives_two_lights_two_gains():
    torch.manual_seed(3)
    model = TryOnGenerator(TryOnConfig(height=64, width=48, ngf=4, levels=3, top=4, relight=True)).eval()
    rgb = torch.rand(1, 3, 64, 48) * 0.6 + 0.2
    region = torch.zeros(1, 1, 64, 48)
    region[:, :, 16:48, 8:40] = 1
    garment = torch.rand(1, 3, 64, 48) * 2 - 1
    with torch.no_grad():
        model.relight_colour.weight[:, :3, 0, 0].copy_(torch.eye(3) / (LIGHT_STATISTICS_SCALE * RELIGHT_RANGE))
        gains = [
            model(*tryon_inputs(photo * 2 - 1, region, garment, torch.ones(1, 1, 64, 48)))["gain"].flatten()
            for photo in (rgb, rgb * torch.tensor([1.0, 1.0, 0.6]).view(1, 3, 1, 1))
        ]
    ratio = gains[1] / gains[0]  # (tanh bends it away from the light's own 1 / 1 / 0.6)
    assert torch.allclose(ratio[:2], torch.ones(2), atol=1e-4) and 0.6 < ratio[2] < 0.8


def test_the_warp_term_compares_the_relit_garment_with_the_worn_top():
    """Training under another light (--lighting) scores the grid on the garment as the gain
    lights it: the right gain leaves the warp term nothing to blame the grid for."""
    torch.manual_seed(1)
    config = tiny_config("unused", "unused", task="tryon", arch="flow", top=4, relight=True)
    model = build(config.architecture, dataclasses.asdict(config.network())).eval()
    objective = Objective(config, model, torch.device("cpu"), torch.contiguous_format)
    garment = torch.rand(2, 3, 64, 48) * 2 - 1
    worn = torch.ones(2, 1, 64, 48)
    dark = torch.full((2, 3, 1, 1), 0.5)
    inputs = {"garment_side": torch.cat([garment, worn * 2 - 1], 1), "target": relit(garment, dark), "worn": worn}
    with torch.no_grad():
        out = model(torch.zeros(2, 4, 64, 48), inputs["garment_side"])  # zero flow: the grids are the identity
    studio = objective._tryon_terms(inputs, out)["warp"][1]  # gain 1: the studio garment against a dark top
    relit_terms = objective._tryon_terms(inputs, {**out, "gain": dark})["warp"][1]
    assert studio > 0.1 and relit_terms < 1e-4


def test_relight_is_the_try_on_networks(tmp_path):
    with pytest.raises(ValueError, match=r"--relight is the try-on network's"):
        TrainConfig(task="generator", relight=True)
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    done = CliRunner().invoke(cli, ["train", "--task", "segmenter", "--relight", "--data", str(tmp_path), "-o", "x"])
    assert done.exit_code == 2 and "--relight is the try-on network's (--task tryon)" in done.output


def test_a_run_adds_the_relight_layer_to_a_run_without_it_and_exports_it(tmp_path):
    """A try-on run, then one started from it with --relight under --lighting: the layer starts
    at zero and learns; the export serves it (checked against PyTorch); the served file comes
    back into a --relight network, and a network without the layer refuses it by name."""
    data = dress_code_folder(tmp_path / "dc", count=6).parent
    common = dict(task="tryon", arch="flow", top=4, batch_size=2, val_limit=2, sheet_rows=0, lr_g=1e-2)
    first = train(tiny_config(data, tmp_path / "first", max_steps=1, **common))
    run = train(
        tiny_config(data, tmp_path / "relit", max_steps=3, init=str(first / "last.pt"), relight=True, lighting=1.0,
                    **common)
    )  # fmt: skip
    saved = torch.load(run / "last.pt", weights_only=True)
    assert saved["config"]["relight"] is True
    for layer in ("relight.weight", "relight_colour.weight"):
        assert torch.count_nonzero(saved["model"][layer]) > 0  # it learned from the changed light
    first_state = torch.load(first / "last.pt", weights_only=True)["model"]
    assert "relight.weight" not in first_state
    model, _ = load_model(run / "last.pt")
    contract, checks = export_checked(model, tmp_path / "relit.onnx", validate_on=data)
    assert all(check.passed for check in checks) and contract.training["architecture"]["relight"] is True
    load_init(tmp_path / "relit.onnx", relit_network(tmp_path / "relit.onnx"), "--init")
    without = build("tryon-flow", {**dataclasses.asdict(model.config), "relight": False})
    with pytest.raises(CheckpointError, match=r"other settings than this run's: --relight True \(this run: False\)"):
        load_init(tmp_path / "relit.onnx", without, "--init")
    with pytest.raises(CheckpointError, match=r"other settings than this run's: --relight True \(this run: False\)"):
        load_weights(run / "last.pt", without, "--init")
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(row["train_warp"])
    # a --relight checkpoint from before the colour layer (2026-12-01): it loads, the layer at zero
    saved["model"].pop("relight_colour.weight")
    torch.save(saved, tmp_path / "earlier.pt")
    earlier, _ = load_model(tmp_path / "earlier.pt")
    assert torch.count_nonzero(earlier.relight_colour.weight) == 0
    assert torch.equal(earlier.relight.weight, model.relight.weight)
    load_weights(tmp_path / "earlier.pt", relit_network(tmp_path / "relit.onnx"), "--init")
