"""Read (and, for tests, write) TensorFlow V2 checkpoints without TensorFlow.

A TensorFlow 1.x / 2.x `tf.train.Saver` checkpoint with prefix `P` is a "tensor bundle":

- `P.index`: an immutable sorted key/value table in LevelDB's SSTable format. Keys are variable
  names (the empty key holds a `BundleHeaderProto`), values are serialized `BundleEntryProto`
  messages: dtype, shape, shard id, byte offset and size in the data file, masked CRC-32C of the
  bytes.
- `P.data-0000i-of-0000N`: the shards; each holds the raw tensor bytes (little-endian, C order),
  one tensor after the other.
- `P.meta` (optional): the `MetaGraphDef` (the graph); not needed to read the weights.

The SSTable layout (LevelDB `table_format`, which TensorFlow's `tensorflow/core/lib/io/table*`
follows): data blocks, a meta-index block, an index block, then a 48-byte footer: two
`BlockHandle`s (varint offset and size of the meta-index and index blocks), zero padding to 40
bytes, and the 8-byte magic number 0xdb4775248b80fb57 (little-endian). Each block is followed by a
5-byte trailer: a compression byte (0 = none, 1 = Snappy) and the masked CRC-32C of the block
contents plus that byte. A block holds prefix-compressed entries (varint shared length, varint
unshared length, varint value length, the unshared key bytes, the value), then an array of
uint32 "restart" offsets and their count. The index block maps the last key of each data block to
that block's handle. TensorFlow's default table options ask for Snappy compression, used for a
block only when it shrinks the block by more than 1/8, so both block kinds are read here (the
official U2Fusion index is stored uncompressed).

Protobuf messages are decoded with a minimal wire-format parser (varint, fixed32/64 and
length-delimited fields are all these messages use). Partitioned variables (entries with
`slices`) are refused with a clear error (it does not occur in the checkpoints
this project reads); string tensors (TensorFlow 2's `_CHECKPOINTABLE_OBJECT_GRAPH`) are read as
object arrays of `bytes`.

`read_checkpoint(prefix)` -> {name: numpy array}; `list_variables(prefix)` -> [(name, shape)]
like `tf.train.list_variables`; `TFCheckpointReader` for more control (dtypes, lazy reads,
checksum verification). `write_checkpoint` writes the same format (one shard, uncompressed
index), which TensorFlow reads; it exists so the reader can be tested without TensorFlow or
third-party files.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cfanet.checkpoint import CheckpointError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48          # 2 block handles padded to 40 bytes, plus the 8-byte magic
BLOCK_TRAILER_SIZE = 5    # compression type (1 byte) + masked CRC-32C (4 bytes)
NO_COMPRESSION, SNAPPY_COMPRESSION = 0, 1

# tensorflow/core/framework/types.proto `DataType` -> numpy (little-endian) dtype.
TF_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),    # DT_FLOAT
    2: np.dtype("<f8"),    # DT_DOUBLE
    3: np.dtype("<i4"),    # DT_INT32
    4: np.dtype("u1"),     # DT_UINT8
    5: np.dtype("<i2"),    # DT_INT16
    6: np.dtype("i1"),     # DT_INT8
    8: np.dtype("<c8"),    # DT_COMPLEX64
    9: np.dtype("<i8"),    # DT_INT64
    10: np.dtype("?"),     # DT_BOOL
    17: np.dtype("<u2"),   # DT_UINT16
    18: np.dtype("<c16"),  # DT_COMPLEX128
    19: np.dtype("<f2"),   # DT_HALF
    22: np.dtype("<u4"),   # DT_UINT32
    23: np.dtype("<u8"),   # DT_UINT64
}
TF_DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
                  8: "complex64", 9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 18: "complex128",
                  19: "float16", 20: "resource", 21: "variant", 22: "uint32", 23: "uint64"}
_NUMPY_TO_TF = {dtype: code for code, dtype in TF_DTYPES.items()}
DT_STRING = 7


class TFCheckpointError(CheckpointError):
    """A TensorFlow checkpoint cannot be found, parsed or read; the message names the file."""


# -- CRC-32C (Castagnoli), as LevelDB and TensorFlow use it ----------------------------------------

def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()
_CRC_MASK_DELTA = 0xA282EAD8


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C of `data` (continuing from `crc`); pure Python, about 0.2 s per MB."""
    table = _CRC32C_TABLE
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    """LevelDB/TensorFlow's stored form of a CRC: rotated right by 15 bits plus a constant."""
    return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    rot = (masked - _CRC_MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# -- varints, protobuf wire format, Snappy ---------------------------------------------------------

def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at `pos`; returns (value, position after it)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _proto_fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Yield (field number, value) of a serialized protobuf message: ints for varint and fixed
    fields, bytes for length-delimited ones. Groups (deprecated wire types 3, 4) are refused."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(buf, pos)
        elif wire_type == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire_type == 2:
            length, pos = _read_varint(buf, pos)
            value, pos = bytes(buf[pos:pos + length]), pos + length
        elif wire_type == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        if pos > len(buf):
            raise ValueError("truncated protobuf message")
        yield field, value


def _proto_key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def snappy_decompress(data: bytes) -> bytes:
    """Decompress a raw Snappy block (the format LevelDB tables use; no framing).

    A varint uncompressed length, then elements: a literal (tag low bits 00, length in the tag or
    in 1-4 following bytes) or a back-reference copy (01: 1-byte offset, 10: 2-byte, 11: 4-byte),
    which may overlap its own output.
    """
    length, pos = _read_varint(data, 0)
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            size = tag >> 2
            if size >= 60:
                extra = size - 59
                size = int.from_bytes(data[pos:pos + extra], "little")
                pos += extra
            size += 1
            if pos + size > len(data):
                raise ValueError("snappy literal runs past the end of the block")
            out += data[pos:pos + size]
            pos += size
            continue
        if kind == 1:
            size = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        elif kind == 2:
            size = 1 + (tag >> 2)
            offset = int.from_bytes(data[pos:pos + 2], "little")
            pos += 2
        else:
            size = 1 + (tag >> 2)
            offset = int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
        if offset == 0 or offset > len(out):
            raise ValueError(f"snappy copy offset {offset} outside the {len(out)} bytes decoded so far")
        start = len(out) - offset
        if size <= offset:
            out += out[start:start + size]
        else:  # overlapping copy: repeats the last `offset` bytes
            for i in range(size):
                out.append(out[start + i])
    if len(out) != length:
        raise ValueError(f"snappy block decodes to {len(out)} bytes, header says {length}")
    return bytes(out)


# -- the SSTable ----------------------------------------------------------------------------------

def _read_block_handle(buf: bytes, pos: int) -> tuple[tuple[int, int], int]:
    offset, pos = _read_varint(buf, pos)
    size, pos = _read_varint(buf, pos)
    return (offset, size), pos


def _read_block(table: bytes, handle: tuple[int, int], verify: bool) -> bytes:
    """The contents of the block at `handle`, checksum-verified and decompressed."""
    offset, size = handle
    end = offset + size + BLOCK_TRAILER_SIZE
    if end > len(table):
        raise ValueError(f"block at {offset} (+{size}) runs past the end of the table ({len(table)} bytes)")
    contents = table[offset:offset + size]
    compression = table[offset + size]
    if verify:
        stored = struct.unpack_from("<I", table, offset + size + 1)[0]
        actual = crc32c(table[offset:offset + size + 1])
        if unmask_crc(stored) != actual:
            raise ValueError(f"block at {offset}: CRC-32C mismatch (stored {unmask_crc(stored):#010x}, "
                             f"computed {actual:#010x})")
    if compression == NO_COMPRESSION:
        return contents
    if compression == SNAPPY_COMPRESSION:
        return snappy_decompress(contents)
    raise ValueError(f"block at {offset}: unknown compression type {compression}")


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Yield (key, value) pairs of a block, undoing the prefix compression of the keys."""
    if len(block) < 4:
        raise ValueError("block shorter than its restart count")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise ValueError(f"block claims {num_restarts} restart points, more than fit in {len(block)} bytes")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _read_varint(block, pos)
        unshared, pos = _read_varint(block, pos)
        value_length, pos = _read_varint(block, pos)
        if shared > len(key) or pos + unshared + value_length > limit:
            raise ValueError("corrupt block entry")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + value_length]
        pos += value_length


def read_table(table: bytes, verify: bool = True) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of an SSTable held in memory, in key order."""
    if len(table) < FOOTER_SIZE:
        raise ValueError(f"{len(table)} bytes: too short for a table footer")
    footer = table[-FOOTER_SIZE:]
    magic = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)[0]
    if magic != TABLE_MAGIC:
        raise ValueError(f"bad table magic number {magic:#018x} (expected {TABLE_MAGIC:#018x})")
    _metaindex, pos = _read_block_handle(footer, 0)
    index_handle, _ = _read_block_handle(footer, pos)
    entries = []
    for _last_key, handle_bytes in _block_entries(_read_block(table, index_handle, verify)):
        handle, _ = _read_block_handle(handle_bytes, 0)
        entries.extend(_block_entries(_read_block(table, handle, verify)))
    return entries


