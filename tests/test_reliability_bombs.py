"""Hostile files (issue 15): decompression bombs, the codec libraries' own stderr lines, and random
bytes given as a checkpoint. Each is refused with one `error:` line naming the file, quickly and in
bounded memory.

The bomb is a real, valid PNG: a 30000x30000 RGB image of zeros whose IDAT holds a complete zlib
stream (built from one repeated full-flush deflate segment, so making it takes milliseconds). It is
about 2.6 MB and decodes to 2.7 GB; it must be refused from its header before any decoding, in
under a second, in a process whose address space is capped so that decoding it could not succeed.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cfanet.checkpoint import CheckpointError, read_checkpoint
from cfanet.images import (DEFAULT_MAX_IMAGE_PIXELS, MAX_IMAGE_PIXELS_ENV, ImageFileError, header_size,
                           max_image_pixels, read_image, read_image_array)
from pipelines.cli import main

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------
# crafted files

def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _zeros_zlib(total: int, block: int) -> bytes:
    """A complete zlib stream of `total` zero bytes (`total` a multiple of `block`), made by
    compressing one `block` of zeros after a full flush and repeating that byte-aligned segment."""
    assert total % block == 0
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(block)
    first = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    again = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)  # same state after a full flush
    end = deflate.flush(zlib.Z_FINISH)  # an empty final block
    adler = ((total % 65521) << 16) | 1  # Adler-32 of `total` zero bytes
    return b"\x78\xda" + first + again * (total // block - 1) + end + struct.pack(">I", adler)


def bomb_png(path: Path, width: int = 30000, height: int = 30000, rows_per_block: int = 100) -> Path:
    """A valid 8-bit RGB PNG of zeros, `width` x `height`, a few MB at most."""
    row = 1 + 3 * width  # filter byte + RGB samples
    while height % rows_per_block:
        rows_per_block -= 1
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = _zeros_zlib(row * height, row * rows_per_block)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))
    return path


def header_only_png(path: Path, width: int, height: int) -> Path:
    """A PNG signature and IHDR claiming `width` x `height`, then one short IDAT and IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(1 + 3 * min(width, 1000)))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path


def _image(path: Path, h: int = 48, w: int = 48, seed: int = 0) -> Path:
    array = np.random.default_rng(seed).integers(0, 255, (h, w, 3)).astype(np.uint8)
    assert cv2.imwrite(str(path), array)
    return path


def _cli(*argv: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """`python -m pipelines.cli ...` in a fresh process (stderr at the descriptor level, as a user sees it)."""
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})})


def _single_error_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "libpng" not in result.stderr and "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(autouse=True)
def _default_limit(monkeypatch):
    monkeypatch.delenv(MAX_IMAGE_PIXELS_ENV, raising=False)


# ------------------------------------------------------------------------------------------------
# decompression bombs

def test_the_bomb_builder_makes_valid_pngs(tmp_path):
    """The crafted stream is a real PNG (complete zlib stream, right Adler-32): small ones decode."""
    small = bomb_png(tmp_path / "small.png", 300, 200, rows_per_block=50)
    array = read_image_array(small)
    assert array.shape == (200, 300, 3) and array.dtype == np.uint8 and not array.any()
    big = bomb_png(tmp_path / "bomb.png")
    assert big.stat().st_size < 4_000_000 and header_size(big.read_bytes()) == (30000, 30000)


