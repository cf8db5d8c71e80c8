import copy

import numpy as np
import onnx
import pytest
import torch

from clothes_extractor.errors import CheckpointError, ExportError
from clothes_extractor.eval.synthetic import seeded_photos
from clothes_extractor.export.onnx_export import (
    WEIGHTS_KEY,
    export_checked,
    export_model,
    fold_batchnorm,
    validate_export,
)
from clothes_extractor.runtime import ModelSession
from clothes_extractor.train.checkpoint import load_model, save_checkpoint
from clothes_extractor.train.networks import ServedGenerator, UNet, UNetConfig
from conftest import TINY_SIZE, off_the_gpu, tiny_flow, tiny_generator


@pytest.mark.parametrize(
    ("height", "width", "depth", "ngf", "params"),
    [(256, 256, 8, 64, 54_414_979), (256, 192, 6, 16, 1_830_819)],
)
def test_generator_sizes(height, width, depth, ngf, params):
    # 54.4 M parameters: the pix2pix U-Net-256 (ngf 64, 4 input channels).
    model = UNet(UNetConfig(height=height, width=width, ngf=ngf, depth=depth))
    assert sum(p.numel() for p in model.parameters()) == params


def test_generator_output_shape_and_range():
    model = tiny_generator().eval()
    out = model(torch.randn(2, 4, *TINY_SIZE))
    assert out.shape == (2, 3, *TINY_SIZE) and out.abs().max() <= 1


def test_config_rejects_sizes_the_depth_cannot_halve_and_unknown_keys():
    with pytest.raises(ValueError, match=r"256x192 is not: give a size such as 256x256, or --depth 6"):
        UNetConfig(height=256, width=192, depth=8)
    with pytest.raises(ValueError, match=r"multiples of 8; 4x6 is not: give a size such as 8x8$"):  # (no depth fits)
        UNetConfig(height=4, width=6, depth=3)
    with pytest.raises(ValueError, match="did you mean 'depth'"):
        UNetConfig.from_dict({"dpeth": 3})


