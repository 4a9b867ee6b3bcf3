"""The test tree itself: pytest puts each test folder's parent on sys.path, so a folder named like a package would
shadow that package for every test (a `tests/vllm/` folder once made TRL see a vLLM of version 'N/A')."""
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
PROBED = ("vllm", "trl", "ray", "verl", "peft", "transformers", "torch", "wandb", "sglang", "editjudge")


@pytest.mark.parametrize("folder", sorted(p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__"))
def test_no_test_folder_shadows_a_package(folder: str) -> None:
    assert folder not in PROBED, f"tests/{folder}/ shadows the '{folder}' package: rename it (e.g. tests/lane_{folder})"
