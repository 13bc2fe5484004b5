"""Colour conversions against MATLAB's documented formulas and values."""

import numpy as np
import pytest
import torch

from cfanet.color import rgb2gray, rgb2gray_uint8, rgb2y, rgb2ycbcr, ycbcr2rgb


def test_rgb2ycbcr_matches_matlab_reference_values():
    # MATLAB: rgb2ycbcr(double([1 1 1; 0 0 0; 1 0 0])) reshaped as pixels
    pixels = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 3)
    ycc = rgb2ycbcr(pixels)[0, :, 0].T * 255
    expected = torch.tensor([[235.0, 128.0, 128.0], [16.0, 128.0, 128.0], [81.481, 90.203, 240.0]])
    assert torch.allclose(ycc, expected, atol=1e-4)


def test_ycbcr_inverse_and_y_plane():
    rgb = torch.rand(2, 3, 5, 4, dtype=torch.float64)
    assert torch.allclose(ycbcr2rgb(rgb2ycbcr(rgb)), rgb, atol=1e-12)
    assert rgb2y(rgb).shape == (2, 1, 5, 4)
    assert torch.equal(rgb2y(rgb)[:, 0], rgb2ycbcr(rgb)[:, 0])


def test_numpy_and_torch_agree():
    rgb = np.random.default_rng(0).random((3, 6, 7))
    assert np.allclose(rgb2ycbcr(rgb), rgb2ycbcr(torch.from_numpy(rgb)).numpy())


def test_rgb2gray_uint8_rounds_like_matlab():
    # rgb2gray(uint8([255 0 0])) = 76 (76.228...), ([0 255 0]) = 150 (149.696...), ([0 0 255]) = 29 (29.075...)
    rgb = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128], [255, 255, 255]], np.uint8)
    gray = rgb2gray_uint8(rgb.T.reshape(3, 1, 5))
    assert gray.dtype == np.uint8 and gray[0].tolist() == [76, 150, 29, 128, 255]
    assert rgb2gray(rgb.T.reshape(3, 1, 5).astype(float))[0, 0] == pytest.approx(76.22868542991262)


def test_wrong_channel_count_raises():
    with pytest.raises(ValueError, match="axis -3"):
        rgb2ycbcr(torch.rand(1, 4, 2, 2))
    with pytest.raises(TypeError):
        rgb2gray_uint8(np.zeros((3, 2, 2)))