def test_fold_batchnorm_keeps_the_function():
    model = tiny_generator()
    x = torch.randn(2, 4, *TINY_SIZE)
    with torch.no_grad():
        expected = model(x)
        folded = fold_batchnorm(copy.deepcopy(model))
        got = folded(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_exported_model_follows_the_contract(tiny_model_path):
    model = onnx.load(str(tiny_model_path))
    ops = {node.op_type for node in model.graph.node}
    assert "BatchNormalization" not in ops
    assert [i.name for i in model.graph.input] == ["image", "mask"]
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value  # dynamic batch
    session = ModelSession(tiny_model_path, "cpu")
    assert session.contract.training["architecture"]["ngf"] == 4
    assert session.contract.package_version
    assert session.contract.weights_sha256 == session.digest  # the checksum is the graph's


def test_export_matches_pytorch_on_seeded_inputs(tiny_model_path):
    result = validate_export(tiny_generator(), tiny_model_path, samples=6)
    assert result.passed and result.samples == 6 and result.max_abs <= 1


def test_validation_catches_a_model_that_differs(tiny_model_path):
    with pytest.raises(ExportError, match=r"does not match PyTorch.*max \|error\|"):
        validate_export(tiny_generator(seed=1), tiny_model_path)


def test_served_wrapper_masks_the_photo_outside_the_garment():
    # The wrapper paints non-garment pixels white before the network sees them, so the
    # output cannot depend on the photo where the mask is 0.
    served = ServedGenerator(tiny_generator()).eval()
    images, masks = seeded_photos(TINY_SIZE, 1)
    masks[:] = 0
    masks[0, 20:40, 10:30] = 255
    other = images.copy()
    other[0, :10] = 0  # change only where the mask is 0
    with torch.no_grad():
        a = served(torch.from_numpy(images), torch.from_numpy(masks))
        b = served(torch.from_numpy(other), torch.from_numpy(masks))
    assert torch.equal(a, b) and a.dtype == torch.uint8


def test_seeded_inputs_are_deterministic():
    a, b = seeded_photos((16, 8), 2, seed=3), seeded_photos((16, 8), 2, seed=3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_checkpoint_round_trip_and_errors(tmp_path):
    model = tiny_generator()
    save_checkpoint(tmp_path / "g.pt", model, step=7)
    loaded, payload = load_model(tmp_path / "g.pt")
    assert payload["step"] == 7 and loaded.config == model.config
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a clothes-extractor checkpoint"):
        load_model(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(CheckpointError, match="junk.pt is not a checkpoint that train wrote .*: it is no PyTorch file"):
        load_model(tmp_path / "junk.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "g.pt").read_bytes()[:2000])  # a copy that did not finish
    with pytest.raises(CheckpointError, match="cut.pt is cut short or damaged: .*copy it again, or give the run"):
        load_model(tmp_path / "cut.pt")
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(CheckpointError, match="m.onnx is not a checkpoint .*: it is no PyTorch file but a served ONNX"):
        load_model(tmp_path / "m.onnx")
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pt")  # a whole module: code, never loaded
    with pytest.raises(CheckpointError, match="it holds Python objects, not only tensors and settings$"):
        load_model(tmp_path / "pickled.pt")


def test_export_from_checkpoint_uses_its_config(tmp_path):
    model = UNet(UNetConfig(height=32, width=32, ngf=2, depth=5)).eval()
    export_model(model, tmp_path / "m.onnx", training={"epochs": 2})
    contract = ModelSession(tmp_path / "m.onnx", "cpu").contract
    assert contract.size == (32, 32) and contract.training["epochs"] == 2


def test_fp16_export_keeps_uint8_io_and_matches_fp32_pytorch(tmp_path):
    model = tiny_generator()
    contract = export_model(model, tmp_path / "m16.onnx", precision="fp16")
    assert contract.precision == "fp16"
    graph = onnx.load(str(tmp_path / "m16.onnx")).graph
    assert {i.type.tensor_type.elem_type for i in graph.input} == {onnx.TensorProto.UINT8}
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in graph.initializer)
    result = validate_export(model, tmp_path / "m16.onnx")
    assert result.passed and (result.max_abs_tolerance, result.mean_abs_tolerance) == (16, 1.0)
    with pytest.raises(ExportError, match="precision"):
        export_model(model, tmp_path / "x.onnx", precision="int8")


def test_fp16_weights_halve_an_fp32_file_and_compute_in_fp32(tmp_path):
    # The weights are stored as fp16 behind Casts; onnxruntime folds the Casts at load,
    # so the graph it runs is the fp32 one (no fp16 arithmetic) on rounded weights.
    import onnxruntime

    model = tiny_generator()
    export_model(model, tmp_path / "m32.onnx")
    contract = export_model(model, tmp_path / "w16.onnx", weights="fp16")
    assert contract.precision == "fp32"
    proto = onnx.load(str(tmp_path / "w16.onnx"))
    initializer_bytes = [
        sum(len(init.raw_data) for init in onnx.load(str(path)).graph.initializer)
        for path in (tmp_path / "m32.onnx", tmp_path / "w16.onnx")
    ]
    assert initializer_bytes[1] < 0.55 * initializer_bytes[0]
    stored = {init.data_type for init in proto.graph.initializer if init.name.endswith(".fp16")}
    casts = [node for node in proto.graph.node if node.op_type == "Cast" and node.name.endswith(".to_fp32")]
    assert stored == {onnx.TensorProto.FLOAT16} and len(casts) == sum(
        len(node.input) - 1 for node in proto.graph.node if node.op_type in ("Conv", "ConvTranspose")
    )
    assert {p.key: p.value for p in proto.metadata_props}["clothes_extractor.weights"] == "fp16"
    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "loaded.onnx")
    onnxruntime.InferenceSession(str(tmp_path / "w16.onnx"), options, providers=["CPUExecutionProvider"])
    loaded = onnx.load(str(tmp_path / "loaded.onnx")).graph
    assert not any(init.data_type == onnx.TensorProto.FLOAT16 for init in loaded.initializer)
    assert not any(n.name.endswith(".to_fp32") for n in loaded.node)  # folded away at load
    result = validate_export(model, tmp_path / "w16.onnx")
    assert result.passed and (result.max_abs_tolerance, result.mean_abs_tolerance) == (4, 0.1)
    with pytest.raises(ExportError, match="fp32 weights go with --precision fp32"):
        export_model(model, tmp_path / "x.onnx", precision="fp16", weights="fp32")
    with pytest.raises(ExportError, match="weights must be stored as one of"):
        export_model(model, tmp_path / "x.onnx", weights="int8")


def test_export_command_stores_fp16_weights(tmp_path):
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    args = ["export", "--untrained", "--size", "32x24", "--depth", "3", "--ngf", "4", "-o", str(tmp_path / "m.onnx")]
    done = CliRunner().invoke(cli, [*args, "--weights", "fp16"])
    assert done.exit_code == 0, done.output
    assert "(32x24, fp32, fp16 weights," in done.output and "(tolerance 4 / 0.1)" in done.output
    done = CliRunner().invoke(cli, [*args, "--precision", "fp16", "--weights", "fp32"])
    assert done.exit_code == 2 and "--weights fp32 needs --precision fp32" in done.output


def test_network_options_with_a_checkpoint_are_refused(tmp_path):
    # --size and the other --untrained options were ignored with a CHECKPOINT: the model
    # came out at the checkpoint's size, not the one asked for.
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    save_checkpoint(tmp_path / "g.pt", tiny_generator())
    done = CliRunner().invoke(
        cli, ["export", str(tmp_path / "g.pt"), "-o", str(tmp_path / "m.onnx"), "--size", "64x48"]
    )
    assert done.exit_code == 2 and "--size: for an --untrained network" in done.output
    assert not (tmp_path / "m.onnx").exists()


def test_a_run_folder_exports_its_best_checkpoint_else_its_last(tmp_path):
    """``export RUN`` (the folder ``train -o RUN`` wrote) said "is a directory": a user had to
    know the file names. Its best.pt, else its last.pt, is exported, and said."""
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    run = tmp_path / "run"
    save_checkpoint(run / "last.pt", tiny_generator())
    done = CliRunner().invoke(cli, ["export", str(run), "-o", str(tmp_path / "last.onnx")])
    assert done.exit_code == 0 and f"CHECKPOINT {run}: {run / 'last.pt'}" in done.output, done.output
    save_checkpoint(run / "best.pt", tiny_generator(seed=1))
    done = CliRunner().invoke(cli, ["export", str(run), "-o", str(tmp_path / "best.onnx")])
    assert done.exit_code == 0 and f"CHECKPOINT {run}: {run / 'best.pt'}" in done.output, done.output
    digests = {
        name: ModelSession(tmp_path / name, "cpu").contract.weights_sha256 for name in ("last.onnx", "best.onnx")
    }
    assert digests["last.onnx"] != digests["best.onnx"]
    (tmp_path / "empty").mkdir()
    done = CliRunner().invoke(cli, ["export", str(tmp_path / "empty"), "-o", str(tmp_path / "none.onnx")])
    assert done.exit_code == 2 and "is a folder with no checkpoint in it" in done.output
    assert not (tmp_path / "none.onnx").exists()
    # the other options that take a checkpoint take a run folder the same way
    for option in (
        ["train", "--data", str(tmp_path), "-o", str(tmp_path / "t"), "--init"],
        ["bench", "--torch-baseline"],
    ):
        done = CliRunner().invoke(cli, [*option, str(tmp_path / "empty")])
        assert done.exit_code == 2 and "is a folder with no checkpoint in it" in done.output, done.output


def test_export_tensorrt_without_tensorrt_says_why(tmp_path):
    from click.testing import CliRunner

    from clothes_extractor.cli import cli
    from clothes_extractor.runtime.providers import tensorrt_runtime_loads

    if tensorrt_runtime_loads():
        pytest.skip("TensorRT loads here: the engine build runs in the GPU check")
    args = ["export", "--untrained", "--size", "32x24", "--depth", "3", "--ngf", "2", "-o", str(tmp_path / "m.onnx")]
    done = CliRunner().invoke(cli, [*args, "--tensorrt"])
    assert done.exit_code == 1 and "TensorRT's runtime library (libnvinfer 10) does not load here" in done.output
    assert (tmp_path / "m.onnx").is_file()  # the ONNX model itself is fine and kept


def test_a_warping_generator_exports_with_any_photo_size(tmp_path):
    import onnxruntime

    model = tiny_flow()
    contract, results = export_checked(model, tmp_path / "flow.onnx")
    assert contract.catalog_resolution and contract.alpha and contract.max_output == (1024, 768)
    assert [r.label for r in results] == ["seeded inputs", "seeded inputs, photo at 128x96"]
    assert all(r.passed and r.max_abs <= 2 for r in results)
    graph = onnx.load(str(tmp_path / "flow.onnx")).graph
    assert "GridSample" in {node.op_type for node in graph.node}
    session = onnxruntime.InferenceSession(str(tmp_path / "flow.onnx"), providers=["CPUExecutionProvider"])
    assert [tuple(o.shape) for o in session.get_outputs()] == [
        ("batch", "height", "width", 3),
        ("batch", "height", "width", 1),
    ]
    for precision, weights in (("fp16", None), ("fp32", "fp16")):
        _, results = export_checked(model, tmp_path / f"{precision}.onnx", precision=precision, weights=weights)
        assert all(r.passed for r in results)


def test_a_warping_generator_samples_in_float32_and_computes_only_the_photos_size(tmp_path):
    """onnxruntime's CUDA GridSample takes float32 alone: an fp16 one runs on the CPU (the 12-04b
    H200 refused the warping generator a CUDA graph, and timed it slowly without). And a shape
    read off a model-size tensor (the batch, for a grid expanded to it; a level's size) runs on
    the CPU too: only the photo's size, which the exported graph cannot know, is computed."""
    for precision in ("fp16", "fp32"):
        export_model(tiny_flow(), tmp_path / f"{precision}.onnx", precision=precision)
        graph = onnx.load(str(tmp_path / f"{precision}.onnx")).graph
        assert sum(node.op_type == "GridSample" for node in graph.node) == 4  # three levels and the photo
        assert off_the_gpu(tmp_path / f"{precision}.onnx", ("photo",)) == ([], [])


def test_a_grid_doubled_by_a_factor_is_the_grid_resized_to_twice_its_size():
    from clothes_extractor.train.flow import grid_doubled, identity_grid, plus_identity, resize_grid

    grid = identity_grid(3, 4, 3, torch.zeros(1))
    assert torch.equal(plus_identity(torch.zeros(3, 2, 4, 3)), grid)
    grid = grid + torch.randn(3, 2, 4, 3, generator=torch.Generator().manual_seed(0)) * 0.1
    assert torch.equal(grid_doubled(grid), resize_grid(grid, (8, 6)))


def test_a_model_that_fails_its_check_is_deleted(tmp_path, monkeypatch):
    from clothes_extractor.export import onnx_export

    real = onnx_export.validate_export

    def against_another_model(model, path, **kwargs):
        return real(tiny_generator(seed=1), path, **kwargs)

    monkeypatch.setattr(onnx_export, "validate_export", against_another_model)
    with pytest.raises(ExportError, match="does not match PyTorch"):
        export_checked(tiny_generator(), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_a_parser_exports_its_labels():
    import tempfile

    from clothes_extractor.tasks import PARSER_CLASSES

    torch.manual_seed(0)
    parser = UNet(UNetConfig(task="segmenter", height=64, width=48, ngf=4, depth=3, classes=len(PARSER_CLASSES))).eval()
    with tempfile.TemporaryDirectory() as tmp:
        contract, results = export_checked(parser, f"{tmp}/p.onnx")
        session = ModelSession(f"{tmp}/p.onnx", "cpu")
        out = session.run(image=seeded_photos(TINY_SIZE, 2)[0])
    assert contract.labels == PARSER_CLASSES and [s.name for s in contract.outputs] == ["mask", "labels"]
    assert out["labels"].max() < len(PARSER_CLASSES) and results[0].passed
    assert results[0].labels_changed is not None and results[0].labels_changed <= 0.001
    torch.manual_seed(1)  # another parser: its labels are checked as classes, and differ
    other = UNet(UNetConfig(task="segmenter", height=64, width=48, ngf=4, depth=3, classes=len(PARSER_CLASSES))).eval()
    with tempfile.TemporaryDirectory() as tmp:
        export_model(parser, f"{tmp}/p.onnx")
        with pytest.raises(ExportError, match=r"labels: .*% of the pixels change class"):
            validate_export(other, f"{tmp}/p.onnx")


def test_a_try_on_is_checked_as_the_grid_sampler_it_is(tmp_path):
    """A try-on network samples the catalog garment by a grid, as the warping generator samples
    the photo: a fraction of a pixel moves a sharp edge's value by many levels at one pixel, so
    its export is checked by the warping generator's bounds (the mean is what catches a broken
    one); a U-Net keeps its own (above)."""
    from clothes_extractor.export.tolerances import FLOW_TOLERANCES
    from clothes_extractor.train.tryon import TryOnConfig, TryOnGenerator

    torch.manual_seed(0)
    model = TryOnGenerator(TryOnConfig(height=64, width=48, ngf=4, levels=3, top=4)).eval()
    export_model(model, tmp_path / "t.onnx", weights="fp16")
    result = validate_export(model, tmp_path / "t.onnx")
    assert result.passed and (result.max_abs_tolerance, result.mean_abs_tolerance) == FLOW_TOLERANCES[
        "fp32/fp16-weights"
    ] == (48, 0.3)


def test_a_silhouette_generator_computes_no_shapes(tmp_path):
    """onnxruntime runs a graph's shape computations (``Shape`` and what reads it) on the CPU, and
    a CUDA graph refuses a model with any node off the GPU (the bundled generator did, on the
    12-04 H200): the silhouette head brings its levels up by a factor and spreads its summary over
    a plane of a fixed size, so its exported graph reads no shape. It still matches PyTorch."""
    from clothes_extractor.train.architectures import build

    config = {"task": "generator", "height": 64, "width": 48, "ngf": 4, "levels": 2}
    config.update(renderer_ngf=4, renderer_depth=3, unet_features=True)
    torch.manual_seed(0)
    model = build("silhouette", config).eval()
    for precision in ("fp32", "fp16"):
        _, results = export_checked(model, tmp_path / f"{precision}.onnx", precision=precision)
        assert all(r.passed for r in results)
        ops = {node.op_type for node in onnx.load(str(tmp_path / f"{precision}.onnx")).graph.node}
        assert "Resize" in ops and not ops & {"Shape", "Size", "ConstantOfShape", "Expand"}, sorted(ops)


def test_doubling_and_the_summary_are_the_size_based_operations_they_replace():
    from clothes_extractor.train.flow import doubled, global_summary, resize

    x = torch.randn(3, 5, 4, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(doubled(x), resize(x, (8, 6)))
    assert torch.equal(global_summary(x), x.mean(dim=(2, 3), keepdim=True).expand_as(x))


@pytest.mark.parametrize(("precision", "weights"), [("fp32", "fp16"), ("fp16", None)])
def test_a_served_model_written_again_keeps_its_precision_and_weights(precision, weights, tmp_path):
    """``export MODEL.onnx -o NEW.onnx`` writes the file it read, byte for byte, unless told
    otherwise: until the 55th stop every file came back fp32 (the bundled generator's 15.9 MB
    of fp16 weights as 31.8 MB; the fp16 one computing in fp32)."""
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    source = tmp_path / "source.onnx"
    export_model(tiny_generator(), source, precision=precision, weights=weights)
    done = CliRunner().invoke(cli, ["export", str(source), "-o", str(tmp_path / "again.onnx")])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "again.onnx").read_bytes() == source.read_bytes()
    done = CliRunner().invoke(cli, ["export", str(source), "-o", str(tmp_path / "fp32.onnx"), "--precision", "fp32"])
    assert done.exit_code == 0, done.output
    with ModelSession(tmp_path / "fp32.onnx", "cpu") as session:
        assert session.contract.precision == "fp32" and WEIGHTS_KEY not in session.metadata
    if precision == "fp16":
        done = CliRunner().invoke(cli, ["export", str(source), "-o", str(tmp_path / "x.onnx"), "--weights", "fp32"])
        assert done.exit_code == 2 and "computes in fp16: --weights fp32 needs --precision fp32" in done.output


def test_validating_on_a_dataset_passes_over_a_sample_that_cannot_be_read(tiny_model_path, tmp_path, caplog):
    """``export --validate-on DATA``: the first samples that can be read (a photo without its
    mask file, listed since the 70th stop, is passed over and said); none at all: a clear error."""
    from clothes_extractor.data.synth import write_synthetic
    from clothes_extractor.errors import InputError
    from clothes_extractor.export.onnx_export import dataset_inputs

    write_synthetic(tmp_path / "syn", 4, seed=2, size=TINY_SIZE)
    (tmp_path / "syn" / "mask" / "000000.png").unlink()
    with ModelSession(tiny_model_path, "cpu") as session:
        with caplog.at_level("WARNING", logger="clothes_extractor.export.onnx_export"):
            inputs = dataset_inputs(tmp_path / "syn", session.contract, count=2)
        assert inputs["image"].shape[0] == 2 and "1 sample(s) of" in caplog.text and "000000.jpg" in caplog.text
        assert dataset_inputs(tmp_path / "syn", session.contract)["image"].shape[0] == 3  # (all that can be)
        for name in ("000001", "000002", "000003"):
            (tmp_path / "syn" / "mask" / f"{name}.png").unlink()
        with pytest.raises(InputError, match=r"no sample of .*syn can be read to validate the export with: .*000000"):
            dataset_inputs(tmp_path / "syn", session.contract)
