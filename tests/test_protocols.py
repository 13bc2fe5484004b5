"""The inference protocol as a per-method choice (cfanet.protocols): configuration, command line,
stage cache keys, the instances the runner builds and the run manifest. Bit-for-bit parity of each
method's official protocol with its release script: tests/test_protocol_official_sr.py and
tests/test_protocol_official_fusion.py."""

from __future__ import annotations

import sqlite3
import json

import pytest
import torch

from cfanet.methods import spec_of
from cfanet.protocols import as_unit, levels_half_even, levels_truncated, one_at_a_time
from pipelines.cli import parse_protocols, with_protocols
from pipelines.config import ConfigError
from pipelines.registry import methods
from pipelines.runner import Runner
from test_runner import _config, seeded_weights


def _runner(tmp_path, extra=""):
    return Runner(_config(tmp_path, extra), weights_trainer=seeded_weights, show_progress=False,
                  log=lambda *_: None)


# -- the quantisations -------------------------------------------------------------------------------

def test_levels_round_half_to_even_or_truncate_and_survive_the_harness_quantisation():
    from cfanet.images import quantize

    values = torch.tensor([0.5, 1.5, 2.5, 254.5, 255.7, -3.0, 100.49]) / 255
    assert levels_half_even(values).tolist() == [0, 2, 2, 254, 255, 0, 100]
    assert levels_half_even(values * 255, 255.0).tolist() == [0, 2, 2, 254, 255, 0, 100]
    assert levels_truncated(values).tolist() == [0, 1, 2, 254, 255, 0, 100]
    every = torch.arange(256, dtype=torch.float32)
    assert torch.equal(torch.as_tensor(quantize(as_unit(every).numpy())).float(), every)