# -- the tensor bundle ----------------------------------------------------------------------------

@dataclass(frozen=True)
class BundleHeader:
    """`BundleHeaderProto`: number of data shards, byte order (0 little, 1 big), format version."""

    num_shards: int = 1
    endianness: int = 0
    version_producer: int = 0


@dataclass(frozen=True)
class TensorEntry:
    """`BundleEntryProto` of one variable: where its bytes are and what they hold.

    `crc32c` is the masked CRC-32C of the tensor's bytes, as stored.
    """

    name: str
    tf_dtype: int
    shape: tuple[int, ...]
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int = 0
    sliced: bool = False

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of the values (object for DT_STRING: an array of `bytes`)."""
        if self.tf_dtype == DT_STRING:
            return np.dtype(object)
        if self.tf_dtype not in TF_DTYPES:
            raise TFCheckpointError(f"variable {self.name!r}: unsupported TensorFlow dtype "
                                    f"{TF_DTYPE_NAMES.get(self.tf_dtype, self.tf_dtype)}")
        return TF_DTYPES[self.tf_dtype]

    @property
    def dtype_name(self) -> str:
        return TF_DTYPE_NAMES.get(self.tf_dtype, f"DataType({self.tf_dtype})")


def _parse_header(value: bytes) -> BundleHeader:
    num_shards, endianness, producer = 1, 0, 0
    for field, item in _proto_fields(value):
        if field == 1:
            num_shards = item
        elif field == 2:
            endianness = item
        elif field == 3:
            producer = next((v for f, v in _proto_fields(item) if f == 1), 0)
    return BundleHeader(num_shards, endianness, producer)


def _parse_shape(value: bytes) -> tuple[int, ...]:
    dims = []
    for field, item in _proto_fields(value):
        if field == 2:  # repeated Dim {int64 size = 1; string name = 2}
            dims.append(next((v for f, v in _proto_fields(item) if f == 1), 0))
        elif field == 3 and item:
            raise ValueError("tensor of unknown rank")
    return tuple(dims)


def _parse_entry(name: str, value: bytes) -> TensorEntry:
    fields: dict = {"name": name, "tf_dtype": 0, "shape": ()}
    for field, item in _proto_fields(value):
        if field == 1:
            fields["tf_dtype"] = item
        elif field == 2:
            fields["shape"] = _parse_shape(item)
        elif field == 3:
            fields["shard_id"] = item
        elif field == 4:
            fields["offset"] = item
        elif field == 5:
            fields["size"] = item
        elif field == 6:
            fields["crc32c"] = item
        elif field == 7:
            fields["sliced"] = True
    return TensorEntry(**fields)


def checkpoint_prefix(path: str | os.PathLike) -> Path:
    """The checkpoint prefix for a prefix, its `.index` file or one of its data shards."""
    path = Path(path)
    name = path.name
    if name.endswith(".index"):
        return path.with_name(name[: -len(".index")])
    if ".data-" in name:
        return path.with_name(name[: name.rindex(".data-")])
    return path


def is_tf_checkpoint(path: str | os.PathLike) -> bool:
    """True when `path` names a TensorFlow checkpoint (its prefix, `.index` or data file) that exists."""
    prefix = checkpoint_prefix(path)
    return prefix.with_name(prefix.name + ".index").is_file()


class TFCheckpointReader:
    """A TensorFlow V2 checkpoint, read without TensorFlow.

    `TFCheckpointReader("…/model.ckpt")` (or the `.index` path) parses the index; `entries` maps
    each variable name to its `TensorEntry`; `read(name)` returns the tensor as a numpy array
    (dtype and shape from the index), checking its CRC-32C unless `verify=False`.
    """

    def __init__(self, path: str | os.PathLike, verify: bool = True):
        self.prefix = checkpoint_prefix(path)
        self.verify = verify
        index_path = self.prefix.with_name(self.prefix.name + ".index")
        if not index_path.is_file():
            raise TFCheckpointError(f"{self.prefix}: no TensorFlow checkpoint index {index_path.name} found")
        try:
            records = read_table(index_path.read_bytes(), verify=verify)
        except ValueError as exc:
            raise TFCheckpointError(f"{index_path}: not a readable TensorFlow checkpoint index ({exc})") from exc
        self.header = BundleHeader()
        self.entries: dict[str, TensorEntry] = {}
        try:
            for key, value in records:
                if key == b"":
                    self.header = _parse_header(value)
                else:
                    name = key.decode("utf-8")
                    self.entries[name] = _parse_entry(name, value)
        except (ValueError, UnicodeDecodeError) as exc:
            raise TFCheckpointError(f"{index_path}: malformed checkpoint index entry ({exc})") from exc
        if self.header.endianness != 0:
            raise TFCheckpointError(f"{index_path}: big-endian checkpoints are not supported")
        self._shards: dict[int, bytes] = {}

    def __repr__(self) -> str:
        return f"TFCheckpointReader({str(self.prefix)!r}, {len(self.entries)} variables)"

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def shard_path(self, shard_id: int) -> Path:
        return self.prefix.with_name(f"{self.prefix.name}.data-{shard_id:05d}-of-{self.header.num_shards:05d}")

    def _shard(self, shard_id: int) -> bytes:
        if shard_id not in self._shards:
            path = self.shard_path(shard_id)
            if not path.is_file():
                raise TFCheckpointError(f"{self.prefix}: data shard {path.name} not found")
            self._shards[shard_id] = path.read_bytes()
        return self._shards[shard_id]

    def variables(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """{name: (dtype name, shape)} for every variable, in name order."""
        return {name: (entry.dtype_name, entry.shape) for name, entry in self.entries.items()}

    def read(self, name: str) -> np.ndarray:
        """The tensor `name` as a native-order numpy array of its dtype and shape."""
        if name not in self.entries:
            raise TFCheckpointError(f"{self.prefix}: no variable {name!r} (has: {', '.join(self.entries)})")
        entry = self.entries[name]
        if entry.sliced:
            raise TFCheckpointError(f"{self.prefix}: variable {name!r} is partitioned (sliced); not supported")
        dtype = entry.dtype
        count = int(np.prod(entry.shape, dtype=np.int64))
        if entry.tf_dtype != DT_STRING and count * dtype.itemsize != entry.size:
            raise TFCheckpointError(f"{self.prefix}: variable {name!r} has {entry.size} bytes, but its "
                                    f"{entry.dtype_name} shape {list(entry.shape)} needs {count * dtype.itemsize}")
        shard = self._shard(entry.shard_id)
        raw = shard[entry.offset:entry.offset + entry.size]
        if len(raw) != entry.size:
            raise TFCheckpointError(f"{self.prefix}: variable {name!r} runs past the end of its data shard")
        if entry.tf_dtype == DT_STRING:
            return self._strings(name, raw, count, entry.crc32c).reshape(entry.shape)
        if self.verify and entry.crc32c and unmask_crc(entry.crc32c) != crc32c(raw):
            raise TFCheckpointError(f"{self.prefix}: variable {name!r} fails its CRC-32C check (corrupt data file)")
        return np.frombuffer(raw, dtype=dtype).reshape(entry.shape).astype(dtype.newbyteorder("="))

    def _strings(self, name: str, raw: bytes, count: int, stored_crc: int) -> np.ndarray:
        """A DT_STRING tensor (TensorFlow's `WriteStringTensor`): `count` varint lengths, a uint32
        masked checksum of the lengths, then the strings back to back. Both checksums are CRC-32C
        of the lengths as little-endian uint32 (uint64 above 2**32 - 1), not of their varint bytes;
        the entry's checksum goes on over the length checksum and the string bytes."""
        try:
            lengths, pos = [], 0
            for _ in range(count):
                length, pos = _read_varint(raw, pos)
                lengths.append(length)
            length_checksum = raw[pos:pos + 4]
            struct.unpack("<I", length_checksum)
        except (ValueError, struct.error) as exc:
            raise TFCheckpointError(f"{self.prefix}: string variable {name!r} is malformed ({exc})") from exc
        pos += 4
        if self.verify:
            crc = crc32c(b"".join(struct.pack("<I" if n <= 0xFFFFFFFF else "<Q", n) for n in lengths))
            if mask_crc(crc) != struct.unpack("<I", length_checksum)[0]:
                raise TFCheckpointError(f"{self.prefix}: string variable {name!r} fails its length checksum")
            if stored_crc and unmask_crc(stored_crc) != crc32c(raw[pos:], crc32c(length_checksum, crc)):
                raise TFCheckpointError(f"{self.prefix}: string variable {name!r} fails its CRC-32C check")
        out = np.empty(count, dtype=object)
        for i, length in enumerate(lengths):
            out[i] = bytes(raw[pos:pos + length])
            pos += length
        if pos != len(raw):
            raise TFCheckpointError(f"{self.prefix}: string variable {name!r} has {len(raw) - pos} stray bytes")
        return out

    def read_all(self) -> dict[str, np.ndarray]:
        return {name: self.read(name) for name in self.entries}


def read_checkpoint(path: str | os.PathLike, verify: bool = True) -> dict[str, np.ndarray]:
    """Every variable of a TensorFlow checkpoint: {name: numpy array}."""
    return TFCheckpointReader(path, verify=verify).read_all()


def list_variables(path: str | os.PathLike) -> list[tuple[str, tuple[int, ...]]]:
    """[(name, shape)] in name order, like `tf.train.list_variables`."""
    return [(name, entry.shape) for name, entry in TFCheckpointReader(path, verify=False).entries.items()]


# -- writer (tests and fixtures) -------------------------------------------------------------------

def _block(entries: list[tuple[bytes, bytes]], restart_interval: int = 16) -> bytes:
    out, restarts, previous = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value))
        out += key[shared:] + value
        previous = key
    for restart in restarts or [0]:
        out += struct.pack("<I", restart)
    out += struct.pack("<I", len(restarts or [0]))
    return bytes(out)


