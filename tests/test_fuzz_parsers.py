"""Property-based tests of the three parsers a user feeds by hand: device presets, study configs, drift times.

Contract: any input either loads or raises ConfigError (never KeyError/TypeError/ValueError from deep inside),
and valid, in-range values survive a round trip through YAML unchanged.
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tsb_aihw.devices import list_presets, load_preset, presets_dir
from tsb_aihw.devices.schema import NOISE_MODELS, build_preset, spec_fields, valid_keys
from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation.times import format_time, parse_time
from tsb_aihw.pipeline.config import StudyConfig, load_study_config, study_config_from_dict

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# YAML-ish scalars, including the awkward ones: NaN/inf, huge ints, booleans, empty and unicode strings.
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["auto", "1e-3", "1h", "-1", "nan", "inf", "none", "abs_max", "torch", "cpp", "pcm", "0.2"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=8)

PRESET_KEYS = valid_keys()
SHIPPED_RAW = {name: yaml.safe_load((presets_dir() / f"{name}.yaml").read_text()) for name in list_presets()}


def _spec_fields() -> list[tuple[str, type, dict]]:
    """(dotted key, base type, metadata) of every numeric preset field with a range, over all noise models."""
    out = []
    for key, hint, f in spec_fields():
        base = typing.get_args(hint) or (hint,)
        base = next(b for b in base if b is not type(None))
        if base in (int, float) and f.metadata.get("lo") is not None and f.metadata.get("hi") is not None:
            out.append((key, base, dict(f.metadata)))
    return out


# Keys tied to other keys by cross-checks (bits divide, g_min < g_max, devices per weight, derived noise).
CROSS_CHECKED = {"noise.weight_bits", "noise.device_bits", "noise.g_min", "noise.g_max",
                 "write_verify.devices_per_weight", "training.noise_std"}
RANGED = [(k, t, m) for k, t, m in _spec_fields() if k not in CROSS_CHECKED]


# Presets that refuse some in-range values of a key by a cross-check: nvcim-gaussian's noise scale is the whole
# layer's max|W|, so it refuses any tiling (docs/devices.md section 2).
REFUSED_BY = {"mapping.max_input_size": {"nvcim-gaussian"}, "mapping.max_output_size": {"nvcim-gaussian"}}


def _owner_presets(key: str) -> list[str]:
    """Shipped presets whose noise model has ``key`` (all presets for non-noise keys) and take any in-range value."""
    if not key.startswith("noise."):
        return [p for p in list_presets() if p not in REFUSED_BY.get(key, set())]
    name = key.split(".", 1)[1]
    return [p for p, raw in SHIPPED_RAW.items()
            if name in {f.name for f in dataclasses.fields(NOISE_MODELS[raw["noise"]["model"]])}]


@st.composite
def in_range(draw, base: type, meta: dict) -> float | int:
    lo, hi = meta["lo"], meta["hi"]
    if base is int:
        return draw(st.integers(min_value=int(lo) + (1 if meta.get("lo_open") else 0), max_value=int(hi)))
    value = draw(st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False,
                           exclude_min=bool(meta.get("lo_open")), exclude_max=bool(meta.get("hi_open"))))
    return value


# --------------------------------------------------------------------------------------------- presets


@FUZZ
@given(raw=st.dictionaries(st.sampled_from(["name", "noise", "periphery", "mapping", "tile", "training",
                                            "write_verify", "drift_compensation", "description"]) | st.text(max_size=6),
                           VALUES, max_size=6))
def test_arbitrary_preset_mappings_load_or_raise_config_error(raw) -> None:
    try:
        build_preset(raw, "<fuzz>")
    except ConfigError as exc:
        assert str(exc).startswith("<fuzz>") and "\n" not in str(exc)


@FUZZ
@given(preset=st.sampled_from(list_presets()), key=st.sampled_from(PRESET_KEYS) | st.text(max_size=10), value=VALUES)
def test_any_override_of_a_shipped_preset_loads_or_raises_config_error(preset, key, value) -> None:
    try:
        p = load_preset(preset, overrides={key: value})
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert p.rpu_config(verified=False) is not None  # what loads also builds an AIHWKit config


@FUZZ
@given(data=st.data())
def test_in_range_preset_values_load_and_round_trip_through_yaml(data, tmp_path_factory) -> None:
    key, base, meta = data.draw(st.sampled_from(RANGED))
    preset = data.draw(st.sampled_from(_owner_presets(key)))
    value = data.draw(in_range(base, meta))
    p = load_preset(preset, overrides={key: value})
    section, name = key.rsplit(".", 1)
    got = getattr(getattr(p, section.split(".")[0]), name)
    assert got == value and type(got) is base
    # dump the validated preset back to YAML and load it again: the same preset
    d = dataclasses.asdict(p)
    d.pop("source")
    path = tmp_path_factory.mktemp("preset") / "round.yaml"
    path.write_text(yaml.safe_dump(d))
    again = load_preset(path)
    assert dataclasses.asdict(again) | {"source": ""} == dataclasses.asdict(p) | {"source": ""}


@FUZZ
@given(key=st.sampled_from([k for k, _t, _m in _spec_fields()]), value=st.floats(allow_nan=False) | st.integers())
def test_out_of_range_numbers_name_key_value_and_range(key, value) -> None:
    meta = next(m for k, _t, m in _spec_fields() if k == key)
    lo, hi = meta["lo"], meta["hi"]
    assume(value < lo or value > hi or (meta.get("lo_open") and value == lo))
    for preset in _owner_presets(key)[:1]:
        with pytest.raises(ConfigError) as exc:
            load_preset(preset, overrides={key: value})
        msg = str(exc.value)
        assert key in msg and ("allowed" in msg or "wrong type" in msg)


# --------------------------------------------------------------------------------------------- study configs

CONFIG_KEYS = [f.name for f in dataclasses.fields(StudyConfig)]


@FUZZ
@given(raw=st.dictionaries(st.sampled_from(CONFIG_KEYS) | st.text(max_size=8), VALUES, max_size=6))
def test_arbitrary_study_configs_load_or_raise_config_error(raw) -> None:
    try:
        cfg = study_config_from_dict(raw, "<fuzz>")
    except ConfigError as exc:
        assert str(exc).startswith("<fuzz>") and "\n" not in str(exc)
        return
    assert isinstance(cfg, StudyConfig)


SECTION_FUZZ = st.sampled_from(["data", "model", "backbone", "block", "selective"])


@FUZZ
@given(section=SECTION_FUZZ, raw=st.dictionaries(st.text(max_size=20) | st.sampled_from(
    ["name", "batch_size", "eval_limit", "width", "lr", "k", "where", "epochs", "read_time", "n_reads",
     "methods", "fraction_multipliers", "extra_fractions", "noise_std", "full_epochs", "early_epochs"]),
    VALUES, max_size=4))
def test_arbitrary_sections_load_or_raise_config_error(section, raw) -> None:
    try:
        study_config_from_dict({section: raw, "backbone": {"full_epochs": 10**6, "early_epochs": 1}}
                               if section != "backbone" else {section: raw}, "<fuzz>")
    except ConfigError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(chips=st.integers(2, 10**5), seed=st.integers(0, 2**32 - 1), width=st.floats(0.01, 64.0),
       lr=st.floats(1e-9, 10.0), batch=st.integers(1, 4096), epochs=st.integers(1, 1000),
       times=st.lists(st.floats(0, 1e12) | st.sampled_from(["1s", "1h", "1d", "1mo", "1y", "0"]), min_size=1,
                      max_size=4, unique_by=parse_time),
       k=st.sampled_from(["auto"]) | st.integers(1, 512))
def test_valid_study_configs_round_trip_through_yaml(tmp_path_factory, chips, seed, width, lr, batch, epochs,
                                                     times, k) -> None:
    raw = {"chips": chips, "seed": seed, "times": times, "model": {"name": "lenet3", "width": width},
           "data": {"name": "digits", "batch_size": batch}, "backbone": {"lr": lr, "full_epochs": epochs,
                                                                         "early_epochs": epochs},
           "block": {"k": k}}
    cfg = study_config_from_dict(raw)
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"  # valid values stay valid: bounds hold every default too
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert load_study_config(path).to_dict() == cfg.to_dict()


# --------------------------------------------------------------------------------------------- drift times


@FUZZ
@given(value=SCALARS | st.lists(SCALARS, max_size=2))
def test_parse_time_returns_a_finite_non_negative_number_or_raises_config_error(value) -> None:
    try:
        t = parse_time(value)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(t, float) and math.isfinite(t) and t >= 0


@FUZZ
@given(seconds=st.floats(min_value=0, max_value=1e15, allow_nan=False),
       unit=st.sampled_from([("s", 1.0), ("min", 60.0), ("h", 3600.0), ("d", 86400.0), ("mo", 30 * 86400.0),
                             ("y", 365 * 86400.0)]))
def test_parse_time_round_trips(seconds, unit) -> None:
    assert parse_time(seconds) == seconds
    assert parse_time(repr(seconds)) == seconds
    assert parse_time(format_time(seconds)) == pytest.approx(seconds, rel=1e-9, abs=1e-12)
    name, scale = unit
    assert parse_time(f"{seconds!r}{name}") == pytest.approx(seconds * scale, rel=1e-12)


@FUZZ
@given(value=st.floats(min_value=-1e300, max_value=-1e-300) | st.integers(min_value=-10**300, max_value=-1),
       text=st.booleans())
def test_negative_times_are_rejected_with_the_rule(value, text) -> None:
    with pytest.raises(ConfigError, match="negative"):
        parse_time(f"{value!r}h" if text else value)


# --------------------------------------------------------------------------------------------- issue 16: YAML files

from tsb_aihw.errors import TSBError  # noqa: E402
from tsb_aihw.utils.io import check_accuracy, read_json  # noqa: E402
from tsb_aihw.utils.yamlfile import load_yaml_file  # noqa: E402

# YAML text from the pieces that broke the reader: anchors/aliases (bombs, recursion), repeated keys, merge keys,
# comments, odd bytes. Every file either loads or raises one ConfigError line.
YAML_TOKENS = st.sampled_from(["a", "b", "chips", "seed", ":", ": ", " ", "\n", "  ", "- ", "&x ", "*x", "&y [",
                               "*y", "]", "{", "}", ",", "<<: *x", "# c", "'", '"', "1", "-1", "1e400", "!!int ",
                               "? ", "|", "\t", "\u00e9", "~"])


@FUZZ
@given(pieces=st.lists(YAML_TOKENS, max_size=40), raw=st.binary(max_size=8))
def test_arbitrary_yaml_files_load_or_raise_one_config_error_line(tmp_path_factory, pieces, raw) -> None:
    path = tmp_path_factory.mktemp("y") / "c.yaml"
    path.write_bytes("".join(pieces).encode() + raw)
    try:
        load_yaml_file(path, "study config")
    except ConfigError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)


@FUZZ
@given(depth=st.integers(1, 12), fan=st.integers(2, 12))
def test_alias_bombs_are_refused_or_small(tmp_path_factory, depth, fan) -> None:
    lines = ["l0: &l0 [x]"] + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan)}]" for i in range(1, depth + 1)]
    path = tmp_path_factory.mktemp("bomb") / "b.yaml"
    path.write_text("\n".join(lines) + "\n")
    try:
        data = load_yaml_file(path, "study config")
    except ConfigError as exc:
        assert "alias" in str(exc) and "\n" not in str(exc)
        return
    assert fan**depth <= 100_000 and len(data) == depth + 1  # what loads is small enough to print


@FUZZ
@given(keys=st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=6))
def test_duplicate_keys_are_named_never_dropped(tmp_path_factory, keys) -> None:
    path = tmp_path_factory.mktemp("dup") / "d.yaml"
    path.write_text("".join(f"{k}: {i}\n" for i, k in enumerate(keys)))
    if len(set(keys)) == len(keys):
        assert load_yaml_file(path, "study config") == {k: i for i, k in enumerate(keys)}
        return
    with pytest.raises(ConfigError, match=r"duplicate key '[a-d]' \(first on line \d+\)"):
        load_yaml_file(path, "study config")


# --------------------------------------------------------------------------------------------- issue 16: presets

HUGE = st.integers(min_value=10**300, max_value=10**400) | st.integers(min_value=-(10**400), max_value=-(10**300))


@FUZZ
@given(preset=st.sampled_from(list_presets()), key=st.sampled_from(PRESET_KEYS), value=HUGE | SCALARS)
def test_huge_and_odd_override_values_load_or_raise_config_error(preset, key, value) -> None:
    try:
        p = load_preset(preset, overrides={key: value})
    except ConfigError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 1000
        return
    assert p.rpu_config(verified=False) is not None


@FUZZ
@given(overrides=VALUES, kw=st.dictionaries(st.sampled_from(["noise__sigma", "periphery__adc_bits", "x__y"]),
                                           VALUES, max_size=2))
def test_overrides_of_any_type_load_or_raise_config_error(overrides, kw) -> None:
    try:
        load_preset("nvcim-gaussian", overrides, **kw)
    except ConfigError as exc:
        assert "\n" not in str(exc)


def test_every_numeric_preset_field_is_bounded_on_both_sides() -> None:
    """A field without an upper bound let 400-digit numbers through to AIHWKit."""
    for key, hint, f in spec_fields():
        base = next(b for b in (typing.get_args(hint) or (hint,)) if b is not type(None))
        if base in (int, float) and not f.metadata.get("choices"):
            assert f.metadata.get("lo") is not None and f.metadata.get("hi") is not None, key
        if base is str and not f.metadata.get("choices") and key != "noise.model":
            assert f.metadata.get("max_len") is not None, key


@pytest.mark.parametrize("key", ["periphery.adc_bits", "periphery.dac_bits"])
def test_every_allowed_converter_resolution_builds_a_config(key) -> None:
    """1 bit made AIHWKit's step 1 / (2**bits - 2) a division by zero; every allowed value must build."""
    meta = next(dict(f.metadata) for k, _h, f in spec_fields() if k == key)
    for bits in range(int(meta["lo"]), int(meta["hi"]) + 1):
        cfg = load_preset("pcm", overrides={key: bits}).rpu_config(verified=False)
        res = cfg.forward.out_res if key.endswith("adc_bits") else cfg.forward.inp_res
        assert 0 < res <= 0.5


