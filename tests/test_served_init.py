"""``train --init MODEL.onnx``: a network read back from its served file, BatchNorm unfolded.

The bundled models themselves come back (their checkpoints are gone), reproduce their
files, and a run started from one keeps its function in eval mode and, after calibration,
in train mode too.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_train import tiny_config

from clothes_extractor.data.synth import write_synthetic
from clothes_extractor.errors import CheckpointError
from clothes_extractor.eval.synthetic import synthetic_feeds
from clothes_extractor.export.onnx_export import export_model, untrained_model
from clothes_extractor.runtime.session import ModelSession, contract_of
from clothes_extractor.train.architectures import SERVED_NAMES, build, served
from clothes_extractor.train.checkpoint import save_checkpoint
from clothes_extractor.train.flow import FlowConfig, FlowGenerator
from clothes_extractor.train.loop import train
from clothes_extractor.train.networks import UNet, UNetConfig
from clothes_extractor.train.served_init import calibrate_batchnorm, load_init, load_served
from conftest import ROOT

ARCH = {served_name: arch for arch, served_name in SERVED_NAMES.items()}
MODELS = ROOT / "clothes_extractor" / "models"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    write_synthetic(root, 24, seed=0, size=(64, 48))
    return root


def network_for(path):
    """An untrained network of the architecture and settings a served model records."""
    record = dict(contract_of(path).training["architecture"])
    return build(ARCH[record.pop("name")], record)


def outputs(model, feeds, names):
    with torch.no_grad():
        found = served(model)(*(torch.from_numpy(feeds[name]) for name in names))
    return found if isinstance(found, tuple) else (found,)


@pytest.mark.parametrize("name", ["generator", "segmenter", "tryon"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_each_bundled_model_comes_back_from_its_file(name, precision):
    path = MODELS / f"{name}-{precision}.onnx"
    model = network_for(path)
    found = load_served(path, model, "--init")
    assert model.training  # left as a run uses it
    assert found["unfolded"], "every bundled network has folded BatchNorms"
    with ModelSession(path, "cpu") as session:
        feeds = synthetic_feeds(session.contract, 2, seed=3)
        want = session.run(**feeds)
        names = [spec.name for spec in session.contract.inputs]
        specs = session.contract.outputs
    for spec, have in zip(specs, outputs(model, feeds, names), strict=True):
        diff = np.abs(have.numpy().astype(np.int16) - want[spec.name].astype(np.int16))
        if spec.name == "labels":
            assert np.mean(diff != 0) < 0.01, spec.name
        else:
            assert diff.mean() < 0.5 and diff.max() <= 16, (spec.name, diff.mean(), diff.max())


def test_calibration_keeps_the_eval_function_and_train_mode_starts_there(tiny_model_path):
    model = network_for(tiny_model_path)
    unfolded = load_served(tiny_model_path, model, "--init")["unfolded"]
    torch.manual_seed(0)
    batch = torch.rand(8, 4, 64, 48) * 2 - 1
    model.eval()
    with torch.no_grad():
        before = model(batch)
    model.train()
    with torch.no_grad():
        uncalibrated = model(batch)  # batch statistics against an identity BatchNorm: another function
    assert (uncalibrated - before).abs().mean() > 0.05
    for name, module in model.named_modules():  # (the uncalibrated pass moved the running statistics)
        if name in unfolded:
            module.reset_running_stats()
            module.running_var.fill_(1 - module.eps)
    calibrate_batchnorm(model, unfolded, lambda: model(batch))
    assert model.training
    model.eval()
    with torch.no_grad():
        after = model(batch)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=0)
    model.train()
    with torch.no_grad():
        trained_mode = model(batch)
    torch.testing.assert_close(trained_mode, before, atol=1e-3, rtol=0)


def test_a_served_model_of_another_kind_or_settings_is_refused(tiny_model_path, tmp_path):
    flow = FlowGenerator(FlowConfig(height=64, width=48, ngf=4, levels=3, top=4))
    with pytest.raises(CheckpointError, match=r"serves a generator \(pix2pix-unet\); this run trains a generator \("):
        load_init(tiny_model_path, flow, "--init")
    wider = UNet(UNetConfig(height=64, width=48, ngf=8, depth=3))
    with pytest.raises(CheckpointError, match=r"other settings than this run's: --ngf 4 \(this run: 8\)$"):
        load_init(tiny_model_path, wider, "--init")
    with pytest.raises(CheckpointError, match="no such file"):
        load_init(tmp_path / "gone.onnx", wider, "--init")
    # an untrained warping generator's zero flow heads are one tensor in its file: no name to map back
    untrained = tmp_path / "untrained-flow.onnx"
    export_model(untrained_model("generator", "flow", (64, 48), 4, 3), untrained)
    flow = network_for(untrained)
    with pytest.raises(CheckpointError, match=r"do not map onto this run's network by name \(no levels\.0\.flow"):
        load_init(untrained, flow, "--init")


def test_a_run_starts_from_a_served_model(synthetic, tiny_model_path, tmp_path):
    import onnx
    from onnx import numpy_helper

    config = UNetConfig(height=64, width=48, ngf=4, depth=3)
    # lr 0: the weights stay the file's; the BatchNorms get the training pairs' statistics
    run = train(tiny_config(synthetic, tmp_path / "run", max_steps=1, init=str(tiny_model_path), lr_g=0.0))
    state = torch.load(run / "last.pt", weights_only=True)["model"]
    stored = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tiny_model_path)).graph.initializer}
    unet = UNet(config)
    convs = [n for n, m in unet.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs and all(np.array_equal(state[f"{n}.weight"].numpy(), stored[f"generator.{n}.weight"]) for n in convs)
    norms = [n for n, m in unet.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(state[f"{n}.running_mean"].abs().sum() > 0 for n in norms)
    assert all(not torch.allclose(state[f"{n}.weight"], torch.ones(1)) for n in norms)
    assert dataclasses.asdict(config).items() <= torch.load(run / "last.pt", weights_only=True)["config"].items()


def test_the_command_says_a_served_model_of_another_kind_before_the_data_loads(tiny_model_path, tmp_path):
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    (tmp_path / "no-data").mkdir()  # (loading VITON takes minutes: the mistake is said first)
    flow = ["--arch", "flow", "--size", "64x48", "--depth", "3"]
    done = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(tmp_path / "no-data"),
            "-o",
            str(tmp_path / "flow"),
            *flow,
            "--init",
            str(tiny_model_path),
        ],
    )
    assert done.exit_code == 1, done.output
    assert "serves a generator (pix2pix-unet); this run trains a generator (warping-flow)" in done.output
    assert not (tmp_path / "flow").exists()


def test_a_parser_run_without_the_head_starts_from_a_file_with_one(tmp_path, caplog):
    """The bundled parser carries its ``alone`` head; training the parser further changes the
    features the head reads, so a run without the head starts from the rest of the file (a
    served one or a checkpoint), says so, and parses as the file does."""
    path = MODELS / "segmenter-fp32.onnx"
    record = dict(contract_of(path).training["architecture"])
    record.pop("name")
    assert record["alone"]
    whole = network_for(path)
    load_served(path, whole, "--init")
    checkpoint = tmp_path / "parser.pt"
    save_checkpoint(checkpoint, whole)
    feeds = {"image": np.random.default_rng(0).integers(0, 256, (2, 256, 192, 3), dtype=np.uint8)}
    want = outputs(whole.eval(), feeds, ["image"])
    for source in (path, checkpoint):
        headless = build("unet", {**record, "alone": False})
        caplog.clear()
        with caplog.at_level("WARNING"):
            load_init(source, headless, "--init")
        assert f"--init {source}: left out its alone layers" in caplog.text
        assert not any(name.startswith("alone_head.") for name in headless.state_dict())
        have = outputs(headless.eval(), feeds, ["image"])
        assert len(have) == 2 and len(want) == 3  # mask and labels; no alone
        for a, b in zip(have, want[:2], strict=True):
            assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match=r"other settings than this run's: --ngf 16 \(this run: 8\)$"):
        load_init(path, build("unet", {**record, "alone": False, "ngf": 8}), "--init")


@pytest.fixture(scope="module")
def tiny_silhouette_path(tiny_model_path, tmp_path_factory):
    """A silhouette model whose U-Net is the tiny generator's (64x48, ngf 4, depth 3)."""
    from clothes_extractor.train.renderer import unet_from_onnx

    model = build(
        "silhouette", dict(height=64, width=48, ngf=4, levels=2, renderer_ngf=4, renderer_depth=3, unet_features=True)
    )
    model.renderer.load_state_dict(unet_from_onnx(tiny_model_path).state_dict())
    path = tmp_path_factory.mktemp("silhouette") / "silhouette.onnx"
    export_model(model, path)
    return path


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_unet_run_starts_from_the_unet_a_silhouette_model_renders_with(precision, caplog):
    """The bundled generator is a U-Net with a silhouette head: a ``unet`` run from it takes
    the U-Net (what draws its garment), says it left out the head, and draws its garment."""
    path = MODELS / f"generator-{precision}.onnx"
    record = dict(contract_of(path).training["architecture"])
    assert record["name"] == SERVED_NAMES["silhouette"]
    unet = build("unet", dict(height=256, width=192, ngf=record["renderer_ngf"], depth=record["renderer_depth"]))
    with caplog.at_level("WARNING"):
        found = load_init(path, unet, "--init")
    assert f"--init {path}: took the U-Net that renders its garment, left out the rest" in caplog.text
    assert found["unfolded"] and found["summary"] == {}
    feeds = synthetic_feeds(contract_of(path), 2, seed=4)
    with ModelSession(path, "cpu", outputs=["garment"]) as session:
        want = session.run(**feeds)["garment"]
    (have,) = outputs(unet.eval(), feeds, ["image", "mask"])
    diff = np.abs(have.numpy().astype(np.int16) - want.astype(np.int16))
    assert diff.mean() < 0.5 and diff.max() <= 16, (diff.mean(), diff.max())


