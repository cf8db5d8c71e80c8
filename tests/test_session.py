"""The one session type: loading, the contract and checksum checks, providers, batches."""

import json
import os
import platform
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
from PIL import Image

from clothes_extractor.errors import ContractError, ModelError, ProviderError
from clothes_extractor.models import bundled_model
from clothes_extractor.runtime.contract import METADATA_KEY
from clothes_extractor.runtime.hardware import cpu_stream_plan
from clothes_extractor.runtime.onnxfile import encode, fields, keep_outputs, read_onnx
from clothes_extractor.runtime.providers import PROBE_MODEL, SessionSettings, probe_provider
from clothes_extractor.runtime.session import ModelSession, contract_of, pad_batch
from conftest import TINY_SIZE, cli_env

NO_CUDA = "CUDAExecutionProvider" not in onnxruntime.get_available_providers()


def feeds(n, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (n, *TINY_SIZE, 3), dtype=np.uint8),
        "mask": rng.integers(0, 256, (n, *TINY_SIZE, 1), dtype=np.uint8),
    }


def test_loads_and_runs_batches_of_any_size(tiny_model_path):
    with ModelSession(tiny_model_path, "cpu") as model:
        assert model.provider == "cpu" and model.contract.size == TINY_SIZE
        for n in (1, 3):
            out = model.run(**feeds(n))
            assert list(out) == ["garment"]
            assert out["garment"].shape == (n, *TINY_SIZE, 3) and out["garment"].dtype == np.uint8
        empty = model.run(image=np.zeros((0, *TINY_SIZE, 3), np.uint8), mask=np.zeros((0, *TINY_SIZE, 1), np.uint8))
        assert empty["garment"].shape == (0, *TINY_SIZE, 3)
    assert model.session is None  # closed by the with block


def test_a_catalog_resolution_model_answers_at_the_photo_size(tiny_flow_path):
    model = ModelSession(tiny_flow_path, "cpu")
    assert model.input_names == ["image", "mask", "photo"] and model.output_names == ["garment", "alpha"]
    base = feeds(2)
    for size in (TINY_SIZE, (128, 96), (100, 75)):
        photo = np.random.default_rng(1).integers(0, 256, (2, *size, 3), dtype=np.uint8)
        out = model.run(**base, photo=photo)
        assert out["garment"].shape == (2, *size, 3) and out["alpha"].shape == (2, *size, 1)
    empty = {k: v[:0] for k, v in base.items()}
    out = model.run(**empty, photo=np.zeros((0, 80, 60, 3), np.uint8))
    assert out["garment"].shape == (0, 80, 60, 3)


def test_wrong_arrays_are_refused(tiny_model_path):
    model = ModelSession(tiny_model_path, "cpu")
    good_mask = np.zeros((1, *TINY_SIZE, 1), np.uint8)
    with pytest.raises(ValueError, match="image must be uint8"):
        model.run(image=np.zeros((1, *TINY_SIZE, 3), np.float32), mask=good_mask)
    with pytest.raises(ValueError, match="batch sizes differ"):
        model.run(image=np.zeros((2, *TINY_SIZE, 3), np.uint8), mask=good_mask)
    with pytest.raises(ValueError, match=r"takes \['image', 'mask'\]"):
        model.run(image=np.zeros((1, *TINY_SIZE, 3), np.uint8))


def test_auto_reports_the_provider_it_got(tiny_model_path):
    assert ModelSession(tiny_model_path, "auto").provider in ("tensorrt", "cuda", "cpu")


@pytest.mark.skipif(not NO_CUDA, reason="this onnxruntime has CUDA")
@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_an_explicit_gpu_provider_that_cannot_start_is_an_error(tiny_model_path, provider):
    with pytest.raises(ProviderError, match=f"the {provider} provider is not in this onnxruntime build"):
        ModelSession(tiny_model_path, provider)
    ok, reason = probe_provider(provider)
    assert not ok and "not in this onnxruntime build" in reason


