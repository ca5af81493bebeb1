"""Kernel families. Each sub-package exports functions that pick, at call time, the CUDA kernel (when
``jt.flags.use_cuda``) or the Jittor-ops reference that defines their semantics and runs on the CPU."""