# --------------------------------------------------------------------------------------------- issue 16: saved files

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                       max_size=3), max_leaves=6)


@FUZZ
@given(value=JSON_VALUES, expect=st.sampled_from([dict, list, (dict, list)]))
def test_saved_json_of_any_shape_loads_as_expected_or_raises_one_line(tmp_path_factory, value, expect) -> None:
    path = tmp_path_factory.mktemp("j") / "cells.json"
    path.write_text(json.dumps(value))
    try:
        got = read_json(path, expect=expect)
    except TSBError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    assert isinstance(got, expect) and got == value


@FUZZ
@given(value=JSON_VALUES | st.floats() | HUGE)
def test_stored_accuracies_are_fractions_or_refused(value) -> None:
    try:
        acc = check_accuracy(value, "r.json: acc")
    except TSBError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("r.json: acc")
        return
    assert isinstance(acc, float) and 0.0 <= acc <= 1.0


# --------------------------------------------------------------------------------------------- issue 16: switches


@FUZZ
@given(threads=SCALARS | HUGE, address=st.text(max_size=30) | st.sampled_from(
    ["tcp://127.0.0.1:8786", "tcp://h", "tls://[::1]:1", "localhost:8786", "tcp://h:0", "tcp://h:x", "tcp:/h"]))
