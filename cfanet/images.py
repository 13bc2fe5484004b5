"""Image files <-> float32 RGB tensors in [0, 1], shaped (N, 3, H, W).

Reading accepts 8- and 16-bit PNG, TIFF, JPEG and BMP (anything OpenCV decodes; the format is
told from the file's content, not its suffix, so a JPEG named `.png` reads as the JPEG it is).
Grayscale is expanded to RGB; an alpha channel is dropped with a warning; float TIFFs are read as
stored, and refused when they hold NaN or infinite values. Truncated PNG and JPEG files are refused
and named as truncated. Writing quantises with round-half-up (`floor(255 x + 0.5)` after clipping to
[0, 1]), which is MATLAB's `im2uint8` for values in [0, 1]. Every failure raises `ImageFileError`
naming the file (OpenCV's own warnings on stderr are silenced while decoding).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from cfanet.atomic import write_bytes_atomic

READABLE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


class ImageFileError(OSError):
    """An image file is missing, unreadable, corrupt or of an unsupported kind; names the path."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@contextlib.contextmanager
def _quiet_opencv():
    """Silence OpenCV's log lines (libpng/libjpeg complaints) while decoding: failures are reported
    once, by `ImageFileError`, naming the file."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


def _undecodable_reason(data: np.ndarray) -> str:
    """Why OpenCV could not decode `data`: a truncated PNG or JPEG is named as such."""
    head, tail = data[:8].tobytes(), data[-4096:].tobytes()
    if head.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" not in tail:
        return "truncated PNG (no IEND chunk): the file was cut short"
    if head.startswith(b"\xff\xd8"):
        whole = data.tobytes()
        if whole.rfind(b"\xff\xd9") < whole.rfind(b"\xff\xda"):
            return "truncated JPEG (no end-of-image marker after the last scan): the file was cut short"
    return "not a decodable image (corrupt, or not an image in a supported format)"


def read_image_array(path: str | os.PathLike) -> np.ndarray:
    """Decode a file to an RGB numpy array (H, W, 3) of its own integer dtype (uint8 or uint16).

    Float TIFFs are returned as float32 as stored (NaN or infinite values are an error). Grayscale
    becomes three equal channels; alpha is dropped with a `UserWarning`.
    """
    path = Path(path)
    try:
        is_file, exists = path.is_file(), path.exists()
    except OSError as exc:  # e.g. a parent folder without search permission
        raise ImageFileError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if not is_file:
        raise ImageFileError(path, "no such file" if not exists else "not a regular file")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:  # permissions, I/O errors
        raise ImageFileError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if data.size == 0:
        raise ImageFileError(path, "file is empty")
    with _quiet_opencv():
        array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageFileError(path, _undecodable_reason(data))
    if array.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageFileError(path, f"unsupported sample type {array.dtype}; expected 8-bit, 16-bit or float32")
    if array.size == 0:
        raise ImageFileError(path, "image has no pixels")
    if array.dtype == np.float32 and not np.isfinite(array).all():
        bad = int(array.size - np.isfinite(array).sum())
        raise ImageFileError(path, f"float image holds {bad} NaN or infinite value(s); expected finite values "
                                   f"in [0, 1]")
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    channels = array.shape[2]
    if channels == 1:
        return np.repeat(array, 3, axis=2)
    if channels == 2:  # gray + alpha
        warnings.warn(f"{path}: alpha channel dropped", UserWarning, stacklevel=2)
        return np.repeat(array[:, :, :1], 3, axis=2)
    if channels == 4:
        warnings.warn(f"{path}: alpha channel dropped", UserWarning, stacklevel=2)
        array = array[:, :, :3]
    elif channels != 3:
        raise ImageFileError(path, f"unsupported channel count {channels}")
    return np.ascontiguousarray(array[:, :, ::-1])  # OpenCV decodes BGR


def array_to_tensor(array: np.ndarray) -> torch.Tensor:
    """RGB array (H, W, 3) uint8/uint16/float -> float32 tensor (1, 3, H, W) in [0, 1]."""
    if array.dtype == np.uint8:
        scaled = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        scaled = array.astype(np.float32) / 65535.0
    else:
        scaled = array.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1)))[None]


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as a float32 RGB tensor (1, 3, H, W) in [0, 1]."""
    return array_to_tensor(read_image_array(path))


def quantize(x: torch.Tensor | np.ndarray, bits: int = 8) -> np.ndarray:
    """[0, 1] values -> unsigned integers with round-half-up, clipped; same shape.

    Returns uint8 for `bits=8`, uint16 for `bits=16`. NaN becomes 0, as MATLAB's integer cast does.
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    peak = 255.0 if bits == 8 else 65535.0
    values = np.floor(np.clip(np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0), 0.0, 1.0) * peak + 0.5)
    return values.astype(np.uint8 if bits == 8 else np.uint16)


def quantize_tensor(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Round a [0, 1] tensor to the nearest representable `bits`-bit level; float32 in [0, 1].

    This is what saving to an 8-bit file and reading it back does.
    """
    peak = 255.0 if bits == 8 else 65535.0
    return torch.from_numpy(quantize(x, bits).astype(np.float32) / peak).to(x.device)


def _as_hwc(image: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"write_image takes one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an RGB image shaped (3, H, W) or (1, 3, H, W), got {image.shape}")
    return image.transpose(1, 2, 0)


def write_image(path: str | os.PathLike, image: torch.Tensor | np.ndarray, bits: int = 8) -> Path:
    """Write a float RGB image in [0, 1] ((3, H, W) or (1, 3, H, W)) to `path`, atomically.

    The format comes from the suffix; `bits=16` needs PNG or TIFF. The file appears complete or
    not at all (written to a temporary file in the same folder, then renamed).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READABLE_SUFFIXES:
        raise ImageFileError(path, f"unsupported image suffix {path.suffix!r}; use one of {READABLE_SUFFIXES}")
    if bits == 16 and suffix not in (".png", ".tif", ".tiff"):
        raise ImageFileError(path, "16-bit output needs PNG or TIFF")
    pixels = quantize(_as_hwc(image), bits)[:, :, ::-1]  # RGB -> BGR for OpenCV
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(suffix, np.ascontiguousarray(pixels), params)
    if not ok:
        raise ImageFileError(path, "encoding failed")
    return write_bytes_atomic(path, encoded.tobytes())
