"""Image files <-> float32 RGB tensors in [0, 1], shaped (N, 3, H, W).

Reading accepts 8- and 16-bit PNG, TIFF, JPEG and BMP (anything OpenCV decodes; the format is
told from the file's content, not its suffix, so a JPEG named `.png` reads as the JPEG it is).
Grayscale is expanded to RGB; an alpha channel is dropped with a warning; float TIFFs are read as
stored, and refused when they hold NaN or infinite values. Truncated PNG and JPEG files are refused
and named as truncated. Writing quantises with round-half-up (`floor(255 x + 0.5)` after clipping to
[0, 1]), which is MATLAB's `im2uint8` for values in [0, 1]. Every failure raises `ImageFileError`
naming the file; OpenCV's own log lines and the codec libraries' lines (`libpng warning: ...`,
`libpng error: ...`, libjpeg's and libtiff's) are kept off stderr while decoding.

Decompression bombs: before anything is decoded, the size the file's header claims is read (the PNG
IHDR chunk directly, other formats through Pillow's header-only parsers) and an image of more than
`max_image_pixels()` pixels (default `DEFAULT_MAX_IMAGE_PIXELS`, 100 megapixels; the environment
variable `CFANET_MAX_IMAGE_PIXELS` changes it) is refused with an `ImageFileError` naming the file,
its claimed size and the limit. A small crafted PNG that claims 30000x30000 is thus refused in
milliseconds instead of decoding to gigabytes.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from cfanet.atomic import write_bytes_atomic

READABLE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")

# The largest image (width x height) decoded by default: 100 megapixels, four times a 6000x4000
# SICE exposure. Decoded to float32 RGB that is 1.2 GB per copy; the pipelines hold a few copies.
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
MAX_IMAGE_PIXELS_ENV = "CFANET_MAX_IMAGE_PIXELS"


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


# Lines that the codec libraries under OpenCV print on stderr by themselves (not through OpenCV's
# logging): dropped while decoding, since the failure is reported once, by `ImageFileError`.
_CODEC_LINE_PREFIXES = (b"libpng warning:", b"libpng error:", b"Corrupt JPEG data", b"Premature end of JPEG",
                        b"Invalid SOS parameters", b"Unsupported marker", b"TIFFRead", b"TIFFFetch",
                        b"TIFFAdvance", b"TIFFScanline", b"TIFFFillStrip", b"TIFFFillTile", b"TIFFReadDirectory",
                        b"_TIFFVSetField", b"imread_", b"OpenEXR")
_stderr_lock = threading.Lock()
_stderr_state = {"depth": 0, "saved": None, "capture": None}


@contextlib.contextmanager
def _codec_lines_captured():
    """Route file descriptor 2 to a temporary file while the body runs; afterwards, write back every
    captured line except the codec libraries' own (`_CODEC_LINE_PREFIXES`).

    libpng and libjpeg print with `fprintf(stderr, ...)` inside OpenCV, below Python, so only the
    descriptor can be redirected. Nested and concurrent uses share one redirection (the last one out
    restores it), so nothing another thread writes meanwhile is lost, only delayed. Where the
    descriptor cannot be redirected (no fd 2, odd platforms) the body runs unchanged.
    """
    with _stderr_lock:
        state = _stderr_state
        if state["depth"] == 0:
            capture = saved = None
            try:
                if sys.stderr is not None:
                    sys.stderr.flush()
                capture = tempfile.TemporaryFile()
                saved = os.dup(2)
                os.dup2(capture.fileno(), 2)
            except (OSError, ValueError, AttributeError):
                if saved is not None:
                    os.close(saved)
                if capture is not None:
                    capture.close()
                capture = saved = None
            state["capture"], state["saved"] = capture, saved
        state["depth"] += 1
    try:
        yield
    finally:
        with _stderr_lock:
            state["depth"] -= 1
            if state["depth"] == 0 and state["saved"] is not None:
                capture, saved = state["capture"], state["saved"]
                state["capture"] = state["saved"] = None
                try:
                    os.dup2(saved, 2)
                finally:
                    os.close(saved)
                with capture:
                    capture.seek(0)
                    kept = [line for line in capture.read().splitlines(keepends=True)
                            if not line.lstrip().startswith(_CODEC_LINE_PREFIXES)]
                if kept:
                    with contextlib.suppress(OSError):
                        os.write(2, b"".join(kept))


def max_image_pixels() -> int | None:
    """The pixel limit (width x height) for decoding: `$CFANET_MAX_IMAGE_PIXELS` when set, else
    `DEFAULT_MAX_IMAGE_PIXELS` (100 megapixels). `CFANET_MAX_IMAGE_PIXELS=0` (or `none`) lifts this
    limit; OpenCV's own (2^30 pixels, raised with `OPENCV_IO_MAX_IMAGE_PIXELS` set before Python
    starts) still applies. A value that is not a whole number is a `ValueError` naming the variable.
    """
    text = os.environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    if text.lower() in ("0", "none", "unlimited"):
        return None
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"environment variable {MAX_IMAGE_PIXELS_ENV}={text!r}: expected a whole number of "
                         f"pixels (width x height), e.g. {DEFAULT_MAX_IMAGE_PIXELS}, or 0 for no limit")
    return value or None


def header_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """(width, height) that an encoded image's header claims, without decoding any pixels; None when
    the format is not recognised or the header is unreadable (the decoder then says why).

    PNG is read from its IHDR chunk; other formats through Pillow's header parsers, which read only
    the header (and without Pillow's own decompression-bomb check, which would warn or raise).
    """
    head = bytes(data[:64]) if isinstance(data, np.ndarray) else bytes(data[:64])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(head) >= 24 and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            return width, height
        return None
    if head[:4] in (b"II*\0", b"MM\0*"):
        size = _tiff_size(data)  # also covers float TIFFs, which Pillow does not open
        if size is not None:
            return size
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return None
    buffer = io.BytesIO(data.tobytes() if isinstance(data, np.ndarray) else bytes(data))
    try:
        Image.preinit()
        for attempt in (0, 1):
            if attempt:
                Image.init()
            for name in list(Image.ID):
                factory, accept = Image.OPEN.get(name, (None, None))
                if factory is None:
                    continue
                result = accept(head) if accept else True
                if not result or isinstance(result, str):
                    continue
                buffer.seek(0)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        image = factory(buffer, "")
                except Exception:  # noqa: BLE001 - not this format, or a broken header
                    continue
                width, height = image.size
                return int(width), int(height)
    except Exception:  # noqa: BLE001 - Pillow's plugin registry changed: no header check
        return None
    return None


def _tiff_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """ImageWidth and ImageLength of a classic TIFF's first directory; None if unreadable."""
    try:
        order = "<" if bytes(data[:2]) == b"II" else ">"
        (offset,) = struct.unpack(order + "I", bytes(data[4:8]))
        (count,) = struct.unpack(order + "H", bytes(data[offset:offset + 2]))
        found = {}
        for index in range(count):
            start = offset + 2 + 12 * index
            tag, kind, _ = struct.unpack(order + "HHI", bytes(data[start:start + 8]))
            if tag in (256, 257) and kind in (3, 4):
                raw = bytes(data[start + 8:start + 12])
                found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), raw[:2] if kind == 3 else raw)[0]
        return (found[256], found[257]) if len(found) == 2 else None
    except (struct.error, KeyError, ValueError):
        return None


