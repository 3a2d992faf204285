"""The numpy all-MiniLM-L6-v2 encoder gives the reference encoder's vectors, without PyTorch.

tests/fixtures/minilm_reference.json holds the vectors sentence-transformers (on PyTorch 2.13,
CPU) computed for a few texts, one of them past the model's 256-token limit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.special import erf

from tests.test_semantic import need_semantic

REFERENCE = Path(__file__).parent / "fixtures" / "minilm_reference.json"
ROOT = Path(__file__).resolve().parent.parent


def test_vectors_equal_the_reference_encoders() -> None:
    need_semantic()
    from digest.ranking.minilm import MiniLM

    reference = json.loads(REFERENCE.read_text())
    ours = MiniLM().embed(reference["texts"])
    expected = np.array(reference["vectors"], dtype=np.float32)

    assert ours.shape == expected.shape == (len(reference["texts"]), 384)
    np.testing.assert_allclose(ours, expected, atol=2e-6)
    # Batching and padding change nothing: one at a time gives the same rows.
    alone = np.vstack([MiniLM().embed([t]) for t in reference["texts"][:3]])
    np.testing.assert_allclose(alone, ours[:3], atol=2e-6)


def test_the_encoder_runs_where_pytorch_cannot_be_imported() -> None:
    need_semantic()
    script = (
        "import importlib.abc, sys\n"
        "class Refuse(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'sentence_transformers', 'transformers'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "from digest.ranking.semantic import SentenceEncoder\n"
        "v = SentenceEncoder(threads=1).embed(['surface codes', ''])\n"
        "assert 'torch' not in sys.modules\n"
        "print(v.shape, round(float((v[0] ** 2).sum()), 4))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(2, 384) 1.0"


def test_the_fast_erf_is_exact_to_float32_precision() -> None:
    from digest.ranking.minilm import _erf

    x = np.linspace(-6, 6, 200_001, dtype=np.float32)
    assert _erf(x).dtype == np.float32
    assert np.abs(_erf(x) - erf(x.astype(np.float64))).max() < 1e-6