def test_executor_arguments_are_checked_up_front(threads, address) -> None:
    from tsb_aihw.parallel.executor import check_scheduler_address, check_threads

    try:
        t = check_threads(threads)
    except ConfigError as exc:
        assert "\n" not in str(exc)
    else:
        assert t is None or (type(t) is int and t >= 1)
    try:
        check_scheduler_address(address)
    except ConfigError as exc:
        assert "\n" not in str(exc) and "--scheduler" in str(exc)
    else:
        assert "://" in address


@FUZZ
@given(value=st.text(max_size=12))
def test_fast_eval_env_is_one_of_the_words_or_one_error_line(value) -> None:
    from tsb_aihw.analog.fast_eval import check_fast_eval_env

    from tsb_aihw.analog.fast_eval import DEFAULT_MODE

    try:
        mode = check_fast_eval_env({"TSB_AIHW_FAST_EVAL": value})
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    word = value.strip().lower()
    on = word in ("", "1", "true", "yes", "on")
    assert mode == (DEFAULT_MODE if on else "off" if word in ("0", "false", "no", "off") else word)


# -- issue 33: the values of the commands added since (sweep axes, --budgets, per-chip rows read back) ----------------
@FUZZ
@given(kind=st.sampled_from(["sigma", "adc_bits", "param", "block", "verified_fraction"]),
       values=st.lists(SCALARS | HUGE, min_size=1, max_size=3))
