"""Checkpoint reading: containers, prefixes, safe loading and mismatch errors."""

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from cfanet.checkpoint import (CheckpointError, CheckpointMismatchError, load_weights, read_checkpoint,
                               sha256_file, unwrap_state_dict)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.PReLU(), nn.Conv2d(4, 3, 1))


@pytest.mark.parametrize("container", ["params_ema", "params", "state_dict", "model", None])
def test_containers_and_module_prefix(tmp_path, container):
    source = _net()
    weights = {f"module.{k}": v for k, v in source.state_dict().items()}
    blob = weights if container is None else {container: weights, "epoch": 3}
    torch.save(blob, tmp_path / "w.pth")
    target = nn.Sequential(nn.Conv2d(3, 4, 3), nn.PReLU(), nn.Conv2d(4, 3, 1))
    load_weights(target, tmp_path / "w.pth")
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(target(x), source(x))


def test_params_ema_preferred_over_params(tmp_path):
    ema, raw = _net().state_dict(), {k: torch.zeros_like(v) for k, v in _net().state_dict().items()}
    torch.save({"params": raw, "params_ema": ema}, tmp_path / "w.pth")
    got = unwrap_state_dict(read_checkpoint(tmp_path / "w.pth"))
    assert all(torch.equal(got[k], ema[k]) for k in ema)


def test_numpy_scalars_load_safely(tmp_path):
    torch.save({"model": _net().state_dict(), "loss": [np.float64(0.5), np.float32(0.25)]}, tmp_path / "w.pth")
    obj = read_checkpoint(tmp_path / "w.pth")
    assert float(obj["loss"][0]) == 0.5


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_arbitrary_objects_are_refused(tmp_path):
    torch.save({"model": _net().state_dict(), "payload": Evil()}, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        read_checkpoint(tmp_path / "w.pth")


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path):
    weights = _net().state_dict()
    weights["extra.weight"] = torch.zeros(1)
    weights["0.weight"] = torch.zeros(5, 3, 3, 3)
    del weights["2.bias"]
    torch.save(weights, tmp_path / "w.pth")
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(_net(), tmp_path / "w.pth")
    err = info.value
    assert err.missing == ["2.bias"] and err.unexpected == ["extra.weight"]
    assert err.mis_shaped == [("0.weight", (5, 3, 3, 3), (4, 3, 3, 3))]
    text = str(err)
    assert "w.pth" in text and "2.bias" in text and "extra.weight" in text and "[5, 3, 3, 3]" in text


def test_unreadable_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="junk.pth"):
        read_checkpoint(tmp_path / "junk.pth")
    torch.save({"epoch": 1}, tmp_path / "nostate.pth")
    with pytest.raises(CheckpointError, match="no state dict"):
        load_weights(_net(), tmp_path / "nostate.pth")


def test_sha256(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_official_mefnet_release_loads_safely(shared_data):
    path = shared_data / "weights" / "mefnet" / "MEFNet_release.pt"
    with pytest.raises(pickle.UnpicklingError):  # the reason this loader exists
        torch.load(path, map_location="cpu", weights_only=True)
    obj = read_checkpoint(path)
    weights = unwrap_state_dict(obj, source=str(path))
    assert len(weights) == 32 and sum(v.numel() for v in weights.values()) == 26461
    assert isinstance(obj["test_results"][0], np.floating)