def test_one_at_a_time_calls_per_sample_on_contiguous_tensors():
    seen = []

    def fn(a, b):
        seen.append((a.shape[0], a.is_contiguous(memory_format=torch.contiguous_format)))
        return a + b

    a = torch.rand(3, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    out = one_at_a_time(fn, a, a)
    assert torch.equal(out, a + a) and seen == [(1, True)] * 3


# -- descriptors and options -------------------------------------------------------------------------

def test_each_method_declares_its_protocols_and_options_follow():
    table = methods()
    for spec in table.specs.values():
        assert spec.protocols[0] == "exact" and set(spec.protocols) <= {"exact", "official"}
        assert spec.describe()["protocols"] == list(spec.protocols)
        # exact adds no option: the options (and stage keys) of before protocols existed
        assert "protocol" not in spec.runtime_options(tile=64, protocol="exact")
    rcan, swinir, cfanet, mgff = (table.find(n) for n in ("RCAN", "SwinIR", "CFANet", "MGFF"))
    assert rcan.runtime_options(tile=64, tile_overlap=8, precision="bf16", protocol="official") == {
        "protocol": "official"}   # no tiling, no autocast: the release script has neither
    assert swinir.runtime_options(tile=64, tile_overlap=8, protocol="official") == {
        "protocol": "official", "tile": 64, "tile_overlap": 8}   # main_test_swinir.py --tile
    assert cfanet.protocol_for("official") == "exact"
    assert cfanet.runtime_options(protocol="official") == cfanet.runtime_options(protocol="exact")
    assert mgff.runtime_options(protocol="official") == {"protocol": "official"}


def test_official_instances_run_untiled_fp32_and_refuse_what_the_script_lacks():
    from baselines.sr.dbpn import DBPN
    from cfanet.network import CFANet

    model = DBPN.create(2, "small", seed=0, protocol="official", tile=32, channels_last=True)
    assert model.tile == -1 and not model.channels_last and model.protocol == "official"
    with pytest.raises(ValueError, match="fp32"):
        DBPN.create(2, "small", seed=0, protocol="official", precision="bf16")
    with pytest.raises(ValueError, match="self-ensemble"):
        DBPN.create(2, "small", seed=0, protocol="official", self_ensemble=True)
    with pytest.raises(ValueError, match="CFANet: has no 'official' protocol"):
        CFANet.create(2, "small", seed=0, protocol="official")
    with pytest.raises(ValueError, match="protocol must be one of"):
        DBPN.create(2, "small", seed=0, protocol="offical")


def test_official_output_is_levels_over_255_one_image_at_a_time():
    from baselines.sr.srfbn import SRFBN

    x = torch.rand(3, 3, 23, 19, generator=torch.Generator().manual_seed(0))
    model = SRFBN.create(2, "small", seed=0, protocol="official")
    batch = model.upscale(x)
    assert torch.equal(torch.round(batch * 255) / 255, batch)
    assert torch.equal(batch, torch.cat([model.upscale(x[i:i + 1]) for i in range(3)]))


# -- configuration -----------------------------------------------------------------------------------

def test_profile_and_per_method_protocols_are_read_and_checked(tmp_path):
    runtime = _config(tmp_path, '[profiles.demo.runtime]\nprotocol = "official"\n'
                                '[profiles.demo.runtime.protocols]\nrcan = "exact"').profile().runtime
    assert runtime.protocol_of("SwinIR") == "official" and runtime.protocol_of("RCAN") == "exact"
    with pytest.raises(ConfigError, match=r"profiles\.demo\.runtime\.protocol"):
        _config(tmp_path, '[profiles.demo.runtime]\nprotocol = "offical"')
    with pytest.raises(ConfigError, match=r'runtime\.protocols\."RCNA".*did you mean RCAN'):
        _runner(tmp_path, '[profiles.demo.runtime.protocols]\nRCNA = "official"')
    with pytest.raises(ConfigError, match=r"runtime\.protocols\.\"CFANet\".*CFANet has no 'official'"):
        _runner(tmp_path, '[profiles.demo.runtime.protocols]\nCFANet = "official"')


def test_command_line_protocols(tmp_path):
    assert parse_protocols(None) == (None, {})
    assert parse_protocols(["official", "RCAN=exact"]) == ("official", {"RCAN": "exact"})
    for bad in ("offical", "=official", "RCAN=fast"):
        with pytest.raises(ValueError, match="--protocol"):
            parse_protocols([bad])
    config = _config(tmp_path, '[profiles.demo.runtime.protocols]\nSRFBN = "official"')
    assert with_protocols(config, None, None) is config
    runtime = with_protocols(config, None, ["DBPN=official"]).profile().runtime
    assert runtime.protocols == {"SRFBN": "official", "DBPN": "official"} and runtime.protocol == "exact"
    runtime = with_protocols(config, None, ["exact"]).profile().runtime   # every method: replaces the table
    assert runtime.protocols == {} and runtime.protocol == "exact"
    with pytest.raises(ValueError, match="CFANet=official: it has: exact"):
        with_protocols(config, None, ["CFANet=official"])
    with pytest.raises(ValueError, match="no such method"):
        with_protocols(config, None, ["Nope=official"])


def test_list_says_which_protocol_each_method_runs_under(tmp_path, capsys):
    from pipelines.cli import main

    config = tmp_path / "benchmark.toml"
    config.write_text('[profiles.demo.runtime]\nprotocol = "official"\n[profiles.demo.runtime.protocols]\n'
                      'SwinIR = "exact"\n')
    assert main(["--config", str(config), "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["methods"]
    assert listed["RCAN"]["protocol"] == "official" and listed["SwinIR"]["protocol"] == "exact"
    assert listed["CFANet"]["protocol"] == "exact" and listed["CFANet"]["protocols"] == ["exact"]


# -- cache keys, runs and manifests ------------------------------------------------------------------

def test_the_protocol_is_in_the_stage_key_only_where_it_runs(tmp_path):
    def identity(extra, method):
        return _runner(tmp_path, extra).identity(method, 2)

    official = '[profiles.demo.runtime]\nprotocol = "official"'
    for method in ("SRFBN", "CF-Net", "MGFF"):
        exact = identity("", method)
        assert "protocol" not in exact["config"]
        assert identity('[profiles.demo.runtime]\nprotocol = "exact"', method) == exact
        assert identity(official, method)["config"]["protocol"] == "official"
    assert identity(official, "CFANet") == identity("", "CFANet")   # no official protocol: runs exact


@pytest.mark.slow
def test_a_run_under_the_official_protocol_records_it_and_recomputes_only_what_it_changes(tmp_path):
    first = _runner(tmp_path).run(["SRFBN+MGFF", "MGFF+DBPN"])
    second = _runner(tmp_path, '[profiles.demo.runtime.protocols]\nSRFBN = "official"')
    summary = second.run(["SRFBN+MGFF", "MGFF+DBPN"])
    # SRFBN's stages and the fusions of their outputs are new; MGFF+DBPN comes from the cache
    assert 0 < summary.stages_computed < first.stages_computed
    components = second.manifest()["grid"]["components"]
    assert components["SRFBN"]["protocol"] == "official" and components["DBPN"]["protocol"] == "exact"
    database = second.output_dir / "results.sqlite"
    with sqlite3.connect(database) as connection:
        stored = json.loads(connection.execute("SELECT manifest FROM runs ORDER BY started DESC").fetchone()[0])
    assert stored["grid"]["components"]["SRFBN"] == {**components["SRFBN"], "protocol_asked": "official"}
    # an official SRFBN stage is the official protocol's 8-bit output
    worker = second.worker()
    model = worker.instance("SRFBN", 2)
    assert model.protocol == "official" and model.tile == -1
    assert spec_of(type(model)).protocol_for("official") == "official"
