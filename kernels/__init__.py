"""omniforcing_rt.kernels: the fused/attention kernels of the streaming engine.

Layout (design.md section 2): ``reference/`` (fp64 PyTorch oracles), ``triton/`` (Triton kernels,
AOT-compilable via ``triton/aot.py``), ``cuda/`` (framework-agnostic ``.cu``/``.cuh`` with C
launchers, reached from Python through ``cuda/launch.py``), ``registry.py`` (op -> impls,
capabilities, tolerances) and ``torch_ops.py`` (``torch.ops.ofrt.*`` custom ops). Importing this
package imports none of them; see ``kernels/README.md`` for the inventory.
"""
