"""Export of the model's streaming pass for the C++ engine (AOTInductor packages).

``denoiser_pass.py`` is the exportable module (one pass, paged KV as explicit inputs);
``export.py`` builds, caches and describes the packages ``omniforcing_rt.Engine`` runs.
"""
