"""The Python API as an app developer uses it: one photo in, one garment out, the CLI's pixels."""

import io
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from clothes_extractor import extract_garment, new_session
from clothes_extractor.errors import InputError, ModelError
from conftest import ROOT, TINY_SIZE, cli_env, person_photo, run_cli


def test_new_session_by_task_name_or_path(tiny_model_path):
    with new_session("segmenter", provider="cpu") as segmenter:
        assert segmenter.task == "segmenter" and segmenter.path.name == "segmenter-fp32.onnx"
    assert segmenter.session is None  # released
    with new_session(tiny_model_path, provider="cpu") as generator:
        assert generator.contract.size == TINY_SIZE
    with pytest.raises(ModelError, match="model file not found"):
        new_session("no-such-model.onnx")
    with pytest.raises(ModelError, match="no model file 'generater', and no task of that name: .*generator"):
        new_session("generater")  # a task name mistyped


def test_one_photo_gives_the_pixels_the_cli_writes(figures, tmp_path):
    photo = figures / "figure-2.jpg"
    done = run_cli("extract", photo, "-o", tmp_path / "cli.png", "--provider", "cpu")
    assert done.returncode == 0, done.stderr
    expected = np.asarray(Image.open(tmp_path / "cli.png"))
    with new_session("generator", "cpu") as generator, new_session("segmenter", "cpu") as segmenter:
        for given in (photo, str(photo), photo.read_bytes(), Image.open(photo)):
            garment = extract_garment(given, generator=generator, segmenter=segmenter)
            assert isinstance(garment, Image.Image) and garment.mode == "RGB"
            assert np.array_equal(np.asarray(garment), expected)