def test_a_unet_of_other_settings_or_task_is_refused_the_silhouette_models_unet(tiny_silhouette_path):
    wider = UNet(UNetConfig(height=64, width=48, ngf=8, depth=3))
    with pytest.raises(CheckpointError, match=r"holds a U-Net of other settings than this run's: --ngf 4 \(this run"):
        load_init(tiny_silhouette_path, wider, "--init")
    segmenter = UNet(UNetConfig(task="segmenter", height=64, width=48, ngf=4, depth=3))
    with pytest.raises(CheckpointError, match=r"serves a generator \(pix2pix-unet-silhouette\); this run trains a seg"):
        load_init(tiny_silhouette_path, segmenter, "--init")


def test_the_command_trains_the_unet_of_a_silhouette_model_and_says_so_once(synthetic, tiny_silhouette_path, tmp_path):
    import logging

    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    said = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: said.append(record.getMessage())
    logger = logging.getLogger("clothes_extractor")
    logger.addHandler(handler)
    tiny = ["--size", "64x48", "--ngf", "4", "--depth", "3", "--batch-size", "4", "--workers", "0"]
    try:
        done = CliRunner().invoke(
            cli,
            ["train", "--data", str(synthetic), "-o", str(tmp_path / "u"), *tiny, "--max-steps", "1",
             "--val-limit", "4", "--init", str(tiny_silhouette_path)],
        )  # fmt: skip
    finally:
        logger.removeHandler(handler)
    assert done.exit_code == 0, done.output
    assert sum("took the U-Net that renders its garment" in message for message in said) == 1, said
    state = torch.load(tmp_path / "u" / "last.pt", weights_only=True)
    assert state["arch"] == "unet" and state["config"]["ngf"] == 4
    assert not any(name.startswith("renderer.") for name in state["model"])


