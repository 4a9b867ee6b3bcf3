"""Training: presets (data files of verl overrides), the verl engine (pre-flight + launch), TRL, export.

Importing this package is light; engines import torch / verl / TRL only when they run.
"""