def snappy_literals(data: bytes) -> bytes:
    """`data` as a valid raw Snappy stream made only of literals (no compression; for tests)."""
    out = bytearray(_varint(len(data)))
    for start in range(0, len(data), 1 << 16):
        chunk = data[start:start + (1 << 16)]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        else:
            extra = (n.bit_length() + 7) // 8
            out.append((59 + extra) << 2)
            out += n.to_bytes(extra, "little")
        out += chunk
    return bytes(out)


def _with_trailer(contents: bytes, snappy: bool = False) -> bytes:
    """A block as stored: contents (Snappy-framed if asked), compression byte, masked CRC-32C."""
    if snappy:
        contents = snappy_literals(contents)
    trailer_type = bytes([SNAPPY_COMPRESSION if snappy else NO_COMPRESSION])
    return contents + trailer_type + struct.pack("<I", mask_crc(crc32c(contents + trailer_type)))


def _entry_proto(tf_dtype: int, shape: tuple[int, ...], offset: int, size: int, crc: int) -> bytes:
    shape_proto = b"".join(_proto_key(2, 2) + _varint(len(dim)) + dim
                           for dim in (_proto_key(1, 0) + _varint(d) for d in shape))
    out = _proto_key(1, 0) + _varint(tf_dtype) + _proto_key(2, 2) + _varint(len(shape_proto)) + shape_proto
    if offset:
        out += _proto_key(4, 0) + _varint(offset)
    if size:
        out += _proto_key(5, 0) + _varint(size)
    return out + _proto_key(6, 5) + struct.pack("<I", mask_crc(crc))


