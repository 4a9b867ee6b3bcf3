"""Published results, kept as data with their source, to print beside a judge's row.

Values are fractions (TIGER publishes percentages: 38.42 is stored as 0.3842). ``columns`` maps a published
column to the number of :mod:`editjudge.bench.metrics` it is compared with.
"""

from __future__ import annotations

from typing import Any

PUBLISHED: dict[str, dict[str, Any]] = {
    "editscore": {
        "source": "EditScore (VectorSpaceLab/EditScore) README, table assets/table_reward_model_results.png at commit "
                  "6e0f1b9a73b40f227d82d9cb32bd9cfb7189739b, and the EditScore paper (overall accuracy, EditReward-Bench)",
        "columns": {"overall": "overall/macro"},
        "rows": [
            {"judge": "GPT-4.1", "overall": 0.705},
            {"judge": "GPT-5", "overall": 0.755},
            {"judge": "Gemini-2.5-Pro", "overall": 0.722},
            {"judge": "Qwen2.5-VL-7B", "overall": 0.432},
            {"judge": "Qwen2.5-VL-32B", "overall": 0.563},
            {"judge": "Qwen2.5-VL-72B", "overall": 0.621},
            {"judge": "EditScore-7B", "overall": 0.659},
            {"judge": "EditScore-7B (Avg@4)", "overall": 0.727},
            {"judge": "EditScore-32B", "overall": 0.680},
            {"judge": "EditScore-32B (Avg@4)", "overall": 0.733},
            {"judge": "EditScore-72B", "overall": 0.703},
            {"judge": "EditScore-72B (Avg@4)", "overall": 0.763},
        ],
    },
    "tiger": {
        "source": "TIGER-AI-Lab/EditReward README.md, 'EditReward-Bench Results' table, commit "
                  "0119171a6757517b2210d0efdff6db396d36f0cd (percentages)",
        "columns": {"K=2": "ranking/2pair", "K=3": "ranking/3pair", "K=4": "ranking/4pair", "overall": "ranking/overall"},
        "rows": [
            {"judge": "Random", "K=2": 0.2581, "K=3": 0.1133, "K=4": 0.0135, "overall": 0.1384},
            {"judge": "GPT-4o", "K=2": 0.4569, "K=3": 0.2733, "K=4": 0.0731, "overall": 0.2831},
            {"judge": "GPT-5", "K=2": 0.5753, "K=3": 0.3851, "K=4": 0.1284, "overall": 0.3781},
            {"judge": "Gemini-2.0-Flash", "K=2": 0.5243, "K=3": 0.3333, "K=4": 0.1351, "overall": 0.3347},
            {"judge": "Gemini-2.5-Flash", "K=2": 0.5861, "K=3": 0.3986, "K=4": 0.1216, "overall": 0.3802},
            {"judge": "Qwen2.5-VL-3B-Inst", "K=2": 0.5107, "K=3": 0.2027, "K=4": 0.0271, "overall": 0.2686},
            {"judge": "Qwen2.5-VL-7B-Inst", "K=2": 0.5269, "K=3": 0.2467, "K=4": 0.0338, "overall": 0.2975},
            {"judge": "Qwen2.5-VL-32B-Inst", "K=2": 0.5054, "K=3": 0.2527, "K=4": 0.0405, "overall": 0.2872},
            {"judge": "MiMo-VL-7B-SFT-2508", "K=2": 0.4946, "K=3": 0.3041, "K=4": 0.0946, "overall": 0.3119},
            {"judge": "EditReward (Qwen2.5-VL-7B)", "K=2": 0.5699, "K=3": 0.3600, "K=4": 0.1081, "overall": 0.3678},
            {"judge": "EditReward (MiMo-VL-7B)", "K=2": 0.5645, "K=3": 0.4267, "K=4": 0.1149, "overall": 0.3842},
        ],
    },
    "genai": {
        "source": "TIGER-AI-Lab/EditReward README.md, 'Alignment with Humans' table (GenAI-Bench column), commit "
                  "0119171a6757517b2210d0efdff6db396d36f0cd (percentages)",
        "columns": {"accuracy": "pairwise/with_ties"},
        "rows": [
            {"judge": "Random", "accuracy": 0.2590},
            {"judge": "GPT-4o", "accuracy": 0.5354},
            {"judge": "GPT-5", "accuracy": 0.5961},
            {"judge": "Gemini-2.0-Flash", "accuracy": 0.5332},
            {"judge": "Gemini-2.5-Flash", "accuracy": 0.5701},
            {"judge": "Qwen2.5-VL-3B-Inst", "accuracy": 0.4276},
            {"judge": "Qwen2.5-VL-7B-Inst", "accuracy": 0.4048},
            {"judge": "Qwen2.5-VL-32B-Inst", "accuracy": 0.3928},
            {"judge": "MiMo-VL-7B-SFT-2508", "accuracy": 0.5789},
            {"judge": "ADIEE", "accuracy": 0.5996},
            {"judge": "EditReward (Qwen2.5-VL-7B)", "accuracy": 0.6397},
            {"judge": "EditReward (MiMo-VL-7B)", "accuracy": 0.6572},
        ],
    },
    "imagenhub": {
        "source": "TIGER-AI-Lab/EditReward README.md, 'Alignment with Humans' table (ImagenHub column), commit "
                  "0119171a6757517b2210d0efdff6db396d36f0cd (Spearman × 100; which of its two ImagenHub functions "
                  "produced the table is not stated)",
        "columns": {"spearman": "spearman/average"},
        "rows": [
            {"judge": "Human-to-Human", "spearman": 0.4184},
            {"judge": "GPT-4o", "spearman": 0.3821},
            {"judge": "GPT-5", "spearman": 0.4085},
            {"judge": "Gemini-2.0-Flash", "spearman": 0.2369},
            {"judge": "Gemini-2.5-Flash", "spearman": 0.4162},
            {"judge": "Qwen2.5-VL-3B-Inst", "spearman": -0.0254},
            {"judge": "Qwen2.5-VL-7B-Inst", "spearman": 0.1859},
            {"judge": "Qwen2.5-VL-32B-Inst", "spearman": 0.2687},
            {"judge": "MiMo-VL-7B-SFT-2508", "spearman": 0.2214},
            {"judge": "ADIEE", "spearman": 0.3450},
            {"judge": "EditReward (Qwen2.5-VL-7B)", "spearman": 0.3618},
            {"judge": "EditReward (MiMo-VL-7B)", "spearman": 0.3520},
        ],
    },
    "ours": {"source": "none: our own data has no published table", "columns": {}, "rows": []},
}