def _check_pixel_limit(path: Path, data: np.ndarray, max_pixels: int | None) -> None:
    if not max_pixels:
        return
    size = header_size(data)
    if size is None:
        return  # a format Pillow does not parse: OpenCV's own limit applies (see `_decode`)
    width, height = size
    if width * height > max_pixels:
        raise ImageFileError(path, f"header claims {width}x{height} pixels ({width * height / 1e6:.1f} megapixels), "
                                   f"over the limit of {max_pixels} pixels ({max_pixels / 1e6:g} megapixels) "
                                   f"that guards against decompression bombs; if the image is genuine, raise the "
                                   f"limit with the environment variable {MAX_IMAGE_PIXELS_ENV} (pixels, 0 for none)")


def _decode(path: Path, data: np.ndarray) -> np.ndarray | None:
    """`cv2.imdecode`, quietly; OpenCV's exceptions (its own pixel limit, allocation failures)
    become `ImageFileError` naming the file."""
    try:
        with _quiet_opencv(), _codec_lines_captured():
            return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        message = " ".join(str(exc).split())
        size = header_size(data)
        claimed = f"header claims {size[0]}x{size[1]} pixels; " if size else ""
        if "MAX_IMAGE_PIXELS" in message or "validateInputImageSize" in message:
            raise ImageFileError(path, f"{claimed}too large for OpenCV's decoder (its limit is 2^30 pixels unless "
                                       f"OPENCV_IO_MAX_IMAGE_PIXELS is set before Python starts)") from exc
        if "memory" in message.lower() or "allocate" in message.lower():
            raise ImageFileError(path, f"{claimed}not enough memory to decode it") from exc
        raise ImageFileError(path, f"not a decodable image (OpenCV: {message})") from exc


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