def test_the_rtx_provider_without_its_plugin_says_what_to_install():
    ok, reason = probe_provider("rtx")
    try:
        import onnxruntime_ep_nv_tensorrt_rtx  # noqa: F401
    except ImportError:
        assert not ok and 'pip install "clothes-extractor[rtx]"' in reason
    else:  # without a driver its library does not load; on a GPU it does not support it lists no device
        assert ok or "does not load here" in reason or "lists no device" in reason


@pytest.mark.parametrize(
    "failure, exit_code, message",
    [
        # what Python raises where onnxruntime is not installed
        ("raise ModuleNotFoundError(\"No module named 'onnxruntime'\", name='onnxruntime')", 1,
         'needs onnxruntime, which is not installed: pip install "clothes-extractor[cpu]"'),
        # its C module against another numpy (what onnxruntime itself says then)
        ("raise ImportError('import numpy failed')", 1,
         "onnxruntime is installed but does not import (import numpy failed); a package it needs"),
        # Ctrl-C while its C module starts: pybind11 raises ImportError from the KeyboardInterrupt
        ("raise ImportError('initialization failed') from KeyboardInterrupt()", 130, None),
    ],
)  # fmt: skip
def test_an_onnxruntime_that_does_not_import_is_named_as_such(tmp_path, tiny_model_path, failure, exit_code, message):
    # A package named onnxruntime ahead of the real one on the path, failing as the real one does.
    (tmp_path / "shadow" / "onnxruntime").mkdir(parents=True)
    (tmp_path / "shadow" / "onnxruntime" / "__init__.py").write_text(failure + "\n")
    Image.new("RGB", (48, 64), (200, 30, 30)).save(tmp_path / "photo.png")
    env = cli_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "shadow"), env["PYTHONPATH"]])
    photo, out = tmp_path / "photo.png", tmp_path / "g.png"
    done = subprocess.run(
        [sys.executable, "-m", "clothes_extractor", "extract", str(photo), "-o", str(out),
         "--model", str(tiny_model_path), "--no-segmenter"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == exit_code, done.stderr
    assert "Traceback" not in done.stderr and not out.exists()
    if message:
        assert message in done.stderr


def test_probe_model_runs_on_cpu():
    assert probe_provider("cpu") == (True, "started (cpu)")


def test_model_file_errors(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        ModelSession(tmp_path / "none.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        ModelSession(tmp_path / "empty.onnx")
    (tmp_path / "text.onnx").write_text("this is not a model")
    with pytest.raises(ModelError, match="not an ONNX model"):
        ModelSession(tmp_path / "text.onnx", "cpu")


def test_onnx_model_without_contract_is_refused(tmp_path):
    (tmp_path / "plain.onnx").write_bytes(PROBE_MODEL)
    with pytest.raises(ContractError, match="no clothes-extractor contract"):
        ModelSession(tmp_path / "plain.onnx", "cpu")


def test_the_file_reader_agrees_with_onnx(tiny_model_path):
    proto = onnx.load(str(tiny_model_path))
    found = read_onnx(tiny_model_path.read_bytes(), "m")
    assert found.metadata == {p.key: p.value for p in proto.metadata_props}
    assert contract_of(tiny_model_path).weights_sha256 == found.graph_sha256 != ""
    with pytest.raises(ValueError):
        fields(b"\x0a\xff\xff\xff\x0f")  # a length past the end


def test_keep_outputs_drops_the_nodes_and_weights_only_the_other_outputs_need():
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    w = numpy_helper.from_array(np.array([3.0, 4.0], np.float32), "w")
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Mul", ["x", "w"], ["t"])]
    nodes.append(helper.make_node("Neg", ["t"], ["b"]))
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("a", "b")]
    graph = helper.make_graph(nodes, "g", [x], outputs, [w], value_info=[helper.make_tensor_value_info("t", 1, [2])])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    assert encode(fields(data)) == data  # the writer is the reader's inverse
    cut = onnx.load_from_string(keep_outputs(data, frozenset({"a"})))
    onnx.checker.check_model(cut, full_check=True)
    assert [n.op_type for n in cut.graph.node] == ["Relu"] and [o.name for o in cut.graph.output] == ["a"]
    assert not cut.graph.initializer and not cut.graph.value_info
    other = onnx.load_from_string(keep_outputs(data, frozenset({"b"})))
    assert [n.op_type for n in other.graph.node] == ["Mul", "Neg"] and [i.name for i in other.graph.initializer] == [
        "w"
    ]
    assert keep_outputs(data, frozenset({"a", "b"})) == data
    with pytest.raises(ValueError, match="not a superset"):
        keep_outputs(data, frozenset({"c"}))
    # a subgraph reads outer names that are not node inputs: such a graph is kept whole
    branch = helper.make_graph([helper.make_node("Identity", ["t"], ["y"])], "then", [], [outputs[0]])
    nodes.append(helper.make_node("If", ["c"], ["z"], then_branch=branch, else_branch=branch))
    graph = helper.make_graph(nodes, "g", [x, helper.make_tensor_value_info("c", TensorProto.BOOL, [])], outputs, [w])
    data = helper.make_model(graph).SerializeToString()
    assert keep_outputs(data, frozenset({"a"})) == data


def test_a_session_opened_for_some_outputs_computes_only_those():
    full = ModelSession(bundled_model("generator", "fp32"), "cpu")
    garment_only = ModelSession(bundled_model("generator", "fp32"), "cpu", outputs=["garment"])
    assert full.output_names == ["garment", "alpha"] and garment_only.output_names == ["garment"]
    assert [o.name for o in garment_only.session.get_outputs()] == ["garment"]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, *full.contract.size, 3), dtype=np.uint8)
    mask = np.zeros((3, *full.contract.size, 1), np.uint8)
    mask[:, 60:200, 40:150] = 255
    got = garment_only.run(image=image, mask=mask)
    assert list(got) == ["garment"] and np.array_equal(got["garment"], full.run(image=image, mask=mask)["garment"])
    assert list(garment_only.run(image=image[:0], mask=mask[:0])) == ["garment"]
    assert [o["name"] for o in garment_only.describe()["outputs"]] == ["garment"]
    # the silhouette head's nodes and weights are gone, not merely unread
    data = bundled_model("generator", "fp32").read_bytes()
    cut = onnx.load_from_string(keep_outputs(data, frozenset({"garment"})))
    whole = onnx.load_from_string(data)
    assert len(cut.graph.node) < len(whole.graph.node) / 2 and len(cut.graph.initializer) < len(whole.graph.initializer)
    with pytest.raises(ModelError, match="cannot serve outputs"):
        ModelSession(bundled_model("generator", "fp32"), "cpu", outputs=["labels"])
    # another task's model where a garment is asked of it (extract --model segmenter): said as such
    with pytest.raises(ModelError, match=r"segmenter-fp32.onnx is a segmenter model; a generator is needed here$"):
        ModelSession(bundled_model("segmenter", "fp32"), "cpu", outputs=["garment"])


def test_a_model_with_damaged_weights_is_refused(tiny_model_path, tmp_path):
    data = bytearray(tiny_model_path.read_bytes())
    proto = onnx.load(str(tiny_model_path))
    weight = max(proto.graph.initializer, key=lambda t: len(t.raw_data)).raw_data
    start = bytes(data).index(weight)
    rng = np.random.default_rng(0)
    for i in rng.choice(len(weight), 64, replace=False):  # flipped bytes inside the largest weight
        data[start + i] ^= 0xFF
    (tmp_path / "damaged.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="damaged: its graph and weights do not match the checksum"):
        ModelSession(tmp_path / "damaged.onnx", "cpu")


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
    future = _with_contract_change(tiny_model_path, tmp_path / "future.onnx", format_version=4)
    with pytest.raises(ContractError, match="contract format 4"):
        ModelSession(future, "cpu")


def test_auto_skips_tensorrt_without_its_library_and_gpus_without_a_gpu(monkeypatch):
    from clothes_extractor.runtime import providers

    class FakeOrt:  # an onnxruntime-gpu build: it lists TensorRT even where libnvinfer is absent
        @staticmethod
        def get_available_providers():
            return ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]

    monkeypatch.setattr(providers, "has_nvidia_gpu", lambda: True)
    monkeypatch.setattr(providers, "tensorrt_runtime_loads", lambda: False)
    assert providers._requested_providers(FakeOrt, "auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(providers, "tensorrt_runtime_loads", lambda: True)
    assert providers._requested_providers(FakeOrt, "auto")[0] == "TensorrtExecutionProvider"
    assert providers._requested_providers(FakeOrt, "cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(providers, "tensorrt_runtime_loads", lambda: False)
    with pytest.raises(ProviderError, match="needs TensorRT's runtime library .*--provider cuda"):
        providers._requested_providers(FakeOrt, "tensorrt")  # asked for by name: a clear refusal, no EP noise
    monkeypatch.setattr(providers, "has_nvidia_gpu", lambda: False)
    assert providers._requested_providers(FakeOrt, "auto") == ["CPUExecutionProvider"]
    with pytest.raises(ProviderError, match="needs an NVIDIA GPU, and this machine has none"):
        providers._requested_providers(FakeOrt, "cuda")


def test_onnxruntime_output_during_a_gpu_start_never_reaches_the_user(tiny_model_path, monkeypatch, capfd):
    # onnxruntime print()s "EP Error ... Falling back" and its C++ loader writes to fd 2 when a
    # GPU provider fails; stdout may carry `info --json`. The start is made with auto here, on
    # a fake GPU machine, so the capture runs.
    import os

    from clothes_extractor.runtime import providers

    real = onnxruntime.InferenceSession

    def noisy(*args, **kwargs):
        print("EP Error: TensorRT libraries missing. Falling back to ['CPUExecutionProvider'] and retrying.")
        os.write(2, b"[E:onnxruntime:Default, provider_bridge_ort.cc:1] Failed to load library libcublas.so.12\n")
        return real(*args, **{**kwargs, "providers": ["CPUExecutionProvider"]})

    monkeypatch.setattr(onnxruntime, "InferenceSession", noisy)
    monkeypatch.setattr(providers, "has_nvidia_gpu", lambda: True)
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    model = ModelSession(tiny_model_path, "auto")
    captured = capfd.readouterr()
    assert model.provider == "cpu"
    assert "EP Error" not in captured.out + captured.err and "libcublas" not in captured.out + captured.err
    with pytest.raises(ProviderError, match="the cuda provider did not start .*Failed to load library libcublas"):
        ModelSession(tiny_model_path, "cuda")
    assert "libcublas" not in capfd.readouterr().err


def test_padded_batches_reuse_the_largest_shape(tiny_model_path):
    # On GPU providers (forced here on the CPU) a smaller batch runs padded to the largest
    # seen: no new input shape, so no new cuDNN algorithm search or TensorRT engine.
    plain = ModelSession(tiny_model_path, "cpu")
    assert not plain._pad  # the CPU has no per-shape cost worth the padding
    padded = ModelSession(tiny_model_path, "cpu", settings=SessionSettings(pad_batches=True, cpu_streams=1))
    shapes = []
    run = padded.session.run

    def recording(names, given):
        shapes.append(len(given["image"]))
        return run(names, given)

    padded.session.run = recording
    for n in (4, 3, 1, 6, 2):
        batch = feeds(n, n)
        out = padded.run(**batch)["garment"]
        assert out.shape[0] == n and np.array_equal(out, plain.run(**batch)["garment"])
    assert shapes == [4, 4, 4, 6, 6]
    grown = pad_batch({"a": np.ones((2, 3), np.uint8)}, 5)["a"]
    assert grown.shape == (5, 3) and grown[:2].all() and not grown[2:].any()


def test_cpu_streams_split_a_batch_in_order(tiny_flow_path):
    # A CPU batch runs as cpu_streams parts at once, one session each; the parts come back
    # in order and equal the whole batch run by one session (every output). A batch of 1 is not split.
    whole = ModelSession(tiny_flow_path, "cpu", settings=SessionSettings(cpu_streams=1))
    split = ModelSession(tiny_flow_path, "cpu", settings=SessionSettings(cpu_streams=3))
    assert (whole.cpu_streams, split.cpu_streams) == (1, 3)

    def batch(n, seed):
        return {**feeds(n, seed), "photo": np.random.default_rng(seed).integers(0, 256, (n, 96, 72, 3), np.uint8)}

    one = batch(1, 0)
    assert all(np.array_equal(split.run(**one)[k], whole.run(**one)[k]) for k in ("garment", "alpha"))
    assert split._lanes == []  # batch 1 ran on the session with every thread
    split.run(**batch(2, 1))  # opens the streams' sessions
    assert len(split._lanes) == 3
    parts = []
    for lane in split._lanes:
        run = lane.run
        lane.run = lambda names, given, run=run: parts.append(len(given["image"])) or run(names, given)
    for n in (7, 2, 5):
        given = batch(n, n)
        parts.clear()
        out, expected = split.run(**given), whole.run(**given)
        assert all(np.array_equal(out[k], expected[k]) for k in ("garment", "alpha"))
        assert sorted(parts) == sorted({7: [2, 3, 2], 2: [1, 1], 5: [2, 1, 2]}[n])
    split.close()  # a closed session says so (it reopened its streams' sessions, or failed on None)
    with pytest.raises(ModelError, match=r"the session on .*flow.onnx is closed; open a new one"):
        split.run(**batch(4, 0))


def test_cpu_stream_plan():
    assert cpu_stream_plan(SessionSettings(intra_op_threads=8)) == (2, 4)  # auto: 2 streams
    assert cpu_stream_plan(SessionSettings(intra_op_threads=1)) == (1, 1)  # one core: no split
    assert cpu_stream_plan(SessionSettings(intra_op_threads=2, cpu_streams=4)) == (4, 1)
    assert cpu_stream_plan(SessionSettings(intra_op_threads=6, cpu_streams=1)) == (1, 6)
    with pytest.raises(ValueError, match="cpu_streams must be >= 1"):
        cpu_stream_plan(SessionSettings(cpu_streams=0))


@pytest.mark.gpu
@pytest.mark.skipif(NO_CUDA, reason="needs onnxruntime-gpu and a GPU")
def test_cuda_session_matches_cpu(tiny_model_path, tiny_flow_path):
    for path in (tiny_model_path, tiny_flow_path):
        cpu, gpu = ModelSession(path, "cpu"), ModelSession(path, "cuda")
        given = feeds(3)
        if "photo" in cpu.input_names:
            given["photo"] = np.random.default_rng(2).integers(0, 256, (3, 128, 96, 3), dtype=np.uint8)
        for name, expected in cpu.run(**given).items():
            assert np.abs(gpu.run(**given)[name].astype(int) - expected.astype(int)).mean() < 0.5


def test_a_large_cpu_batch_runs_a_few_rows_at_a_time(tiny_flow_path, monkeypatch):
    # Activations grow with the rows a run takes and onnxruntime's arena keeps their peak:
    # a CPU batch runs CPU_ROWS_PER_RUN rows at a time, in order, with the same outputs.
    from clothes_extractor.runtime import session as session_module

    whole = ModelSession(tiny_flow_path, "cpu", settings=SessionSettings(cpu_streams=1))
    given = {**feeds(7, 3), "photo": np.random.default_rng(3).integers(0, 256, (7, 96, 72, 3), np.uint8)}
    expected = whole.run(**given)  # 7 rows: one run at the default of 16
    rows = []
    run = whole.session.run
    whole.session.run = lambda names, fed: rows.append(len(fed["image"])) or run(names, fed)
    monkeypatch.setattr(session_module, "CPU_ROWS_PER_RUN", 3)
    out = whole.run(**given)
    assert rows == [3, 3, 1]
    assert all(np.array_equal(out[k], expected[k]) for k in ("garment", "alpha"))


TRIM_SCRIPT = """
import json, os, sys
import numpy as np
from clothes_extractor.models import bundled_model
from clothes_extractor.runtime.session import ModelSession, SessionSettings

def resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

rng = np.random.default_rng(0)
with ModelSession(bundled_model("tryon", "fp32"), "cpu", settings=SessionSettings(cpu_streams=1)) as tryon:
    batch = {s.name: rng.integers(0, 256, (16, *tryon.contract.size, s.channels), dtype=np.uint8)
             for s in tryon.contract.inputs}
    first = tryon.run(**batch)["image"]
    held = resident_mb()
    tryon.trim()
    trimmed = resident_mb()
    same = bool(np.array_equal(tryon.run(**batch)["image"], first))
print(json.dumps({"held": held, "trimmed": trimmed, "same": same}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads the process's memory from /proc (Linux)")
def test_trim_gives_back_the_memory_the_arena_holds_after_a_run():
    # onnxruntime's CPU arena grows to a run's activations and keeps them for the session's life:
    # try-on's folder job trims its models before the other stage's model runs (--garment-from).
    # Measured in a process of its own (a test worker's heap holds other tests' memory).
    done = subprocess.run([sys.executable, "-c", TRIM_SCRIPT], capture_output=True, text=True, env=cli_env())
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["held"] - found["trimmed"] > 100, found  # (~200 MB for a batch of 16; 99-117 for 8)
    assert found["same"]  # (and it runs as before)


HEAP_SCRIPT = """
import json, os
import numpy as np
from clothes_extractor.runtime.session import trim_memory

def resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

held = [np.ones(64 * 1024 - 64, np.uint8) for _ in range(3000)]  # ~190 MB in heap chunks (below mmap's size)
del held[:-1]  # freed, but the last chunk holds the heap's top: none of it goes back by itself
freed = resident_mb()
trim_memory([])
print(json.dumps({"freed": freed, "trimmed": resident_mb()}))
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's"
)
def test_trim_memory_gives_back_the_heap_pages_a_stage_freed():
    # photos, batches and outputs freed by a stage stay in the C heap, in pieces, unless trimmed
    # (serve after a burst from 16 clients: ~400 MB with the arenas trimmed, 267 with the heap too)
    done = subprocess.run([sys.executable, "-c", HEAP_SCRIPT], capture_output=True, text=True, env=cli_env())
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["freed"] - found["trimmed"] > 100, found  # (~190 MB)


def test_a_model_exported_for_fp32_arithmetic_asks_cuda_for_fp32_not_tf32(tiny_model_path):
    """onnxruntime's CUDA convolutions run fp32 as TF32 by default: the bundled fp32 generator came
    out 5 levels off the CPU at batch 32 on an H200 (its export tolerance 4). A model exported for
    fp32 arithmetic now asks for fp32; an fp16 one, and a caller's own choice, are left as they are."""
    from clothes_extractor.models import model_for

    cuda = "CUDAExecutionProvider"
    fp32 = ModelSession(tiny_model_path, "cpu")
    assert fp32.contract.precision == "fp32" and fp32.settings.tf32 is False
    assert fp32.settings.provider_options(cuda)["use_tf32"] == "0"
    assert "use_tf32" not in SessionSettings().provider_options(cuda)  # onnxruntime's default, not named
    assert ModelSession(tiny_model_path, "cpu", settings=SessionSettings(tf32=True)).settings.tf32 is True
    fp16 = ModelSession(model_for("segmenter", gpu=True), "cpu")
    assert fp16.contract.precision == "fp16" and fp16.settings.tf32 is None
