"""``evaluate --perceptual FILE``: a learned distance the user brings as ONNX (LPIPS's
interface), scored beside the built-in metrics. No LPIPS weights can be had here, so the
metric is a small network of the same interface, exported here and run by onnxruntime."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from clothes_extractor.cli import cli
from clothes_extractor.data.synth import write_synthetic
from clothes_extractor.errors import ModelError
from clothes_extractor.eval.datasets import load_fitted, load_samples
from clothes_extractor.eval.evaluate import evaluate_model
from clothes_extractor.eval.perceptual import PerceptualMetric
from clothes_extractor.runtime import ModelSession
from conftest import tiny_generator


def export_metric(path, *, batched=True, input_range=None, inputs=2, channels_out=1):
    """A feature distance with LPIPS's interface: mean squared difference of fixed random
    conv features of two [-1, 1] (or [0, 1]) NCHW images, one value per image."""
    import onnx
    import torch

    class Distance(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(3)
            self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())

        def forward(self, a, b=None):
            b = a.flip(-1) if b is None else b
            d = (self.features(a) - self.features(b)) ** 2
            return d.mean(dim=(1, 2, 3), keepdim=True).repeat(1, channels_out, 1, 1)

    args = tuple(torch.zeros(1, 3, 32, 24) for _ in range(inputs))
    names = ["output", "reference"][:inputs]
    axes = {n: {0: "n", 2: "h", 3: "w"} if batched else {2: "h", 3: "w"} for n in names}
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notes, as export_model does
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Distance().eval(), args, path, input_names=names, output_names=["distance"], dynamic_axes=axes,
            opset_version=17, dynamo=False,
        )  # fmt: skip
    if input_range is not None:
        proto = onnx.load(path)
        entry = proto.metadata_props.add()
        entry.key, entry.value = "input_range", input_range
        onnx.save(proto, path)
    return path


def reference_distance(a: np.ndarray, b: np.ndarray, low: float, high: float) -> float:
    """The same distance computed in PyTorch, for one pair of uint8 HWC images."""
    import torch

    def scaled(x):
        return torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32)) * (high - low) / 255 + low

    torch.manual_seed(3)
    features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())
    with torch.no_grad():
        return float(((features(scaled(a)) - features(scaled(b))) ** 2).mean())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    write_synthetic(root, 3, seed=2)
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from clothes_extractor.export.onnx_export import export_model

    path = tmp_path_factory.mktemp("gen") / "tiny.onnx"
    export_model(tiny_generator(), path)
    return ModelSession(path, "cpu")


@pytest.mark.parametrize(("batched", "input_range", "low"), [(True, None, -1.0), (False, "0,1", 0.0)])
def test_each_pair_gets_the_distance_the_metric_computes(model, data, tmp_path, batched, input_range, low):
    metric = PerceptualMetric.open(export_metric(tmp_path / "feat.onnx", batched=batched, input_range=input_range))
    assert (metric.name, metric.batched, metric.low) == ("feat", batched, low)
    samples = load_samples(data, "all")
    result = evaluate_model(model, samples, perceptual=[metric], batch_size=2)
    assert "feat" in result.metrics and {"ssim", "gmsd"} <= set(result.metrics)
    for sample, scored in zip(samples, result.per_sample, strict=True):
        item = load_fitted(sample, model.contract)
        output = model.run(image=item["image"][None], mask=item["mask"][None])["garment"][0]
        expected = reference_distance(output, item["target"], low, 1.0)
        assert scored["feat"] == pytest.approx(expected, rel=1e-4, abs=1e-7)
    assert result.metrics["feat"] == pytest.approx(np.mean([s["feat"] for s in result.per_sample]))
    same = load_fitted(samples[0], model.contract)["target"][None]
    assert metric(same, same)[0] == pytest.approx(0.0, abs=1e-9)  # a distance: 0 for the same image


def test_a_file_without_the_interface_is_refused_clearly(tmp_path):
    with pytest.raises(ModelError, match="two float32 NCHW image inputs"):
        PerceptualMetric.open(export_metric(tmp_path / "one.onnx", inputs=1))
    with pytest.raises(ModelError, match="input_range"):
        PerceptualMetric.open(export_metric(tmp_path / "r.onnx", input_range="0,255"))
    with pytest.raises(ModelError, match="not an ONNX model"):
        (tmp_path / "x.onnx").write_bytes(b"\xff\xff not protobuf")
        PerceptualMetric.open(tmp_path / "x.onnx")
    wide = PerceptualMetric.open(export_metric(tmp_path / "wide.onnx", channels_out=2))
    image = np.zeros((1, 32, 24, 3), np.uint8)
    with pytest.raises(ModelError, match=r"holds 2 value\(s\) for 1 image"):
        wide(image, image)


def test_evaluate_prints_and_writes_the_perceptual_metric(model, data, tmp_path):
    metric = export_metric(tmp_path / "lpips-like.onnx")
    out = tmp_path / "r.json"
    args = ["evaluate", "--model", str(model.path), "--data", str(data), "--perceptual", str(metric), "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "lpips-like" in result.output
    written = json.loads(out.read_text())
    assert "lpips-like" in written["metrics"] and all("lpips-like" in row for row in written["per_sample"])
    shadow = export_metric(tmp_path / "ssim.onnx")
    result = CliRunner().invoke(cli, [*args[:5], "--perceptual", str(shadow)])
    assert result.exit_code == 2 and "rename ssim" in result.output