def test_a_list_runs_as_batches_and_keeps_its_order(tiny_flow_path, photo_folder):
    photos, masks = photo_folder
    paths = sorted(photos.iterdir())
    with new_session(tiny_flow_path, "cpu") as generator:
        one_by_one = [extract_garment(p, masks / f"{p.stem}.png", generator=generator) for p in paths]
        together = extract_garment(paths, [masks / f"{p.stem}.png" for p in paths], generator=generator)
        transparent = extract_garment(paths[0], masks / "p0.png", generator=generator, background="transparent")
        fixed = extract_garment(paths[0], masks / "p0.png", generator=generator, output_size=(128, 96))
        height = extract_garment(paths[0], masks / "p0.png", generator=generator, output_size=128)
        # extract's words: a size and a colour as text
        words = extract_garment(
            paths[0], masks / "p0.png", generator=generator, output_size="128x96", background="#FF0000"
        )
        red = extract_garment(
            paths[0], masks / "p0.png", generator=generator, output_size=(128, 96), background=(255, 0, 0)
        )
        with pytest.raises(ValueError, match=r"output size must be auto, model, HEIGHTxWIDTH or HEIGHT"):
            extract_garment(paths[0], masks / "p0.png", generator=generator, output_size="big")
        with pytest.raises(ValueError, match=r"each 0-255, got \(300, 0, 0\)"):
            extract_garment(paths[0], masks / "p0.png", generator=generator, background=(300, 0, 0))
    assert words.size == (96, 128) and np.array_equal(np.asarray(words), np.asarray(red))
    assert len(together) == len(paths)
    for a, b in zip(one_by_one, together, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert transparent.mode == "RGBA" and fixed.size == (96, 128)
    assert np.array_equal(np.asarray(height), np.asarray(fixed))  # a height: the model's aspect


def test_a_session_opened_for_the_garment_alone_serves_white_and_refuses_other_backgrounds(photo_folder):
    from clothes_extractor.runtime.options import generator_outputs

    photos, masks = photo_folder
    photo, mask = photos / "p0.jpg", masks / "p0.png"
    with new_session("generator", "cpu", outputs=generator_outputs("white")) as generator:
        assert extract_garment(photo, mask, generator=generator).mode == "RGB"
        with pytest.raises(ValueError, match="opened without its alpha output"):
            extract_garment(photo, mask, generator=generator, background="transparent")
    assert generator_outputs("transparent") is None and generator_outputs((0, 0, 0)) is None


def encoded_jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def test_bad_photos_raise_with_the_reason(tiny_model_path, tmp_path):
    with new_session(tiny_model_path, "cpu") as generator:
        with pytest.raises(InputError, match="photo not found"):
            extract_garment(tmp_path / "nope.jpg", generator=generator)
        with pytest.raises(InputError, match=r"^photo .*/a\.jpg: File name too long \(a name in it is 300 bytes\)"):
            extract_garment(tmp_path / ("n" * 300) / "a.jpg", generator=generator)  # (an OSError out of the call)
        with pytest.raises(
            InputError, match=r"shop\.example/a\.jpg is a URL, .*urlopen\(url\)\.read\(\).* extract URL$"
        ):
            extract_garment("https://shop.example/a.jpg", generator=generator)  # (it said "https:/shop...")
        with pytest.raises(InputError, match="is a folder: give its photos' paths as a list"):  # ("Errno 21")
            extract_garment(tmp_path, generator=generator)
        with pytest.raises(InputError, match="^photo is not an image"):  # not its temporary file's path
            extract_garment(b"hello", Image.new("L", (4, 4), 255), generator=generator)
        good, mask = person_photo(1)
        with pytest.raises(InputError, match=r"^photo \[1\] is not an image"):  # its place in the list
            extract_garment([good, b"hello"], [mask, mask], generator=generator)
        with pytest.raises(InputError, match=r"^photo \[10\] is not an image"):  # (photo-10's file, not photo-1's)
            extract_garment([encoded_jpeg(good)] * 10 + [b"hello"], [mask] * 11, generator=generator)
        with pytest.raises(InputError, match=r"^the mask is 40x40 and the photo"):
            extract_garment(good, Image.new("L", (40, 40), 255), generator=generator)
        page = extract_garment(good, mask, generator=generator, output_size=(512, 512))  # a square page
        inner = extract_garment(good, mask, generator=generator, output_size=(512, 384))
        assert page.size == (512, 512) and np.array_equal(np.asarray(page)[:, 64:448], np.asarray(inner))
        assert extract_garment(good, mask, generator=generator, output_size=128).size == (96, 128)  # (drawn at 64x48)
        with pytest.raises(TypeError, match=r"not ndarray; for an array: PIL.Image.fromarray.*COLOR_BGR2RGB"):
            extract_garment(np.zeros((256, 192, 3), np.uint8), generator=generator)
    with new_session("segmenter", "cpu") as segmenter, new_session(tiny_model_path, "cpu") as generator:
        with pytest.raises(InputError, match=r"no garment found .* extract_garment\(photo, mask=\.\.\.\)"):
            extract_garment(Image.new("RGB", (192, 256), (128, 128, 128)), generator=generator, segmenter=segmenter)


def test_a_binary_file_object_is_a_photo_and_every_input_is_named_for_what_it_is(tiny_model_path, tmp_path):
    """An opened file, io.BytesIO or a web framework's upload (Flask's FileStorage reads like a
    file) gives the garment of its bytes; a text stream, an async upload and a stream already
    read say so. A missing mask or garment was "photo not found" until the 57th stop."""
    from clothes_extractor import dress

    good, mask = person_photo(1)
    (tmp_path / "p.jpg").write_bytes(encoded_jpeg(good))
    mask.save(tmp_path / "m.png")
    with new_session(tiny_model_path, "cpu") as generator:
        expected = np.asarray(extract_garment(tmp_path / "p.jpg", tmp_path / "m.png", generator=generator))
        with open(tmp_path / "p.jpg", "rb") as photo, open(tmp_path / "m.png", "rb") as mask_file:
            assert np.array_equal(np.asarray(extract_garment(photo, mask_file, generator=generator)), expected)
        streams = [io.BytesIO(encoded_jpeg(good)), io.BytesIO((tmp_path / "m.png").read_bytes())]
        assert np.array_equal(np.asarray(extract_garment(*streams, generator=generator)), expected)
        with pytest.raises(InputError, match=r"^the photo's file object gave no bytes: .*seek\(0\)"):
            extract_garment(streams[0], tmp_path / "m.png", generator=generator)  # (read above)
        with open(tmp_path / "p.jpg", errors="replace") as text, pytest.raises(TypeError, match="opened in text mode"):
            extract_garment(text, tmp_path / "m.png", generator=generator)

        class Upload:  # Starlette's UploadFile: read() is a coroutine
            async def read(self):
                return encoded_jpeg(good)

        with pytest.raises(TypeError, match=r"^the photo's read\(\) is asynchronous .*await x.read\(\)"):
            extract_garment(Upload(), tmp_path / "m.png", generator=generator)
        with pytest.raises(InputError, match="^mask not found: "):
            extract_garment(tmp_path / "p.jpg", tmp_path / "nomask.png", generator=generator)
        with pytest.raises(InputError, match="^mask .* is a folder: give an image file"):
            extract_garment(tmp_path / "p.jpg", tmp_path, generator=generator)
        with pytest.raises(TypeError, match=r"^a mask is a path, .* not ndarray; .*fromarray\(mask\) \(uint8"):
            extract_garment(tmp_path / "p.jpg", np.zeros((256, 192), np.uint8), generator=generator)
    with pytest.raises(InputError, match="^garment not found: "):
        dress(tmp_path / "p.jpg", tmp_path / "no-garment.png")


def test_sizes_and_sessions_of_another_kind_raise_what_to_give(tiny_model_path):
    """Until the 55th stop: ``output_size=True`` gave a 1x1 garment (a bool is an int), 256.5 a
    TypeError from a format string, a model's path as ``generator=`` an AttributeError, a
    segmenter's session there onnxruntime's input names, and ``dress([], [])`` numpy's."""
    from clothes_extractor import dress

    good, mask = person_photo(1)
    with new_session(tiny_model_path, "cpu") as generator:
        for size in (True, 256.5, (96, 72.0), (96,), "96x72x1"):
            with pytest.raises(ValueError, match="output size must be"):
                extract_garment(good, mask, generator=generator, output_size=size)
        for size in ((np.int64(96), 72), [96, 72], np.int32(96)):  # numpy's integers and a list are whole numbers
            assert extract_garment(good, mask, generator=generator, output_size=size).size == (72, 96)
    assert extract_garment(good, mask, generator=str(tiny_model_path)).size == (TINY_SIZE[1], TINY_SIZE[0])
    with pytest.raises(TypeError, match=r"^generator= takes a session \(new_session\) or a model file's path, not int"):
        extract_garment(good, mask, generator=5)
    with new_session("tryon", "cpu") as tryon:
        with pytest.raises(ModelError, match="is a tryon model; a generator is needed here"):
            extract_garment(good, mask, generator=tryon)
        with pytest.raises(ModelError, match="is a tryon model; a segmenter is needed here"):
            extract_garment(good, generator=tiny_model_path, segmenter=tryon)
        with pytest.raises(TypeError, match="^parser= takes a session"):
            dress(good, good, tryon=tryon, parser=object())
        with pytest.raises(ModelError, match="is a generator model; a tryon is needed here"):
            dress(good, good, tryon=tiny_model_path, parser=tryon)
    assert extract_garment([], generator=5) == [] and dress([], []) == []  # nothing to do: no model opened


def test_a_mask_given_as_an_image(tiny_model_path):
    photo, mask = person_photo(3)
    with new_session(tiny_model_path, "cpu") as generator:
        garment = extract_garment(photo, mask, generator=generator)
        # images in modes a PNG cannot hold (a print shop's CMYK JPEG, opened with Pillow) are
        # taken as their files are: "cannot write mode CMYK as PNG" (an OSError) before
        cmyk = io.BytesIO()
        photo.convert("CMYK").save(cmyk, "JPEG", quality=100)
        from_cmyk = extract_garment(Image.open(cmyk), mask.convert("F"), generator=generator)
        from_file = extract_garment(cmyk.getvalue(), mask, generator=generator)
    assert garment.size == (TINY_SIZE[1], TINY_SIZE[0])
    assert np.array_equal(np.asarray(from_cmyk), np.asarray(from_file))


def readme_python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API") :]
    section = section[: section.index("\n## ", 5)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_python_snippet_runs_as_written(tmp_path):
    blocks = readme_python_blocks()
    assert blocks, "the README has no Python API example"
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    for block in blocks:
        done = subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{block}\n{done.stderr[-2000:]}"
    assert (tmp_path / "garment.png").is_file()
    assert sorted(p.name for p in (tmp_path / "garments").iterdir()) == [f"figure-{i}.png" for i in range(1, 7)]
    with Image.open(tmp_path / "garment.png") as image:
        assert image.size[0] >= 192
    for name in ("dressed.png", "dressed-3.png"):  # stage two, on figure-6's own 192x256
        with Image.open(tmp_path / name) as image:
            assert image.size == (192, 256)
    dressed = sorted(p.name for p in (tmp_path / "dressed").iterdir())  # dress_folder's pairs
    assert dressed == ["figure-5__figure-3.png", "figure-6__figure-3.png"]
    assert sorted(p.name for p in (tmp_path / "feed-garments").iterdir()) == ["SKU-2.png", "figure-1.png"]


def test_extract_garment_needs_no_torch():
    code = (
        "import sys; from clothes_extractor import extract_garment;"
        "g = extract_garment('examples/photos/figure-1.jpg', output_size='model');"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx')]; print(g.size)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(192, 256)"
