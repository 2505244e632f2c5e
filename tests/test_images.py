"""Tests of painterly.images: loading, conversion, tensors, resizing, atomic saving."""

from __future__ import annotations

import io
import json
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from painterly import imaging as images
from painterly.errors import ImageError, InvalidOption, OutputError


# --- helpers -------------------------------------------------------------------------------
def one_line_naming(excinfo, path) -> str:
    """Assert the error message is one line and names `path`; return it."""
    msg = str(excinfo.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    assert str(path) in msg
    return msg


def noise(w=64, h=48, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def png_header_only(path: Path, w: int, h: int) -> Path:
    """A PNG whose IHDR claims w x h but whose data is a few bytes (decoding would fail)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def pixels(img: Image.Image) -> list:
    """All RGB pixels, row by row, as tuples of ints."""
    return [tuple(int(v) for v in px) for px in np.asarray(img).reshape(-1, 3)]


# --- mode conversion -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: Image.new("L", (4, 3), 77), (77, 77, 77)),
        (lambda: Image.new("1", (4, 3), 1), (255, 255, 255)),
        (lambda: Image.new("1", (4, 3), 0), (0, 0, 0)),
        (lambda: Image.new("RGB", (4, 3), (10, 200, 30)), (10, 200, 30)),
        (lambda: Image.new("RGBA", (4, 3), (10, 20, 30, 0)), (255, 255, 255)),  # transparent -> white
        (lambda: Image.new("RGBA", (4, 3), (10, 20, 30, 255)), (10, 20, 30)),
        (lambda: Image.new("RGBA", (4, 3), (0, 0, 0, 128)), (127, 127, 127)),  # half black on white
        (lambda: Image.new("LA", (4, 3), (0, 0)), (255, 255, 255)),
        (lambda: Image.new("LA", (4, 3), (90, 255)), (90, 90, 90)),
        (lambda: Image.new("CMYK", (4, 3), (0, 0, 0, 0)), (255, 255, 255)),
        (lambda: Image.new("CMYK", (4, 3), (0, 255, 255, 0)), (255, 0, 0)),
        (lambda: Image.new("CMYK", (4, 3), (0, 0, 0, 255)), (0, 0, 0)),
    ],
)
def test_modes_convert_to_rgb_with_right_colours(make, expected):
    out = images.load_image(make())
    assert out.mode == "RGB" and out.size == (4, 3)
    assert np.all(np.asarray(out) == np.array(expected, dtype=np.uint8))


def test_palette_and_palette_transparency():
    p = Image.new("P", (3, 1))
    p.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    p.putdata([0, 1, 2])
    assert pixels(images.load_image(p)) == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    p.info["transparency"] = 1  # index 1 is transparent
    assert pixels(images.load_image(p)) == [(255, 0, 0), (255, 255, 255), (0, 0, 255)]


def test_palette_transparency_survives_a_png_file(tmp_path):
    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 0, 200, 100, 50] + [0] * (256 * 3 - 6))
    p.putdata([0, 1])
    p.save(tmp_path / "p.png", transparency=0)
    assert pixels(images.load_image(tmp_path / "p.png")) == [(255, 255, 255), (200, 100, 50)]


def test_rgba_file_composited_on_white(tmp_path):
    a = np.zeros((2, 2, 4), np.uint8)
    a[0, 0] = (0, 0, 255, 255)  # opaque blue; the rest transparent black
    Image.fromarray(a).save(tmp_path / "a.png")
    out = np.asarray(images.load_image(tmp_path / "a.png"))
    assert tuple(out[0, 0]) == (0, 0, 255)
    assert tuple(out[1, 1]) == (255, 255, 255)


def test_i16_full_range_gradient_maps_to_0_255(tmp_path):
    grad = (np.arange(256, dtype=np.uint16) * 257).reshape(1, 256).repeat(2, axis=0)  # 0..65535
    src = Image.fromarray(grad)
    assert src.mode == "I;16"
    expected = np.arange(256, dtype=np.uint8)
    out = np.asarray(images.load_image(src))
    assert out.shape == (2, 256, 3)
    assert np.array_equal(out[0, :, 0], expected) and np.array_equal(out[..., 1], out[..., 2])
    src.save(tmp_path / "g16.png")  # a real 16-bit PNG on disk
    assert np.array_equal(np.asarray(images.load_image(tmp_path / "g16.png"))[1, :, 1], expected)


def test_i16_is_scaled_not_clipped():
    # Pillow's own convert("L") clips 16-bit values at 255; ours must not.
    src = Image.fromarray(np.array([[1000, 32896, 65535]], dtype=np.uint16))
    assert list(np.asarray(images.load_image(src))[0, :, 0]) == [4, 128, 255]


def test_i_mode_16bit_data_and_wide_range():
    i16 = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.int32))
    assert i16.mode == "I"
    assert list(np.asarray(images.load_image(i16))[0, :, 0]) == [0, 128, 255]
    wide = Image.fromarray(np.array([[-100000, 0, 100000]], dtype=np.int32))  # data's own range
    assert list(np.asarray(images.load_image(wide))[0, :, 0]) == [0, 128, 255]
    small = Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32))  # already 8-bit values
    assert list(np.asarray(images.load_image(small))[0, :, 0]) == [0, 100, 255]


def test_f_mode_unit_range_and_arbitrary_range():
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert unit.mode == "F"
    assert list(np.asarray(images.load_image(unit))[0, :, 0]) == [0, 128, 255]
    neg = Image.fromarray(np.array([[-2.0, 0.0, 2.0]], dtype=np.float32))
    assert list(np.asarray(images.load_image(neg))[0, :, 0]) == [0, 128, 255]


def test_load_does_not_modify_the_given_image():
    src = Image.new("RGBA", (2, 2), (1, 2, 3, 0))
    images.load_image(src)
    assert src.mode == "RGBA" and src.getpixel((0, 0)) == (1, 2, 3, 0)


# --- EXIF orientation ----------------------------------------------------------------------
def _red_left_blue_right(w=40, h=20) -> Image.Image:
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = (255, 0, 0)
    a[:, w // 2 :] = (0, 0, 255)
    return Image.fromarray(a)


@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_exif_orientation_6_rotates_clockwise(tmp_path, ext):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / f"o.{ext}"
    _red_left_blue_right().save(path, exif=exif.tobytes())
    out = images.load_image(path)
    assert out.size == (20, 40)  # portrait now
    top, bottom = np.asarray(out)[5, 10].astype(int), np.asarray(out)[35, 10].astype(int)
    assert top[0] > 200 and top[2] < 50  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 50
    assert "exif" not in out.info


def test_no_exif_keeps_orientation(tmp_path):
    _red_left_blue_right().save(tmp_path / "n.png")
    assert images.load_image(tmp_path / "n.png").size == (40, 20)


# --- pixel limit ---------------------------------------------------------------------------
def test_pixel_limit_refused_with_limit_in_message(tmp_path):
    path = tmp_path / "big.png"
    noise(10, 10).save(path)
    with pytest.raises(ImageError) as ei:
        images.load_image(path, max_pixels=99)
    msg = one_line_naming(ei, path)
    assert "99" in msg and "10x10" in msg
    assert images.load_image(path, max_pixels=100).size == (10, 10)  # the limit is inclusive


def test_pixel_limit_checked_before_decoding(tmp_path, monkeypatch):
    path = png_header_only(tmp_path / "huge.png", 5000, 5000)  # 25 Mpx claimed, no real data

    def no_decoding(self, *a, **k):
        raise AssertionError("decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageError) as ei:
        images.load_image(path, max_pixels=1_000_000)
    assert "1,000,000" in one_line_naming(ei, path)


def test_pillow_bomb_error_becomes_image_error(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses above 2000 pixels
    path = tmp_path / "bomb.png"
    noise(50, 50).save(path)  # 2500 pixels
    with pytest.raises(ImageError) as ei:
        images.load_image(path, max_pixels=1_000_000)
    assert "pixels" in one_line_naming(ei, path)


def test_pillow_bomb_warning_is_silenced_under_our_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow warns above 1000 pixels
    path = tmp_path / "warn.png"
    noise(40, 40).save(path)  # 1600 pixels: Pillow warns, our limit allows
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert images.load_image(path).size == (40, 40)


def test_header_only_oversized_default_limit(tmp_path):
    path = png_header_only(tmp_path / "bomb.png", 20000, 20000)  # 400 Mpx: over every limit
    with pytest.raises(ImageError) as ei:
        images.load_image(path)
    assert "100,000,000" in one_line_naming(ei, path)


# --- unreadable inputs ---------------------------------------------------------------------
def test_missing_file(tmp_path):
    path = tmp_path / "nope.png"
    with pytest.raises(ImageError) as ei:
        images.load_image(path)
    assert "no such file" in one_line_naming(ei, path)


def test_directory(tmp_path):
    with pytest.raises(ImageError) as ei:
        images.load_image(tmp_path)
    assert "directory" in one_line_naming(ei, tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as ei:
        images.load_image(str(path))
    assert "empty" in one_line_naming(ei, path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\nsecond line\n")
    with pytest.raises(ImageError) as ei:
        images.load_image(path)
    assert "not an image" in one_line_naming(ei, path)


@pytest.mark.parametrize("fmt, ext", [("PNG", "png"), ("JPEG", "jpg")])
def test_truncated_file(tmp_path, fmt, ext, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)
    buf = io.BytesIO()
    noise(128, 96).save(buf, format=fmt)
    data = buf.getvalue()
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as ei:
        images.load_image(path)
    one_line_naming(ei, path)
    assert ei.value.__cause__ is None and ei.value.__suppress_context__  # no Pillow traceback


def test_wrong_type():
    with pytest.raises(TypeError):
        images.load_image(42)


def test_path_with_newline_stays_one_line(tmp_path):
    path = tmp_path / "a\nb.png"
    with pytest.raises(ImageError) as ei:
        images.load_image(path)
    assert "\n" not in str(ei.value) and "a\\nb.png" in str(ei.value)


# --- tensors -------------------------------------------------------------------------------
def test_to_tensor_shape_range_and_exact_round_trip():
    img = noise(33, 17)
    t = images.to_tensor(img)
    assert t.shape == (1, 3, 17, 33) and t.dtype == torch.float32
    a = np.asarray(img)
    assert (
        float(t.min()) == a.min() / 255.0 and float(t.max()) == a.max() / 255.0
    )  # scaled by 1/255, not shifted
    assert torch.isclose(t[0, :, 5, 7], torch.tensor(img.getpixel((7, 5))) / 255.0).all()
    back = images.to_pil(t)
    assert back.mode == "RGB" and np.array_equal(np.asarray(back), np.asarray(img))
    assert np.array_equal(np.asarray(images.to_pil(t[0])), np.asarray(img))  # (3, H, W)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_to_pil_any_float_dtype(dtype):
    img = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(1, 256).repeat(3, 0)[..., None].repeat(3, 2))
    t = images.to_tensor(img).to(dtype)
    got = np.asarray(images.to_pil(t)).astype(int)
    assert np.abs(got - np.asarray(img).astype(int)).max() <= (1 if dtype != torch.float64 else 0)


def test_to_pil_clamps_rounds_and_handles_nan():
    t = torch.tensor([-0.5, 1.7, 0.5, float("nan"), 0.3 / 255, 0.6 / 255]).view(1, 1, 6).repeat(3, 1, 1)
    row = np.asarray(images.to_pil(t.requires_grad_()))[0, :, 0]
    assert list(row) == [0, 255, 128, 0, 0, 1]


def test_to_pil_rejects_bad_shape():
    with pytest.raises(ValueError):
        images.to_pil(torch.zeros(1, 4, 2, 2))


def test_to_tensor_converts_other_modes():
    t = images.to_tensor(Image.new("RGBA", (2, 2), (0, 0, 0, 0)))
    assert t.shape == (1, 3, 2, 2) and bool((t == 1.0).all())


# --- resizing ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "size, long_side, expected",
    [
        ((400, 300), 200, (200, 150)),
        ((300, 400), 200, (150, 200)),
        ((1000, 1), 10, (10, 1)),  # the short side never drops below one pixel
        ((3, 1000), 100, (1, 100)),  # 0.3 -> 1
        ((1000, 5), 100, (100, 1)),  # 0.5 rounds up to 1
        ((200, 300), 100, (67, 100)),  # 66.67 -> 67
        ((10, 10), 10, (10, 10)),
        ((100, 50), 300, (300, 150)),  # enlarging works too
    ],
)
def test_resize_long_side(size, long_side, expected):
    out = images.resize_long_side(Image.new("RGB", size, (9, 8, 7)), long_side)
    assert out.size == expected and out.getpixel((0, 0)) == (9, 8, 7)


def test_resize_long_side_rejects_bad_sizes():
    for bad in (0, -5, 2.5):
        with pytest.raises(InvalidOption):
            images.resize_long_side(Image.new("RGB", (4, 4)), bad)


def test_fit_to():
    img = Image.new("RGB", (40, 20), (1, 2, 3))
    out = images.fit_to(img, (7, 9))
    assert out.size == (7, 9) and out.getpixel((3, 3)) == (1, 2, 3)
    same = images.fit_to(img, (40, 20))
    assert same.size == (40, 20) and same is not img
    with pytest.raises(InvalidOption):
        images.fit_to(img, (0, 5))


# --- saving --------------------------------------------------------------------------------
RECIPE = {
    "content": "cat.jpg",
    "style": ["starry night.jpg"],
    "size": 512,
    "style_weight": 1e3,
    "layers": ["conv1_1", "conv5_1"],
    "note": "ünïcode ✓",
}


@pytest.mark.parametrize("name", ["out.png", "out.PNG", "out.jpg", "out.JPEG", "out.jpeg"])
def test_save_format_by_extension(tmp_path, name):
    path = images.save_image(noise(), tmp_path / name)
    assert path == tmp_path / name
    with Image.open(path) as im:
        assert im.format == ("PNG" if name.lower().endswith("png") else "JPEG")
        assert im.size == (64, 48)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary left behind


def test_png_is_lossless_and_jpeg_quality_high(tmp_path):
    img = noise()
    images.save_image(img, tmp_path / "a.png")
    assert np.array_equal(np.asarray(images.load_image(tmp_path / "a.png")), np.asarray(img))
    smooth = images.resize_long_side(noise(8, 6), 64)
    images.save_image(smooth, tmp_path / "a.jpg")
    err = np.abs(
        np.asarray(images.load_image(tmp_path / "a.jpg")).astype(int) - np.asarray(smooth).astype(int)
    )
    assert err.mean() < 3


def test_save_tensor(tmp_path):
    img = noise(8, 4)
    images.save_image(images.to_tensor(img), tmp_path / "t.png")
    assert np.array_equal(np.asarray(images.load_image(tmp_path / "t.png")), np.asarray(img))


@pytest.mark.parametrize("name", ["out.gif", "out.webp", "out", "out.png.bak"])
def test_bad_extension(tmp_path, name):
    with pytest.raises(OutputError) as ei:
        images.save_image(noise(), tmp_path / name)
    msg = one_line_naming(ei, tmp_path / name)
    assert ".png" in msg and ".jpg" in msg and ".jpeg" in msg
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ext", ["png", "jpg", "jpeg"])
def test_recipe_round_trip(tmp_path, ext):
    path = images.save_image(noise(), tmp_path / f"r.{ext}", recipe=RECIPE)
    assert images.read_recipe(path) == RECIPE


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_no_recipe_reads_none(tmp_path, ext):
    path = images.save_image(noise(), tmp_path / f"r.{ext}")
    assert images.read_recipe(path) is None


def test_foreign_jpeg_comment_is_not_a_recipe_and_not_carried_over(tmp_path):
    src = tmp_path / "camera.jpg"
    noise().save(src, comment=b"made by some camera")
    assert images.read_recipe(src) is None
    img = Image.open(src)
    img.load()
    images.save_image(img, tmp_path / "copy.jpg")
    with Image.open(tmp_path / "copy.jpg") as im:
        assert "comment" not in im.info


def test_read_recipe_errors(tmp_path):
    with pytest.raises(ImageError) as ei:
        images.read_recipe(tmp_path / "missing.png")
    one_line_naming(ei, tmp_path / "missing.png")
    text = tmp_path / "t.png"
    text.write_text("hello")
    with pytest.raises(ImageError) as ei:
        images.read_recipe(text)
    one_line_naming(ei, text)
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("painterly", "{not json")
    bad = tmp_path / "bad.png"
    noise().save(bad, pnginfo=info)
    with pytest.raises(ImageError) as ei:
        images.read_recipe(bad)
    one_line_naming(ei, bad)


def test_save_overwrites_by_default_and_refuses_without_overwrite(tmp_path):
    path = tmp_path / "o.png"
    images.save_image(Image.new("RGB", (2, 2), (1, 1, 1)), path)
    images.save_image(Image.new("RGB", (2, 2), (2, 2, 2)), path)
    assert images.load_image(path).getpixel((0, 0)) == (2, 2, 2)
    before = path.read_bytes()
    with pytest.raises(OutputError) as ei:
        images.save_image(Image.new("RGB", (2, 2), (3, 3, 3)), path, overwrite=False)
    one_line_naming(ei, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["o.png"]
    fresh = images.save_image(noise(), tmp_path / "fresh.png", overwrite=False)
    assert fresh.exists()


def _failing_save(self, fp, *args, **kwargs):
    fp.write(b"\x89PNG half of an image")
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch, ext):
    path = tmp_path / f"keep.{ext}"
    images.save_image(noise(seed=1), path)
    before = path.read_bytes()
    monkeypatch.setattr(Image.Image, "save", _failing_save)
    with pytest.raises(OutputError) as ei:
        images.save_image(noise(seed=2), path)
    assert "no space left" in one_line_naming(ei, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # temp file removed


def test_save_is_atomic_when_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / "keep.png"
    images.save_image(noise(seed=1), path)
    before = path.read_bytes()

    def bad_replace(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(images.save.os, "replace", bad_replace)
    with pytest.raises(OutputError) as ei:
        images.save_image(noise(seed=2), path)
    one_line_naming(ei, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


def test_save_cleans_up_on_keyboard_interrupt(tmp_path, monkeypatch):
    def interrupted(self, fp, *a, **k):
        fp.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        images.save_image(noise(), tmp_path / "k.png")
    assert list(tmp_path.iterdir()) == []


def test_saved_file_has_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = images.save_image(noise(), tmp_path / "perm.png")
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644  # not mkstemp's 0o600
    path.chmod(0o640)
    images.save_image(noise(), path)
    assert (path.stat().st_mode & 0o777) == 0o640  # an overwritten file keeps its mode


def test_missing_directory(tmp_path):
    path = tmp_path / "no" / "such" / "out.png"
    with pytest.raises(OutputError) as ei:
        images.save_image(noise(), path)
    assert "does not exist" in one_line_naming(ei, path)


def test_parent_is_a_regular_file(tmp_path):
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "out.png"
    with pytest.raises(OutputError) as ei:
        images.save_image(noise(), path)
    assert "not a directory" in one_line_naming(ei, path)


def test_target_is_a_directory(tmp_path):
    (tmp_path / "d.png").mkdir()
    with pytest.raises(OutputError) as ei:
        images.save_image(noise(), tmp_path / "d.png")
    one_line_naming(ei, tmp_path / "d.png")


@pytest.mark.skipif(  # platform: root, Windows
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root ignores directory permissions",
)
def test_unwritable_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        path = locked / "out.png"
        with pytest.raises(OutputError) as ei:
            images.save_image(noise(), path)
        assert "not writable" in one_line_naming(ei, path)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_unwritable_directory_reported_even_if_access_check_passes(tmp_path, monkeypatch):
    # Simulates a directory where creating the temp file fails (works when run as root too).
    monkeypatch.setattr(images.save.os, "access", lambda *a, **k: True)

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(images.save.tempfile, "mkstemp", denied)
    path = tmp_path / "out.png"
    with pytest.raises(OutputError) as ei:
        images.save_image(noise(), path)
    assert "permission denied" in one_line_naming(ei, path)


def test_unserialisable_recipe_is_stringified(tmp_path):
    path = images.save_image(noise(), tmp_path / "p.png", recipe={"path": Path("a/b.jpg")})
    assert images.read_recipe(path) == {"path": "a/b.jpg"}


def test_recipe_is_json_in_png_text_chunk(tmp_path):
    path = images.save_image(noise(), tmp_path / "p.png", recipe={"a": 1})
    with Image.open(path) as im:
        assert json.loads(im.info["painterly"]) == {"a": 1}


def test_recipe_written_before_the_rename_is_read(tmp_path):
    # Pictures made while the project was called neural-style carry their recipe under that key.
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("neural-style", json.dumps({"job": "transfer", "options": {"size": 64}}), zip=True)
    old = tmp_path / "old.png"
    noise().save(old, pnginfo=info)
    assert images.read_recipe(old) == {"job": "transfer", "options": {"size": 64}}
    bad_info = PngImagePlugin.PngInfo()
    bad_info.add_text("neural-style", "[1, 2")
    bad = tmp_path / "bad_old.png"
    noise().save(bad, pnginfo=bad_info)
    with pytest.raises(ImageError, match="'neural-style' chunk"):
        images.read_recipe(bad)


# --- numbered paths ------------------------------------------------------------------------
def test_numbered_path(tmp_path):
    assert images.numbered_path("out.png", 12) == Path("out_0012.png")
    assert images.numbered_path(tmp_path / "a.b.jpg", 0) == tmp_path / "a.b_0000.jpg"
    assert images.numbered_path("x/out.png", 123456) == Path("x/out_123456.png")
    assert images.numbered_path("out_0012.png", 12) != Path("out_0012.png")
    with pytest.raises(ValueError):
        images.numbered_path("out.png", -1)


# --- colour management: inputs converted to sRGB, outputs tagged sRGB ---------------------
@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_adobe_rgb_photo_is_converted_to_srgb(tmp_path, ext):
    from icc import matrix_profile

    im = Image.new("RGB", (8, 4), (100, 150, 100))
    im.paste((128, 128, 128), (4, 0, 8, 4))
    tagged, plain = tmp_path / f"adobe{ext}", tmp_path / f"plain{ext}"
    opts = {"quality": 100, "subsampling": 0} if ext == ".jpg" else {}
    im.save(tagged, icc_profile=matrix_profile(), **opts)
    im.save(plain, **opts)
    green, grey = np.asarray(images.load_image(tagged))[0, [0, 7]].astype(int)
    # The same numbers mean a more saturated green in Adobe RGB: in sRGB the red drops to
    # about 66 (LittleCMS, perceptual intent); neutral grey stays neutral.
    assert abs(green - (66, 151, 97)).max() <= 2, green
    assert grey.max() - grey.min() <= 1 and abs(grey[0] - 129) <= 2
    assert abs(np.asarray(images.load_image(plain))[0, 0].astype(int) - (100, 150, 100)).max() <= 2


def test_srgb_and_unreadable_profiles_leave_pixels_alone(tmp_path):
    from PIL import ImageCms

    im = Image.new("RGB", (4, 4), (10, 200, 60))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for name, icc in [("srgb.png", srgb), ("broken.png", b"not a profile at all" * 10)]:
        im.save(tmp_path / name, icc_profile=icc)
        assert np.asarray(images.load_image(tmp_path / name))[0, 0].tolist() == [10, 200, 60]


def test_grey_pixels_under_an_rgb_profile_stay_grey(tmp_path):
    from icc import matrix_profile

    Image.new("L", (4, 4), 77).save(tmp_path / "grey.png", icc_profile=matrix_profile())
    r, g, b = np.asarray(images.load_image(tmp_path / "grey.png"))[0, 0].tolist()
    assert r == g == b and abs(r - 77) <= 2  # gamma 2.2 -> sRGB's curve moves it by about 1


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_outputs_are_tagged_srgb(tmp_path, ext):
    import io as _io

    from PIL import ImageCms

    path = images.save_image(Image.new("RGB", (4, 4), (1, 2, 3)), tmp_path / f"o{ext}", recipe={"a": 1})
    with Image.open(path) as im:
        profile = ImageCms.ImageCmsProfile(_io.BytesIO(im.info["icc_profile"]))
    assert "sRGB" in profile.profile.profile_description
    assert images.read_recipe(path) == {"a": 1}