def test_a_bomb_png_is_refused_from_its_header_fast_under_a_memory_cap(tmp_path):
    bomb = bomb_png(tmp_path / "bomb.png")
    script = textwrap.dedent(f"""
        import json, resource, time
        import numpy as np
        from cfanet.images import ImageFileError, read_image

        def vm_bytes():
            for line in open("/proc/self/status"):
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024

        cap = max(2 << 30, vm_bytes() + (1 << 30))  # 2 GiB, or 1 GiB above what the imports reserved
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        try:  # the cap is real: the decoded bomb (30000 x 30000 x 3 bytes) cannot be allocated
            np.empty(30000 * 30000 * 3, np.uint8)
            capped = False
        except MemoryError:
            capped = True
        start = time.perf_counter()
        try:
            read_image({str(bomb)!r})
            outcome = "decoded"
        except ImageFileError as exc:
            outcome = str(exc)
        except MemoryError as exc:
            outcome = "MemoryError"
        print(json.dumps({{"capped": capped, "seconds": time.perf_counter() - start, "outcome": outcome}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO,
                            env={k: v for k, v in os.environ.items() if k != MAX_IMAGE_PIXELS_ENV})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["capped"], report
    assert report["outcome"].startswith(f"{bomb}: header claims 30000x30000 pixels"), report
    assert f"{DEFAULT_MAX_IMAGE_PIXELS} pixels" in report["outcome"] and MAX_IMAGE_PIXELS_ENV in report["outcome"]
    assert report["seconds"] < 1.0, report
    assert result.stderr.strip() == ""  # nothing from libpng either
    print(f"\nbomb refused in {report['seconds'] * 1e3:.1f} ms under a capped address space: {report['outcome']}")


def test_a_header_claiming_100000x100000_is_named_not_internal(tmp_path):
    huge = header_only_png(tmp_path / "huge.png", 100000, 100000)
    with pytest.raises(ImageFileError, match=r"huge\.png: header claims 100000x100000 pixels .*over the limit"):
        read_image(huge)
    if "OPENCV_IO_MAX_IMAGE_PIXELS" not in os.environ:
        # with our limit lifted, OpenCV's own pixel limit refuses it: also an ImageFileError naming the file
        with pytest.raises(ImageFileError, match=r"huge\.png: header claims 100000x100000 pixels; too large for "
                                                 r"OpenCV's decoder"):
            read_image(huge, max_pixels=None)


@pytest.mark.parametrize("command", ["apply", "score"])
def test_a_bomb_through_the_cli_is_one_error_line(tmp_path, command):
    bomb = bomb_png(tmp_path / "bomb.png")
    other = _image(tmp_path / "x.png")
    out = tmp_path / "out.png"
    if command == "apply":
        argv = ["apply", "MGFF", "--over", bomb, "--under", other, "-o", out]
    else:
        argv = ["score", "--over", other, "--under", other, "--fused", bomb]
    line = _single_error_line(_cli(*argv, timeout=120), str(bomb), "30000x30000", MAX_IMAGE_PIXELS_ENV)
    assert not out.exists()
    print(f"\n{command} bomb.png: {line}")


def test_a_100000x100000_header_through_the_cli_is_one_error_line(tmp_path, capsys):
    huge = header_only_png(tmp_path / "huge.png", 100000, 100000)
    other = _image(tmp_path / "x.png")
    code = main(["score", "--over", str(other), "--under", str(other), "--fused", str(huge)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {huge}: header claims 100000x100000"), err


@pytest.mark.parametrize("kind", ["png", "16-bit png", "jpeg", "bmp", "tiff", "16-bit tiff", "float tiff", "webp"])
def test_the_limit_applies_to_every_format_and_is_configurable(tmp_path, monkeypatch, kind):
    suffix = {"jpeg": ".jpg", "bmp": ".bmp", "webp": ".webp"}.get(kind, ".tif" if "tiff" in kind else ".png")
    array = np.random.default_rng(0).integers(0, 255, (40, 60, 3))
    array = array.astype(np.float32) / 255 if kind == "float tiff" else \
        (array * 257).astype(np.uint16) if "16-bit" in kind else array.astype(np.uint8)
    path = tmp_path / f"image{suffix}"
    assert cv2.imwrite(str(path), array)
    assert header_size(path.read_bytes()) == (60, 40)
    assert read_image_array(path).shape == (40, 60, 3)  # under the default limit
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, "2000")
    assert max_image_pixels() == 2000
    with pytest.raises(ImageFileError, match=rf"image\{suffix}: header claims 60x40 pixels .*limit of 2000 pixels"):
        read_image_array(path)
    assert read_image_array(path, max_pixels=2400).shape == (40, 60, 3)  # the argument wins over the variable
    with pytest.raises(ImageFileError, match="limit of 100 pixels"):
        read_image(path, max_pixels=100)
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, "0")
    assert max_image_pixels() is None and read_image_array(path).shape == (40, 60, 3)


def test_a_bad_limit_variable_is_one_error_line_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match=MAX_IMAGE_PIXELS_ENV):
        max_image_pixels()
    image = _image(tmp_path / "x.png")
    code = main(["score", "--over", str(image), "--under", str(image), "--fused", str(image)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and f"{MAX_IMAGE_PIXELS_ENV}='lots'" in err[0], err


# ------------------------------------------------------------------------------------------------
# libpng's own lines stay off stderr

def _png_variants(tmp_path: Path) -> dict[str, Path]:
    good = _image(tmp_path / "good.png").read_bytes()
    variants = {
        "truncated": good[:-12],  # libpng: "PNG input buffer is incomplete"
        "bad IDAT": None,  # libpng: "IDAT: invalid distance too far back" (or a CRC error)
        "bad IHDR CRC": good[:29] + b"\0\0\0\0" + good[33:],  # libpng: "IHDR: CRC error"
    }
    idat = bytearray(good)
    at = idat.find(b"IDAT")
    idat[at + 6] ^= 0xFF
    variants["bad IDAT"] = bytes(idat)
    files = {}
    for name, data in variants.items():
        files[name] = tmp_path / f"{name.replace(' ', '_')}.png"
        files[name].write_bytes(data)
    return files


@pytest.mark.parametrize("case", ["truncated", "bad IDAT", "bad IHDR CRC"])
def test_a_broken_png_prints_only_our_error_line(tmp_path, case):
    broken = _png_variants(tmp_path)[case]
    other = _image(tmp_path / "x.png", seed=1)
    result = _cli("apply", "MGFF", "--over", broken, "--under", other, "-o", tmp_path / "out.png")
    line = _single_error_line(result, str(broken))
    assert not (tmp_path / "out.png").exists()
    print(f"\n{case}: {line}")


def test_a_libpng_warning_on_a_valid_png_is_not_shown(tmp_path):
    """An iCCP chunk libpng complains about ("iCCP: too short"): the image is read, stderr stays clean."""
    good = _image(tmp_path / "good.png").read_bytes()
    warned = tmp_path / "iccp.png"
    warned.write_bytes(good[:33] + _chunk(b"iCCP", b"ICC\0\0" + zlib.compress(bytes(200))) + good[33:])
    other = _image(tmp_path / "x.png", seed=1)
    out = tmp_path / "out.png"
    result = _cli("apply", "MGFF", "--over", warned, "--under", other, "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"wrote {out}"]


def test_other_lines_written_while_decoding_are_kept(capfd):
    from cfanet.images import _codec_lines_captured

    with _codec_lines_captured():
        os.write(2, b"libpng warning: iCCP: known incorrect sRGB profile\n")
        os.write(2, b"something else\n")
        with _codec_lines_captured():  # nested: one redirection
            os.write(2, b"libpng error: PNG input buffer is incomplete\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "something else\nafter\n"


# ------------------------------------------------------------------------------------------------
# random bytes as a checkpoint

def _garbage(kind: str, path: Path) -> Path:
    rng = np.random.default_rng(15)
    if kind == "random bytes":
        data = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    elif kind == "pickle header then STOP":  # the issue's `IndexError: pop from empty list`
        data = b"\x80\x02." + rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    elif kind == "zip header then junk":
        data = b"PK\x03\x04" + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    elif kind == "truncated checkpoint":
        torch.save({"w": torch.zeros(64, 64)}, path)
        data = path.read_bytes()[:-200]
    else:  # text
        data = b"these are not weights\n" * 10
    path.write_bytes(data)
    return path


GARBAGE = ["random bytes", "pickle header then STOP", "zip header then junk", "truncated checkpoint", "text"]


@pytest.mark.parametrize("kind", GARBAGE)
def test_a_non_checkpoint_is_a_checkpoint_error_naming_the_file(tmp_path, kind):
    garbage = _garbage(kind, tmp_path / "garbage.pth")
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(garbage)
    message = str(caught.value)
    assert message.startswith(f"{garbage}: not a PyTorch checkpoint (random or corrupt bytes?)"), message
    assert "\n" not in message and len(message) < 500


def test_an_empty_checkpoint_file_says_so(tmp_path):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.pth: checkpoint file is empty"):
        read_checkpoint(empty)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_hostile_pickles_are_still_refused(tmp_path, writer):
    import pickle

    evil = tmp_path / "evil.pth"
    if writer == "torch.save":
        torch.save({"w": torch.zeros(1), "payload": _Evil()}, evil)
    else:
        evil.write_bytes(pickle.dumps(_Evil(), protocol=2))
    with pytest.raises(CheckpointError, match=r"evil\.pth: refused to unpickle .*GLOBAL"):
        read_checkpoint(evil)


@pytest.mark.parametrize("kind", ["random bytes", "pickle header then STOP"])
def test_random_bytes_as_weights_through_the_cli_is_one_error_line(tmp_path, capsys, kind):
    garbage = _garbage(kind, tmp_path / "garbage.pth")
    image = _image(tmp_path / "x.png", 16, 16)
    code = main(["apply", "SRFBN", "--input", str(image), "--weights", str(garbage), "--scale", "2", "-o",
                 str(tmp_path / "o.png")])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith(f"error: {garbage}: not a PyTorch checkpoint"), captured.err
    assert "internal error" not in captured.err and not (tmp_path / "o.png").exists()