def write_checkpoint(prefix: str | os.PathLike, tensors: Mapping[str, np.ndarray], snappy: bool = False) -> Path:
    """Write `tensors` as a one-shard TensorFlow V2 checkpoint (`prefix.index`, `prefix.data-…`).

    The index is one data block (uncompressed, as TensorFlow writes it since 1.2; with
    `snappy=True` its blocks are stored as Snappy streams of literals, to exercise that path of a
    reader); the data file holds the tensors in name order, little-endian. Numeric dtypes only.
    TensorFlow reads the result (`tf.train.load_checkpoint`). Returns the prefix.
    """
    prefix = Path(prefix)
    data, records = bytearray(), []
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        dtype = array.dtype.newbyteorder("<")   # stored little-endian whatever the machine
        if dtype not in _NUMPY_TO_TF:
            raise TypeError(f"{name}: dtype {array.dtype} has no TensorFlow equivalent supported here")
        raw = np.ascontiguousarray(array, dtype=dtype).tobytes()
        records.append((name.encode("utf-8"), _entry_proto(_NUMPY_TO_TF[dtype], array.shape, len(data), len(raw),
                                                           crc32c(raw))))
        data += raw
    header = _proto_key(1, 0) + _varint(1) + _proto_key(3, 2) + _varint(2) + _proto_key(1, 0) + _varint(1)
    data_block = _with_trailer(_block([(b"", header)] + records), snappy)
    metaindex_offset = len(data_block)
    metaindex = _with_trailer(_block([]), snappy)
    last_key = records[-1][0] if records else b""
    index_offset = metaindex_offset + len(metaindex)
    index = _with_trailer(_block([(last_key, _varint(0) + _varint(len(data_block) - BLOCK_TRAILER_SIZE))]), snappy)
    footer = (_varint(metaindex_offset) + _varint(len(metaindex) - BLOCK_TRAILER_SIZE)
              + _varint(index_offset) + _varint(len(index) - BLOCK_TRAILER_SIZE))
    footer = footer.ljust(FOOTER_SIZE - 8, b"\0") + struct.pack("<Q", TABLE_MAGIC)
    prefix.with_name(prefix.name + ".data-00000-of-00001").write_bytes(bytes(data))
    prefix.with_name(prefix.name + ".index").write_bytes(data_block + metaindex + index + footer)
    return prefix
