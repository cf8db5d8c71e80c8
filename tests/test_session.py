import json

import numpy as np
import onnx
import onnxruntime
import pytest

from clothes_extractor.errors import ContractError, ModelError, ProviderError
from clothes_extractor.runtime.contract import METADATA_KEY
from clothes_extractor.runtime.session import PROBE_MODEL, ModelSession, probe_provider
from conftest import TINY_SIZE


def test_loads_and_runs_batches_of_any_size(tiny_model_path):
    model = ModelSession(tiny_model_path, "cpu")
    assert model.provider == "cpu"
    assert model.contract.size == TINY_SIZE
    for n in (1, 3):
        rng = np.random.default_rng(n)
        out = model.run(
            image=rng.integers(0, 256, (n, *TINY_SIZE, 3), dtype=np.uint8),
            mask=np.full((n, *TINY_SIZE, 1), 255, np.uint8),
        )
        assert out.shape == (n, *TINY_SIZE, 3) and out.dtype == np.uint8
    empty = model.run(image=np.zeros((0, *TINY_SIZE, 3), np.uint8), mask=np.zeros((0, *TINY_SIZE, 1), np.uint8))
    assert empty.shape == (0, *TINY_SIZE, 3)


def test_wrong_arrays_are_refused(tiny_model_path):
    model = ModelSession(tiny_model_path, "cpu")
    good_mask = np.zeros((1, *TINY_SIZE, 1), np.uint8)
    with pytest.raises(ValueError, match="image must be uint8"):
        model.run(image=np.zeros((1, *TINY_SIZE, 3), np.float32), mask=good_mask)
    with pytest.raises(ValueError, match="batch sizes differ"):
        model.run(image=np.zeros((2, *TINY_SIZE, 3), np.uint8), mask=good_mask)


def test_auto_reports_the_provider_it_got(tiny_model_path):
    model = ModelSession(tiny_model_path, "auto")
    assert model.provider in ("tensorrt", "cuda", "cpu")


@pytest.mark.skipif(
    "CUDAExecutionProvider" in onnxruntime.get_available_providers(), reason="this onnxruntime has CUDA"
)
@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_an_explicit_gpu_provider_that_cannot_start_is_an_error(tiny_model_path, provider):
    with pytest.raises(ProviderError, match=f"the {provider} provider is not in this onnxruntime build"):
        ModelSession(tiny_model_path, provider)
    ok, reason = probe_provider(provider)
    assert not ok and "not in this onnxruntime build" in reason


def test_probe_model_runs_on_cpu():
    assert probe_provider("cpu") == (True, "started (cpu)")


