import copy

import numpy as np
import onnx
import pytest
import torch

from clothes_extractor.errors import CheckpointError, ExportError
from clothes_extractor.export.onnx_export import (
    export_model,
    fold_batchnorm,
    seeded_inputs,
    validate_export,
)
from clothes_extractor.runtime import ModelSession
from clothes_extractor.train.checkpoint import load_model, save_checkpoint
from clothes_extractor.train.networks import ServedGenerator, UNet, UNetConfig
from conftest import TINY_SIZE, run_cli, tiny_generator


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
    with pytest.raises(ValueError, match="multiples of 256"):
        UNetConfig(height=256, width=192, depth=8)
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
    images, masks = seeded_inputs(TINY_SIZE, 1)
    masks[:] = 0
    masks[0, 20:40, 10:30] = 255
    other = images.copy()
    other[0, :10] = 0  # change only where the mask is 0
    with torch.no_grad():
        a = served(torch.from_numpy(images), torch.from_numpy(masks))
        b = served(torch.from_numpy(other), torch.from_numpy(masks))
    assert torch.equal(a, b) and a.dtype == torch.uint8


def test_seeded_inputs_are_deterministic():
    a, b = seeded_inputs((16, 8), 2, seed=3), seeded_inputs((16, 8), 2, seed=3)
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
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_model(tmp_path / "junk.pt")


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


def test_tensorrt_engine_sidecar_refuses_another_gpu_or_version():
    from clothes_extractor.errors import ModelError
    from clothes_extractor.export.tensorrt import check_engine

    sidecar = {"gpu": {"name": "NVIDIA H200", "compute_capability": "9.0"}, "tensorrt": "10.13.0"}
    check_engine(sidecar, {"name": "NVIDIA H200", "compute_capability": "9.0"}, "10.13.0")
    with pytest.raises(ModelError, match="built on a NVIDIA H200, this GPU is a NVIDIA L4.*compute capability"):
        check_engine(sidecar, {"name": "NVIDIA L4", "compute_capability": "8.9"}, "10.13.0")
    with pytest.raises(ModelError, match="TensorRT 10.13.0 built it, this is TensorRT 11.0.0"):
        check_engine(sidecar, {"name": "NVIDIA H200", "compute_capability": "9.0"}, "11.0.0")


def test_export_tensorrt_without_tensorrt_says_what_to_install(tmp_path):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed: building is checked by benchmarks/gpu_check.sh")
    except ImportError:
        pass
    from click.testing import CliRunner

    from clothes_extractor.cli import cli

    done = CliRunner().invoke(
        cli,
        [
            "export",
            "--untrained",
            "--size",
            "32x24",
            "--depth",
            "3",
            "--ngf",
            "2",
            "-o",
            str(tmp_path / "m.onnx"),
            "--tensorrt",
        ],
    )
    assert done.exit_code == 1 and 'pip install "clothes-extractor[tensorrt]"' in done.output
    assert not (tmp_path / "m.onnx").exists()  # failed before any work


def _tensorrt_missing() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return True
    return False


@pytest.mark.skipif(not _tensorrt_missing(), reason="tensorrt is installed: the engine runs in the GPU test")
def test_running_an_engine_without_tensorrt_says_what_to_install(tmp_path, photo_folder):
    from clothes_extractor.errors import MissingDependencyError, ProviderError
    from clothes_extractor.runtime.engine import EngineSession
    from clothes_extractor.runtime.session import open_session

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not checked before TensorRT imports")
    with pytest.raises(MissingDependencyError, match=r'pip install "clothes-extractor\[tensorrt\]"'):
        EngineSession(engine)
    with pytest.raises(ProviderError, match="TensorRT engine: it runs with --provider tensorrt"):
        open_session(engine, "cpu")
    photos, _ = photo_folder
    done = run_cli("extract", photos, "-o", tmp_path / "out", "--model", engine, "--no-segmenter")
    assert done.returncode != 0 and 'pip install "clothes-extractor[tensorrt]"' in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_engine_sidecar_is_required_and_checked(tmp_path):
    from clothes_extractor.errors import ModelError
    from clothes_extractor.runtime.engine import load_engine_sidecar

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"")
    with pytest.raises(ModelError, match="has no sidecar m.engine.json: build it with `export --tensorrt`"):
        load_engine_sidecar(engine, "10.13.0")
    (tmp_path / "m.engine.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a readable engine sidecar"):
        load_engine_sidecar(engine, "10.13.0")


@pytest.mark.gpu
@pytest.mark.skipif(_tensorrt_missing(), reason="needs TensorRT (pip install tensorrt) and an NVIDIA GPU")
def test_engine_runs_like_the_onnx_model_on_the_cpu(tiny_model_path, tmp_path):
    from clothes_extractor.export.tensorrt import build_engine
    from clothes_extractor.runtime.session import ModelSession, open_session

    engine_path = tmp_path / "tiny.engine"
    build_engine(tiny_model_path, engine_path, min_batch=2, opt_batch=4, max_batch=4, fp16=False)
    engine = open_session(engine_path, "auto")
    cpu = ModelSession(tiny_model_path, "cpu")
    h, w = cpu.contract.size
    rng = np.random.default_rng(0)
    for n in (1, 3, 9):  # padded to the minimum, within the profile, split above the maximum
        image = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
        mask = rng.integers(0, 256, (n, h, w, 1), dtype=np.uint8)
        diff = np.abs(engine.run(image=image, mask=mask).astype(int) - cpu.run(image=image, mask=mask).astype(int))
        assert diff.shape[0] == n and diff.max() <= 2 and diff.mean() <= 0.05