def test_a_silhouette_head_from_init_draws_with_the_renderer_given(synthetic, tiny_silhouette_path, tmp_path):
    """``--arch silhouette --init SILHOUETTE.onnx --renderer RETRAINED.onnx``: the head starts from
    the file's and the garment is the retrained U-Net's (frozen, as without --init), which the
    run records as its renderer: the shipped head re-paired with a retrained U-Net."""
    from clothes_extractor.train.renderer import unet_from_onnx
    from conftest import tiny_generator

    retrained = tmp_path / "retrained.onnx"
    export_model(tiny_generator(seed=1), retrained)
    head = dict(arch="silhouette", depth=2, ngf=4, renderer=str(retrained), init=str(tiny_silhouette_path))
    run = train(tiny_config(synthetic, tmp_path / "s", max_steps=1, lr_g=1e-12, val_limit=None, **head))
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["summary"]["renderer"]["file"] == "retrained.onnx"
    for name, value in unet_from_onnx(retrained).state_dict().items():
        assert torch.equal(state["model"][f"renderer.{name}"], value), name
    started = build("silhouette", state["config"])
    load_init(tiny_silhouette_path, started, "--init")
    convolutions = [name for name, p in started.named_parameters() if p.ndim == 4 and not name.startswith("renderer.")]
    assert convolutions
    for name in convolutions:  # (one step at a negligible rate: the file's head, not a new one)
        assert torch.allclose(state["model"][name], started.state_dict()[name], atol=1e-6), name