def read_image_array(path: str | os.PathLike, max_pixels: int | None | str = "env") -> np.ndarray:
    """Decode a file to an RGB numpy array (H, W, 3) of its own integer dtype (uint8 or uint16).

    Float TIFFs are returned as float32 as stored (NaN or infinite values are an error). Grayscale
    becomes three equal channels; alpha is dropped with a `UserWarning`.

    Images whose header claims more than `max_pixels` pixels (width x height) are refused before
    decoding, with an `ImageFileError` naming the file, the claimed size and the limit. The default,
    "env", is `max_image_pixels()`: `$CFANET_MAX_IMAGE_PIXELS`, or 100 megapixels
    (`DEFAULT_MAX_IMAGE_PIXELS`) when unset; None or 0 lifts the limit.
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
    _check_pixel_limit(path, data, max_image_pixels() if max_pixels == "env" else max_pixels)
    array = _decode(path, data)
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
    if array.dtype == np.float32 and (array.min() < 0.0 or array.max() > 1.0):
        outside = int(((array < 0.0) | (array > 1.0)).sum())
        warnings.warn(f"{path}: {outside} float value(s) outside [0, 1] (range {float(array.min()):g} to "
                      f"{float(array.max()):g}) clipped to [0, 1]", UserWarning, stacklevel=2)
        array = np.clip(array, 0.0, 1.0)
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


def read_image(path: str | os.PathLike, max_pixels: int | None | str = "env") -> torch.Tensor:
    """Read an image file as a float32 RGB tensor (1, 3, H, W) in [0, 1].

    `max_pixels` as in `read_image_array` (default: `$CFANET_MAX_IMAGE_PIXELS`, or 100 megapixels).
    """
    return array_to_tensor(read_image_array(path, max_pixels=max_pixels))


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
    try:
        data, _ = encode_image(image, suffix, bits)
    except EncodingError as exc:
        raise ImageFileError(path, str(exc)) from None
    return write_bytes_atomic(path, data)


class EncodingError(ValueError):
    """The encoder refused an image (shape problems are plain ValueErrors)."""


def encode_image(image: torch.Tensor | np.ndarray, suffix: str = ".png", bits: int = 8) -> tuple[bytes, np.ndarray]:
    """A float RGB image in [0, 1] ((3, H, W) or (1, 3, H, W)) as the file bytes `write_image`
    writes for `suffix` (same quantisation, same encoder settings), and its quantised RGB pixels
    (H, W, 3)."""
    pixels = np.ascontiguousarray(quantize(_as_hwc(image), bits))
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(suffix, np.ascontiguousarray(pixels[:, :, ::-1]), params)  # RGB -> BGR for OpenCV
    if not ok:
        raise EncodingError("encoding failed")
    return encoded.tobytes(), pixels


def encode_png(image: torch.Tensor | np.ndarray) -> tuple[bytes, np.ndarray]:
    """`encode_image` as an 8-bit PNG: what the stage cache and the published images store."""
    return encode_image(image, ".png", 8)