def test_sweep_axis_values_are_finite_numbers_or_one_config_error(kind, values) -> None:
    from tsb_aihw.sweeps.axes import SweepAxis

    key = {"param": "noise.prog_noise_scale", "block": "block.epochs"}.get(kind)
    try:
        axis = SweepAxis(kind, values, key=key)
    except ConfigError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 2000
        return
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in axis.values)


@FUZZ
@given(text=st.text(max_size=30) | st.sampled_from(["", ",", "1e400", "nan,0.2", "0.2,,0.5", " , "]))
def test_budget_lists_are_numbers_or_one_config_error(text) -> None:
    from tsb_aihw.cli.common import float_list
    from tsb_aihw.pipeline.config import config_from
    from tsb_aihw.pipeline.frontier import FrontierConfig

    try:
        budgets = float_list(text, "--budgets")
        cfg = config_from(FrontierConfig, {}, "frontier", {"budgets": budgets})
        cfg.validate()
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert cfg.budgets and all(0 < b <= 1 for b in cfg.budgets)


@FUZZ
@given(row=st.lists(JSON_VALUES | st.floats() | HUGE, min_size=1, max_size=3))
def test_per_chip_rows_read_back_are_fractions_or_one_line(row) -> None:
    from tsb_aihw.errors import TSBError
    from tsb_aihw.records import MethodResult, load_record

    data = json.loads(open("results/cifar10-vgg8-sigma0.2/results.json").read())["methods"]["tsb"]
    data["per_chip"] = [row]
    try:
        m = load_record(MethodResult, data, "results.json: methods.tsb")
    except TSBError as exc:
        assert "\n" not in str(exc)
        return
    assert all(isinstance(x, (int, float)) and 0 <= x <= 1 for x in m.per_chip[0])
