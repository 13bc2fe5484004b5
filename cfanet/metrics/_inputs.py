"""Bring the image objects the metrics accept to 8-bit RGB, the form the protocol scores."""

from __future__ import annotations

import sys

import numpy as np

ACCEPTED_RGB = (
    "a float torch tensor or float numpy array shaped (3, H, W) or (N, 3, H, W), RGB in [0, 1] "
    "(quantised to 8 bits), or a uint8 numpy array shaped (H, W, 3) or (N, H, W, 3), RGB channel-last"
)


def is_tensor(obj) -> bool:
    """True for a torch tensor, without importing torch when the caller never did."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def quantize_unit(x) -> np.ndarray:
    """[0, 1] float tensor/array -> uint8 of the same shape (clip, round half up; NaN -> 0)."""
    from cfanet.images import quantize  # pulls in torch and OpenCV; only float inputs need it

    return quantize(x, bits=8)


def as_uint8_rgb(image) -> np.ndarray:
    """Return `image` as a uint8 array (N, 3, H, W), RGB. See `ACCEPTED_RGB` for the forms taken.

    Float input is quantised exactly as `cfanet.images.write_image` saves it, so a score of a
    tensor equals the score of its saved 8-bit PNG.
    """
    if is_tensor(image):
        if not image.is_floating_point():
            raise TypeError(f"tensor input must be float, got {image.dtype}; expected {ACCEPTED_RGB}")
        array = quantize_unit(image)
        channel_first = True
    else:
        array = np.asarray(image)
        if array.dtype == np.uint8:
            channel_first = False
        elif np.issubdtype(array.dtype, np.floating):
            array = quantize_unit(array)
            channel_first = True
        else:
            raise TypeError(f"unsupported dtype {array.dtype}; expected {ACCEPTED_RGB}")
    if channel_first and array.ndim in (3, 4) and array.shape[-3] == 3:
        return array.reshape((-1,) + array.shape[-3:])
    if not channel_first and array.ndim in (3, 4) and array.shape[-1] == 3:
        return np.moveaxis(array, -1, -3).reshape((-1, 3) + array.shape[-3:-1])
    raise ValueError(f"unsupported shape {tuple(array.shape)} for dtype {array.dtype}; expected {ACCEPTED_RGB}")


EIGHT_BIT_TENSOR = (
    "a torch tensor of 8-bit values on the 0..255 scale (not [0, 1]): uint8, or an integer or float "
    "dtype holding integers in 0..255, channel-first RGB"
)


def eight_bit_tensor(x, name: str = "image"):
    """Check that `x` is a tensor of 8-bit values (`EIGHT_BIT_TENSOR`) and return it unchanged.

    The batched metrics take this form so a batch is scored where it lives, without the
    quantisation and host copies of `as_uint8_rgb`. Raises TypeError for a non-tensor or a bool/
    complex tensor, ValueError for values outside 0..255 or not integers (e.g. [0, 1] floats), or NaN.
    """
    if not is_tensor(x):
        raise TypeError(f"{name} must be {EIGHT_BIT_TENSOR}; got {type(x).__name__}")
    import torch

    if x.dtype == torch.uint8:
        return x
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{name} has dtype {x.dtype}; expected {EIGHT_BIT_TENSOR}")
    if x.numel():
        low, high = torch.aminmax(x)
        integral = bool((x == x.floor()).all()) if x.is_floating_point() else True  # NaN fails here
        if not (integral and 0 <= float(low) and float(high) <= 255):
            raise ValueError(f"{name} must hold integers in 0..255 ({EIGHT_BIT_TENSOR}); got values in "
                             f"[{float(low):g}, {float(high):g}]" + ("" if integral else ", not all integers"))
    return x
