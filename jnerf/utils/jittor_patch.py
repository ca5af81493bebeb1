"""Placeholder: CUDA 13 patches for Jittor (filled in by the CUDA-kernel work)."""


def apply_if_needed():
    return False
