"""Engine directories: export a model to AOTInductor / ONNX / TensorRT artefacts with a manifest.

``export_engine`` writes the directory, ``verify_export`` checks it against PyTorch, and
``Engine.from_pretrained(DIR)`` streams from it (checks in ``load.py``). See export/README.md.
Submodules import torch, onnx and (lazily) tensorrt; import what you need from them directly.
"""