def test_model_file_errors(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        ModelSession(tmp_path / "none.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        ModelSession(tmp_path / "empty.onnx")
    (tmp_path / "text.onnx").write_text("this is not a model")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        ModelSession(tmp_path / "text.onnx", "cpu")


def test_onnx_model_without_contract_is_refused(tmp_path):
    (tmp_path / "plain.onnx").write_bytes(PROBE_MODEL)
    with pytest.raises(ContractError, match="no clothes-extractor contract"):
        ModelSession(tmp_path / "plain.onnx", "cpu")


def _with_contract_change(source, target, **change):
    model = onnx.load(str(source))
    entry = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    data = json.loads(entry.value)
    data.update(change)
    entry.value = json.dumps(data)
    onnx.save(model, str(target))
    return target


def test_contract_that_does_not_match_the_graph_is_refused(tiny_model_path, tmp_path):
    lying = _with_contract_change(tiny_model_path, tmp_path / "lying.onnx", height=128)
    with pytest.raises(ContractError, match=r"must be \[batch, 128, 48, 3\]"):
        ModelSession(lying, "cpu")


def test_unknown_contract_is_refused(tiny_model_path, tmp_path):
    future = _with_contract_change(tiny_model_path, tmp_path / "future.onnx", format_version=2)
    with pytest.raises(ContractError, match="contract format 2"):
        ModelSession(future, "cpu")


def test_auto_skips_tensorrt_without_its_library(monkeypatch):
    from clothes_extractor.runtime import session

    class FakeOrt:  # an onnxruntime-gpu build: it lists TensorRT even where libnvinfer is absent
        @staticmethod
        def get_available_providers():
            return ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]

    monkeypatch.setattr(session, "tensorrt_runtime_loads", lambda: False)
    assert session._requested_providers(FakeOrt, "auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(session, "tensorrt_runtime_loads", lambda: True)
    assert session._requested_providers(FakeOrt, "auto")[0] == "TensorrtExecutionProvider"
    assert session._requested_providers(FakeOrt, "cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(session, "tensorrt_runtime_loads", lambda: False)
    with pytest.raises(ProviderError, match="needs TensorRT's runtime library .*--provider cuda"):
        session._requested_providers(FakeOrt, "tensorrt")  # asked for by name: a clear refusal, no EP noise


def test_bound_runner_pads_to_allocated_batch_sizes(tiny_model_path):
    """The IO-binding runner behind CUDA graphs, on the CPU provider: same buffers, same results."""
    from clothes_extractor.runtime.gpu import BoundRunner

    model = ModelSession(tiny_model_path, "cpu")
    runner = BoundRunner(model, cuda_graph=False, device="cpu", pad=True)
    runner.warm_up([4, 8])
    rng = np.random.default_rng(0)
    for n in (1, 3, 4, 6, 8, 9):
        image = rng.integers(0, 256, (n, *TINY_SIZE, 3), dtype=np.uint8)
        mask = np.full((n, *TINY_SIZE, 1), 255, np.uint8)
        expected = model.run(image=image, mask=mask)
        assert np.array_equal(runner.run(image=image, mask=mask), expected)
    assert sorted(runner._buffers) == [4, 8, 9]  # 1 and 3 padded to 4, 6 to 8; 9 got its own


@pytest.mark.parametrize("batches", [0, 1, 2, 3, 7])
def test_pipelined_runner_returns_every_batch_in_order(tiny_model_path, batches):
    """Three buffer slots cycling through upload/compute/download threads, on the CPU provider:
    each output is its own batch's, whatever the number of batches and a ragged tail."""
    from clothes_extractor.runtime.gpu import PipelinedRunner

    model = ModelSession(tiny_model_path, "cpu")
    rng = np.random.default_rng(batches)
    sizes = [4] * max(batches - 1, 0) + [3] * (batches > 0)
    feeds = [
        {
            "image": rng.integers(0, 256, (n, *TINY_SIZE, 3), dtype=np.uint8),
            "mask": rng.integers(0, 256, (n, *TINY_SIZE, 1), dtype=np.uint8),
        }
        for n in sizes
    ]
    with PipelinedRunner(model, cuda_graph=False, device="cpu") as runner:
        runner.warm_up([4])
        outputs = list(runner.map(iter(feeds)))
    assert len(outputs) == batches
    for feed, output in zip(feeds, outputs, strict=True):
        assert np.array_equal(output, model.run(**feed))


@pytest.mark.gpu
@pytest.mark.skipif(
    "CUDAExecutionProvider" not in onnxruntime.get_available_providers(), reason="needs onnxruntime-gpu and a GPU"
)
def test_cuda_graph_session_matches_cpu(tiny_model_path):
    from clothes_extractor.runtime.session import SessionSettings

    cpu = ModelSession(tiny_model_path, "cpu")
    gpu = ModelSession(tiny_model_path, "cuda", settings=SessionSettings(cuda_graph=True))
    image = np.random.default_rng(0).integers(0, 256, (3, *TINY_SIZE, 3), dtype=np.uint8)
    mask = np.full((3, *TINY_SIZE, 1), 255, np.uint8)
    for _ in range(3):  # capture, then replay
        diff = np.abs(gpu.run(image=image, mask=mask).astype(int) - cpu.run(image=image, mask=mask).astype(int))
        assert diff.max() <= 2


@pytest.mark.gpu
@pytest.mark.skipif(
    "CUDAExecutionProvider" not in onnxruntime.get_available_providers(), reason="needs onnxruntime-gpu and a GPU"
)
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_pipelined_runner_on_cuda_matches_cpu(tiny_model_path, cuda_graph):
    from clothes_extractor.runtime.gpu import PipelinedRunner
    from clothes_extractor.runtime.session import SessionSettings

    cpu = ModelSession(tiny_model_path, "cpu")
    gpu = ModelSession(tiny_model_path, "cuda", settings=SessionSettings(cuda_graph=cuda_graph))
    rng = np.random.default_rng(1)
    feeds = [
        {
            "image": rng.integers(0, 256, (n, *TINY_SIZE, 3), dtype=np.uint8),
            "mask": rng.integers(0, 256, (n, *TINY_SIZE, 1), dtype=np.uint8),
        }
        for n in (4, 4, 4, 4, 4, 3)
    ]
    with PipelinedRunner(gpu, cuda_graph=cuda_graph) as runner:
        runner.warm_up([4])
        outputs = list(runner.map(feeds))
    for feed, output in zip(feeds, outputs, strict=True):
        assert np.abs(output.astype(int) - cpu.run(**feed).astype(int)).max() <= 2


def test_onnxruntime_prints_stay_off_stdout(tiny_model_path, monkeypatch, capsys):
    # onnxruntime print()s "EP Error ... Falling back" when a GPU provider fails; stdout
    # may carry `info --json` (a lent H200 run's JSON started with that message once).
    real = onnxruntime.InferenceSession

    def noisy(*args, **kwargs):
        print("EP Error: TensorRT libraries missing. Falling back to ['CPUExecutionProvider'] and retrying.")
        return real(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", noisy)
    ModelSession(tiny_model_path, "cpu")
    captured = capsys.readouterr()
    assert captured.out == "" and "EP Error" in captured.err


def test_padded_batches_reuse_the_largest_shape(tiny_model_path):
    # On GPU providers (forced here on the CPU) a smaller batch runs padded to the largest
    # seen: no new input shape, so no new cuDNN algorithm search or TensorRT engine.
    from clothes_extractor.runtime.session import SessionSettings

    plain = ModelSession(tiny_model_path, "cpu")
    assert not plain._pad  # the CPU has no per-shape cost worth the padding
    padded = ModelSession(tiny_model_path, "cpu", settings=SessionSettings(pad_batches=True, cpu_streams=1))
    shapes = []
    run = padded.session.run

    def recording(names, feeds):
        shapes.append(len(feeds["image"]))
        return run(names, feeds)

    padded.session.run = recording
    rng = np.random.default_rng(0)
    for n in (4, 3, 1, 6, 2):
        image = rng.integers(0, 256, (n, *TINY_SIZE, 3), dtype=np.uint8)
        mask = rng.integers(0, 256, (n, *TINY_SIZE, 1), dtype=np.uint8)
        out = padded.run(image=image, mask=mask)
        assert out.shape[0] == n and np.array_equal(out, plain.run(image=image, mask=mask))
    assert shapes == [4, 4, 4, 6, 6]


def test_cpu_streams_split_a_batch_in_order(tiny_model_path):
    # A CPU batch runs as cpu_streams parts at once, one session each; the parts come back
    # in order and equal the whole batch run by one session. A batch of 1 is not split.
    from clothes_extractor.runtime.session import SessionSettings

    whole = ModelSession(tiny_model_path, "cpu", settings=SessionSettings(cpu_streams=1))
    split = ModelSession(tiny_model_path, "cpu", settings=SessionSettings(cpu_streams=3))
    assert (whole.cpu_streams, split.cpu_streams) == (1, 3)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, *TINY_SIZE, 3), dtype=np.uint8)
    mask = rng.integers(0, 256, (1, *TINY_SIZE, 1), dtype=np.uint8)
    assert np.array_equal(split.run(image=image, mask=mask), whole.run(image=image, mask=mask))
    assert split._lanes == []  # batch 1 ran on the session with every thread
    split.run(image=np.repeat(image, 2, axis=0), mask=np.repeat(mask, 2, axis=0))  # opens the streams' sessions
    assert len(split._lanes) == 3
    parts = []
    for lane in split._lanes:
        run = lane.run
        lane.run = lambda names, feeds, run=run: parts.append(len(feeds["image"])) or run(names, feeds)
    for n in (7, 2, 5):
        image = rng.integers(0, 256, (n, *TINY_SIZE, 3), dtype=np.uint8)
        mask = rng.integers(0, 256, (n, *TINY_SIZE, 1), dtype=np.uint8)
        parts.clear()
        out = split.run(image=image, mask=mask)
        assert out.shape == (n, *TINY_SIZE, 3)
        assert np.array_equal(out, whole.run(image=image, mask=mask))
        assert sorted(parts) == sorted({7: [2, 3, 2], 2: [1, 1], 5: [2, 1, 2]}[n])


def test_cpu_stream_plan():
    from clothes_extractor.runtime.session import SessionSettings, cpu_stream_plan, physical_cores

    assert physical_cores() >= 1
    assert cpu_stream_plan(SessionSettings(intra_op_threads=8)) == (2, 4)  # auto: 2 streams
    assert cpu_stream_plan(SessionSettings(intra_op_threads=1)) == (1, 1)  # one core: no split
    assert cpu_stream_plan(SessionSettings(intra_op_threads=2, cpu_streams=4)) == (4, 1)
    assert cpu_stream_plan(SessionSettings(intra_op_threads=6, cpu_streams=1)) == (1, 6)
    with pytest.raises(ValueError, match="cpu_streams must be >= 1"):
        cpu_stream_plan(SessionSettings(cpu_streams=0))
