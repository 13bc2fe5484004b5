"""The pure-Python TensorFlow checkpoint reader (baselines/mef/tf_checkpoint.py).

Three sources of checkpoints:

- `tests/fixtures/tf_checkpoint_tiny/`: written by TensorFlow 2.21 itself
  (`tf.compat.v1.train.Saver`, V2 format) with every numeric dtype, a scalar and a string
  tensor; `expected.json` holds TensorFlow's own reading of it (dtype, shape, SHA-256 of the
  bytes). Regenerate with `tests/fixtures/make_tf_checkpoint_fixture.py` (needs TensorFlow).
- checkpoints written here by our own `write_checkpoint` (round trips, the Snappy path,
  corruption).
- the official U2Fusion checkpoint in ../shared/data/weights/u2fusion (skipped when absent):
  names, shapes and per-variable SHA-256 values as `tf.train.load_checkpoint` (TensorFlow 2.21)
  reads them. Verified once by hand, outside the repo: all 20 variables bit-identical to
  TensorFlow's reading, `list_variables` equal to `tf.train.list_variables`, and TensorFlow reads
  what `write_checkpoint` writes (plain and Snappy-framed index, 9 dtypes).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from baselines.mef.tf_checkpoint import (
    TFCheckpointError,
    TFCheckpointReader,
    checkpoint_prefix,
    crc32c,
    is_tf_checkpoint,
    list_variables,
    mask_crc,
    read_checkpoint,
    snappy_decompress,
    snappy_literals,
    unmask_crc,
    write_checkpoint,
)
from cfanet.checkpoint import CheckpointError

TINY = Path(__file__).resolve().parent / "fixtures" / "tf_checkpoint_tiny"

# The official U2Fusion checkpoint as TensorFlow reads it: shape and the first 16 hex digits of
# the SHA-256 of each variable's float32 bytes.
OFFICIAL = {
    "Generator/encoder/conv1_1/bias": ((44,), "088b5ac3e0d31c67"),
    "Generator/encoder/conv1_1/kernel": ((3, 3, 2, 44), "c1a399aa3aad1187"),
    "Generator/encoder/dense_block_conv1/bias": ((44,), "6f3550c522a351a2"),
    "Generator/encoder/dense_block_conv1/kernel": ((3, 3, 44, 44), "044db73039eb542c"),
    "Generator/encoder/dense_block_conv2/bias": ((44,), "8058b7d805f1ddbf"),
    "Generator/encoder/dense_block_conv2/kernel": ((3, 3, 88, 44), "32c7d74190516e45"),
    "Generator/encoder/dense_block_conv3/bias": ((44,), "33fdb775c4cd0c34"),
    "Generator/encoder/dense_block_conv3/kernel": ((3, 3, 132, 44), "449bdab2355ab3da"),
    "Generator/encoder/dense_block_conv4/bias": ((44,), "1e95ab70e22ad4a2"),
    "Generator/encoder/dense_block_conv4/kernel": ((3, 3, 176, 44), "1a5a77c1f8ceab98"),
    "Generator/encoder/dense_block_conv5/bias": ((44,), "7b748b036d96ad4b"),
    "Generator/encoder/dense_block_conv5/kernel": ((3, 3, 220, 44), "dc78b9a54e471ef8"),
    "Generator_1/decoder/conv2_1/bias": ((128,), "2bc96db4fda95d36"),
    "Generator_1/decoder/conv2_1/kernel": ((3, 3, 264, 128), "52fea0c9f4e14b0e"),
    "Generator_1/decoder/conv2_2/bias": ((64,), "a3017532d7ab0ff3"),
    "Generator_1/decoder/conv2_2/kernel": ((3, 3, 128, 64), "a2f4f0813a0c5209"),
    "Generator_1/decoder/conv2_3/bias": ((32,), "2fc978dcf9ca3973"),
    "Generator_1/decoder/conv2_3/kernel": ((3, 3, 64, 32), "c7bace929448b47f"),
    "Generator_1/decoder/conv2_4/bias": ((1,), "dc75624d0c51c8f0"),
    "Generator_1/decoder/conv2_4/kernel": ((3, 3, 32, 1), "c44588ab78bd6e26"),
}


def sample_tensors() -> dict[str, np.ndarray]:
    """Every numeric dtype, a scalar, an empty tensor, and enough names for prefix-compressed keys
    and several restart points (the writer restarts every 16 entries)."""
    tensors = {
        "a/float32": (np.arange(12, dtype=np.float32).reshape(3, 4) - 5) / 7,
        "a/float64": np.linspace(-1, 1, 5),
        "b/int8": np.array([-128, 0, 127], dtype=np.int8),
        "b/int16": np.array([-300, 300], dtype=np.int16),
        "b/int32": np.array([-(2 ** 31), 7], dtype=np.int32),
        "b/int64": np.array([[2 ** 40, -1]], dtype=np.int64),
        "c/uint8": np.arange(250, 256, dtype=np.uint8),
        "c/uint16": np.array([65535, 1], dtype=np.uint16),
        "c/bool": np.array([True, False, True]),
        "d/float16": np.array([0.5, -2.25], dtype=np.float16),
        "d/complex64": np.array([1 + 2j], dtype=np.complex64),
        "e/scalar": np.float32(3.5),
        "e/empty": np.zeros((0, 3), np.float32),
    }
    tensors.update({f"layers/block{i:02d}/kernel": np.full((2, 2), i, np.float32) for i in range(20)})
    return tensors


# -- primitives -------------------------------------------------------------------------------------

def test_crc32c_known_values_and_masking():
    assert crc32c(b"123456789") == 0xE3069283          # the CRC-32C check value
    assert crc32c(b"") == 0
    assert crc32c(b"6789", crc32c(b"12345")) == crc32c(b"123456789")
    for value in (0, 1, 0xE3069283, 0xFFFFFFFF):
        assert unmask_crc(mask_crc(value)) == value
    assert mask_crc(0) == 0xA282EAD8


# A raw Snappy stream made by the reference library (cramjam 2.x `snappy.compress_raw`) from
# b"U2Fusion " * 12 + bytes(range(70)) + b"abcabcabcabcabcabcab" + b"\0" * 300: literals with one
# extra length byte, copies with 2-byte offsets, overlapping copies.
SNAPPY_REFERENCE = bytes.fromhex(
    "f203205532467573696f6e20fe09008a0900f049000102030405060708090a0b0c0d0e0f101112131415161718191a1b"
    "1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445616263613e03"
    "000000fe0100fe0100fe0100fe0100aa0100")
SNAPPY_REFERENCE_RAW = b"U2Fusion " * 12 + bytes(range(70)) + b"abcabcabcabcabcabcab" + b"\0" * 300


def test_snappy_reference_stream():
    assert snappy_decompress(SNAPPY_REFERENCE) == SNAPPY_REFERENCE_RAW


def test_snappy_one_and_four_byte_offset_copies():
    # "abcdefgh-xyz-" then a copy (tag 01) of 8 bytes from 13 back.
    assert snappy_decompress(bytes.fromhex("1530") + b"abcdefgh-xyz-" + bytes.fromhex("110d")) == \
        b"abcdefgh-xyz-abcdefgh"
    # "ab" then an overlapping copy (tag 11, 4-byte offset 2) of 6 bytes.
    assert snappy_decompress(bytes.fromhex("0804") + b"ab" + bytes.fromhex("1702000000")) == b"abababab"


@pytest.mark.parametrize("data", [b"", b"x", bytes(range(256)) * 300])
def test_snappy_literal_streams_round_trip(data):
    assert snappy_decompress(snappy_literals(data)) == data


@pytest.mark.parametrize("stream, problem", [
    (bytes.fromhex("0504") + b"ab", "header says"),                     # declared length 5, decodes to 2
    (bytes.fromhex("0804") + b"ab" + bytes.fromhex("1705000000"), "offset"),  # copy from before the start
    (bytes.fromhex("0a24") + b"ab", "past the end"),                    # literal longer than the data
])
def test_snappy_malformed_streams_raise(stream, problem):
    with pytest.raises(ValueError, match=problem):
        snappy_decompress(stream)


def test_checkpoint_prefix_forms(tmp_path):
    prefix = tmp_path / "model.ckpt"
    for form in (prefix, tmp_path / "model.ckpt.index", tmp_path / "model.ckpt.data-00000-of-00001"):
        assert checkpoint_prefix(form) == prefix
    assert not is_tf_checkpoint(prefix)
    write_checkpoint(prefix, {"x": np.zeros(1, np.float32)})
    assert is_tf_checkpoint(prefix) and is_tf_checkpoint(str(prefix) + ".index")


# -- a checkpoint written by TensorFlow ---------------------------------------------------------------

def tiny_expected_values() -> dict[str, np.ndarray]:
    """The formulas `make_tf_checkpoint_fixture.py` used."""
    return {
        "Generator/encoder/conv1_1/kernel": (np.arange(72, dtype=np.float32).reshape(3, 3, 2, 4) - 36) / 64,
        "Generator/encoder/conv1_1/bias": np.array([0.5, -0.25, 1e-8, 3e4], dtype=np.float32),
        "float64": np.linspace(-1.0, 1.0, 6).reshape(2, 3),
        "float16": np.array([0.5, -2.25, 65504.0], dtype=np.float16),
        "int32": np.array([-(2 ** 31), 0, 2 ** 31 - 1], dtype=np.int32),
        "int64": np.array([[-(2 ** 40), 7]], dtype=np.int64),
        "uint8": np.arange(250, 256, dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "scalar": np.float32(3.5),
        "strings": np.array([b"U2Fusion", b"", b"tensor bundle"], dtype=object),
    }


def test_tensorflow_written_checkpoint_matches_tensorflows_reading():
    expected = json.loads((TINY / "expected.json").read_text())["variables"]
    reader = TFCheckpointReader(TINY / "model.ckpt")
    assert reader.header.num_shards == 1 and reader.header.endianness == 0
    assert list(reader.entries) == sorted(expected)
    for name, want in expected.items():
        array = reader.read(name)
        assert reader.entries[name].dtype_name == want["dtype"]
        assert list(array.shape) == want["shape"], name
        if want["dtype"] == "string":
            assert [x.hex() for x in array.ravel()] == want["elements_hex"]
        else:
            assert hashlib.sha256(array.astype(array.dtype.newbyteorder("<")).tobytes()).hexdigest() == want["sha256"], name


def test_tensorflow_written_checkpoint_values():
    values = read_checkpoint(TINY / "model.ckpt.index")
    for name, want in tiny_expected_values().items():
        assert values[name].dtype == np.asarray(want).dtype, name
        np.testing.assert_array_equal(values[name], want)


# -- our writer -------------------------------------------------------------------------------------

@pytest.mark.parametrize("snappy", [False, True])
def test_round_trip(tmp_path, snappy):
    tensors = sample_tensors()
    write_checkpoint(tmp_path / "model.ckpt", tensors, snappy=snappy)
    index = (tmp_path / "model.ckpt.index").read_bytes()
    assert index[-8:] == bytes.fromhex("57fb808b247547db")        # the table magic number
    back = read_checkpoint(tmp_path / "model.ckpt")
    assert sorted(back) == sorted(tensors)
    for name, value in tensors.items():
        assert back[name].dtype == np.asarray(value).dtype and back[name].shape == np.shape(value), name
        np.testing.assert_array_equal(back[name], value)
    assert list_variables(tmp_path / "model.ckpt") == [(k, np.shape(tensors[k])) for k in sorted(tensors)]
    variables = TFCheckpointReader(tmp_path / "model.ckpt").variables()
    assert variables["b/int64"] == ("int64", (1, 2)) and variables["e/scalar"] == ("float32", ())


def test_big_endian_arrays_are_written_little_endian(tmp_path):
    value = np.arange(4, dtype=">f4")
    write_checkpoint(tmp_path / "m", {"x": value})
    assert (tmp_path / "m.data-00000-of-00001").read_bytes() == np.arange(4, dtype="<f4").tobytes()
    np.testing.assert_array_equal(read_checkpoint(tmp_path / "m")["x"], value)


def test_writer_refuses_unsupported_dtypes(tmp_path):
    with pytest.raises(TypeError, match="strings: dtype <U1 has no TensorFlow equivalent"):
        write_checkpoint(tmp_path / "m", {"strings": np.array(["a"])})


# -- errors -----------------------------------------------------------------------------------------

@pytest.fixture()
def written(tmp_path) -> Path:
    return write_checkpoint(tmp_path / "model.ckpt", {"a": np.arange(6, dtype=np.float32), "b": np.ones(3)})


def test_missing_index_or_shard(tmp_path, written):
    with pytest.raises(TFCheckpointError, match="no TensorFlow checkpoint index"):
        TFCheckpointReader(tmp_path / "other.ckpt")
    (tmp_path / "model.ckpt.data-00000-of-00001").unlink()
    reader = TFCheckpointReader(written)        # the index alone parses
    with pytest.raises(TFCheckpointError, match="data shard model.ckpt.data-00000-of-00001 not found"):
        reader.read("a")


def test_unknown_variable_is_named(written):
    with pytest.raises(TFCheckpointError, match=r"no variable 'c' \(has: a, b\)"):
        TFCheckpointReader(written).read("c")


def test_corrupt_data_fails_its_checksum(tmp_path, written):
    data = tmp_path / "model.ckpt.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[5] ^= 0x01                              # inside variable "a" (offset 0, 24 bytes)
    data.write_bytes(bytes(raw))
    with pytest.raises(TFCheckpointError, match="'a' fails its CRC-32C"):
        read_checkpoint(written)
    assert TFCheckpointReader(written, verify=False).read("b").tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("damage, problem", [
    (lambda b: b[:-1] + b"\0", "magic"),
    (lambda b: b[:20], "magic|too short"),
    (lambda b: bytes([b[0] ^ 0xFF]) + b[1:], "CRC-32C mismatch"),
])
def test_damaged_index_is_refused(tmp_path, written, damage, problem):
    index = tmp_path / "model.ckpt.index"
    index.write_bytes(damage(index.read_bytes()))
    with pytest.raises(TFCheckpointError, match=problem):
        TFCheckpointReader(written)


def test_errors_are_checkpoint_errors():
    assert issubclass(TFCheckpointError, CheckpointError)


def test_size_inconsistent_with_shape_is_refused(tmp_path, written):
    reader = TFCheckpointReader(written)
    entry = reader.entries["a"]
    reader.entries["a"] = type(entry)(**{**entry.__dict__, "shape": (7,)})
    with pytest.raises(TFCheckpointError, match="needs 28"):
        reader.read("a")


# -- the official U2Fusion checkpoint -----------------------------------------------------------------

def test_official_u2fusion_checkpoint(shared_data):
    prefix = shared_data / "weights" / "u2fusion" / "model.ckpt"
    reader = TFCheckpointReader(prefix)
    assert reader.header.num_shards == 1
    assert {name: (entry.dtype_name, entry.shape) for name, entry in reader.entries.items()} == \
        {name: ("float32", shape) for name, (shape, _) in OFFICIAL.items()}
    values = reader.read_all()       # every variable's CRC-32C is verified on the way
    for name, (shape, digest) in OFFICIAL.items():
        assert values[name].dtype == np.float32 and values[name].shape == shape
        assert hashlib.sha256(values[name].tobytes()).hexdigest()[:16] == digest, name
    assert sum(v.size for v in values.values()) == 659_217
    kernel = values["Generator/encoder/conv1_1/kernel"]
    np.testing.assert_array_equal(kernel[0, 0, 0, :4], np.array(
        [0.04541030153632164, -0.006384825333952904, 0.004889978561550379, -0.0526718869805336], np.float32))
    assert values["Generator_1/decoder/conv2_4/bias"].tolist() == [np.float32(-0.014136494137346745)]
    # The data file holds exactly these tensors, back to back in name order.
    assert sum(e.size for e in reader.entries.values()) == (prefix.parent / "model.ckpt.data-00000-of-00001").stat().st_size

