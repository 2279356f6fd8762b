import pytest
from tests.helpers.tiny_model import tiny_config

from omniforcing_rt.errors import ConfigError
from omniforcing_rt.model.config import CHECKED_KEYS, Convention, ModelConfig, RopeType


def test_from_metadata_lists_every_problem_at_once():
    section = dict(CHECKED_KEYS)
    del section["qk_norm"]  # missing checked key
    section["share_ff"] = True  # unsupported value
    section["attention_head_dim"] = -3  # bad dimension
    with pytest.raises(ConfigError) as ei:
        ModelConfig.from_metadata({"transformer": section})
    probs = ei.value.problems
    assert len(probs) == 3, probs
    text = "\n".join(probs)
    assert "qk_norm" in text and "share_ff" in text and "attention_head_dim" in text


def test_from_metadata_type_strict_and_json_string():
    section = {**CHECKED_KEYS, "attention_bias": 1}  # 1 == True but wrong type
    with pytest.raises(ConfigError) as ei:
        ModelConfig.from_metadata(section)
    assert len(ei.value.problems) == 1 and "attention_bias" in ei.value.problems[0]
    with pytest.raises(ConfigError):
        ModelConfig.from_metadata("{not json")


def test_to_metadata_round_trip():
    for cfg in (ModelConfig(), tiny_config(), tiny_config(audio_sink_tokens=4, norm_eps=1e-5)):
        meta = cfg.to_metadata()
        back = ModelConfig.from_metadata({"transformer": meta})
        assert back == cfg
        assert ModelConfig.from_metadata(__import__("json").dumps(meta)) == cfg


def test_dimension_consistency_errors():
    with pytest.raises(ConfigError) as ei:
        tiny_config(cross_attention_dim=17, audio_cross_attention_dim=9)
    assert len(ei.value.problems) >= 2


def test_convention_validation_lists_all():
    with pytest.raises(ConfigError) as ei:
        Convention(rope_type="diagonal", frequencies_precision="float16", rope_angle_precision="x",
                   av_ca_timestep_scale_multiplier=0, position_style="weird")
    assert len(ei.value.problems) == 5


def test_convention_student_teacher_values():
    s, t = Convention.student(), Convention.teacher()
    assert s.rope_type is RopeType.INTERLEAVED
    assert s.frequencies_precision == "float32"
    assert s.av_ca_timestep_scale_multiplier == 1.0
    assert s.position_style == "causal"
    assert t.rope_type is RopeType.SPLIT
    assert t.frequencies_precision == "float64"
    assert t.av_ca_timestep_scale_multiplier == 1000.0
    assert t.position_style == "patchifier"
    assert Convention(rope_type="split").rope_type is RopeType.SPLIT
    fm = Convention.from_metadata({"rope_type": "split", "frequencies_precision": "float64",
                                   "av_ca_timestep_scale_multiplier": 1000})
    assert fm.rope_type is RopeType.SPLIT and fm.av_ca_timestep_scale_multiplier == 1000
