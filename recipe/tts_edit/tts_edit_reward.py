"""verl's custom reward for the TTS-edit judge: a thin shim over :func:`editjudge.reward.compute_score`.

verl imports this file by path::

    reward.custom_reward_function.path=recipe/tts_edit/tts_edit_reward.py
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.tolerance=2     # optional; see docs/reward.md

The rules live in the package (one source of truth). From a checkout where editjudge is not installed, the shim
falls back to the checkout's ``src/`` folder, which needs nothing beyond the standard library for the reward.
"""

from __future__ import annotations

try:
    from editjudge.reward import compute_score
except ImportError:  # a bare checkout: use its src/ folder
    import sys
    from pathlib import Path

    _SRC = Path(__file__).resolve().parents[2] / "src"
    if not (_SRC / "editjudge" / "reward.py").is_file():
        raise ImportError(
            "tts_edit_reward.py needs the editjudge package: run `pip install -e .` in the editjudge checkout "
            "(or keep this file inside it, at recipe/tts_edit/)"
        ) from None
    sys.path.insert(0, str(_SRC))
    from editjudge.reward import compute_score

__all__ = ["compute_score"]
