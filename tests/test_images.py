"""Image files <-> float RGB tensors: bit depths, formats, channel layouts and bad files."""

import warnings

import cv2
import numpy as np
import pytest
import torch

from cfanet.images import ImageFileError, quantize, read_image, read_image_array, write_image


def _rgb8(h=7, w=9, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_8bit_lossless_roundtrip(tmp_path, suffix):
    rgb = _rgb8()
    path = tmp_path / f"x{suffix}"
    cv2.imwrite(str(path), rgb[:, :, ::-1])  # written independently, as BGR
    tensor = read_image(path)
    assert tensor.shape == (1, 3, 7, 9) and tensor.dtype == torch.float32
    assert torch.equal(tensor[0, :, 2, 3], torch.from_numpy(rgb[2, 3].astype(np.float32) / 255))  # RGB order
    out = write_image(tmp_path / f"y{suffix}", tensor)
    assert np.array_equal(read_image_array(out), rgb)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_read_and_write(tmp_path, suffix):
    rgb16 = np.random.default_rng(1).integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    path = tmp_path / f"x{suffix}"
    cv2.imwrite(str(path), rgb16[:, :, ::-1])
    tensor = read_image(path)
    assert torch.allclose(tensor[0].permute(1, 2, 0), torch.from_numpy(rgb16 / 65535.0).float(), atol=1e-7)
    out = write_image(tmp_path / f"y{suffix}", tensor, bits=16)
    assert np.array_equal(read_image_array(out), rgb16)


def test_jpeg_reads_close_to_source(tmp_path):
    smooth = np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (16, 1, 3))
    path = tmp_path / "x.jpg"
    cv2.imwrite(str(path), smooth, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert np.abs(read_image_array(path).astype(int) - smooth).max() <= 3


def test_grayscale_expands_to_rgb(tmp_path):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    tensor = read_image(tmp_path / "g.png")
    assert tensor.shape == (1, 3, 4, 5)
    assert torch.equal(tensor[0, 0], tensor[0, 2]) and tensor[0, 1, 3, 4] == pytest.approx(190 / 255)


def test_alpha_dropped_with_warning(tmp_path):
    rgba = np.dstack([_rgb8(), np.full((7, 9), 17, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    with pytest.warns(UserWarning, match="alpha"):
        arr = read_image_array(tmp_path / "a.png")
    assert np.array_equal(arr, rgba[:, :, [2, 1, 0]])


def test_missing_file_names_path(tmp_path):
    with pytest.raises(ImageFileError, match="nope.png.*no such file"):
        read_image(tmp_path / "nope.png")


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n garbage", b"not an image at all"])
def test_corrupt_file_names_path(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(ImageFileError) as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_truncated_png_is_an_error(tmp_path):
    path = tmp_path / "t.png"
    cv2.imwrite(str(path), _rgb8(64, 64))
    path.write_bytes(path.read_bytes()[:200])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ImageFileError, match="t.png"):
            read_image(path)


def test_quantize_rounds_half_up_and_clips():
    values = torch.tensor([-0.2, 0.0, 0.5 / 255, 1.5 / 255, 2.4999 / 255, 254.5 / 255, 1.0, 1.7, float("nan")], dtype=torch.float64)
    assert quantize(values).tolist() == [0, 0, 1, 2, 2, 255, 255, 255, 0]
    assert quantize(np.array([0.5]), bits=16).tolist() == [32768]


def test_write_is_atomic_and_checks_arguments(tmp_path):
    target = tmp_path / "sub" / "o.png"
    write_image(target, torch.rand(3, 4, 4))
    assert target.is_file() and [p.name for p in target.parent.iterdir()] == ["o.png"]
    with pytest.raises(ImageFileError, match="16-bit"):
        write_image(tmp_path / "o.jpg", torch.rand(3, 4, 4), bits=16)
    with pytest.raises(ImageFileError, match="suffix"):
        write_image(tmp_path / "o.gif", torch.rand(3, 4, 4))
    with pytest.raises(ValueError, match="batch"):
        write_image(tmp_path / "b.png", torch.rand(2, 3, 4, 4))
