import json

import torch
from tests.helpers.tiny_model import KEYS_19B, need

from omniforcing_rt.model.config import ModelConfig
from omniforcing_rt.model.transformer import AVTransformer


def _keys():
    return json.loads(need(KEYS_19B).read_text())


def test_19b_names_shapes_and_count():
    ref = _keys()
    with torch.device("meta"):
        model = AVTransformer(ModelConfig())
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    want = {k: list(v) for k, v in ref["keys"].items()}
    assert len(want) == 3510
    assert sorted(set(want) - set(got)) == []
    assert sorted(set(got) - set(want)) == []
    bad = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    assert bad == {}
    assert sum(p.numel() for p in model.parameters()) == 18_876_174_592


def test_19b_config_from_metadata_equals_default():
    ref = _keys()
    assert ModelConfig.from_metadata(ref["config"]) == ModelConfig()
