"""editjudge: train a vision-language judge of image edits (GRPO + LoRA) and use it for test-time scaling."""

__version__ = "0.1.0"
