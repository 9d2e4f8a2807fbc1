"""Is the visible GPU one this torch build has kernels for?

Kaggle's default image ships a torch built without sm_60 kernels: on a P100 ``torch.cuda.is_available()``
is true and the first operation fails ("no kernel image is available for execution on the device").
"""

from __future__ import annotations

from hibachi_lab.errors import BadInput

# What to install when the build lacks the card's architecture. Of PyTorch's CUDA wheels only the CUDA 12.6 ones
# still carry Maxwell and Pascal (sm_50, sm_60); the CUDA 12.8+ builds start at sm_70, and 2.14 is the last
# release with CUDA 12.6 wheels (PyTorch's build script and its 2.15 packaging notice).
OLD_GPU_TORCH = ('pip install "torch>=2.4,<2.15" --index-url https://download.pytorch.org/whl/cu126 '
                 "(then restart the kernel)")


def has_kernels(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """Whether a build for ``arch_list`` runs on a card of ``capability``: its own sm_XY, or PTX (compute_XY)
    for an architecture at or below it, which the driver compiles for the card."""
    major, minor = capability
    card = major * 10 + minor
    for arch in arch_list:
        kind, _, number = arch.partition("_")
        if not number.isdigit():
            continue
        value = int(number)
        if kind == "sm" and value == card:
            return True
        if kind == "compute" and value <= card:
            return True
    return False


def require_kernels_for_this_gpu(device: int = 0) -> None:
    """Bad input naming the card, the build's architectures and what to install, instead of a failed first op."""
    import torch

    if not torch.cuda.is_available():
        return
    arch_list = torch.cuda.get_arch_list()
    capability = tuple(torch.cuda.get_device_capability(device))
    if not arch_list or has_kernels(capability, arch_list):
        return
    name = torch.cuda.get_device_name(device)
    raise BadInput(
        f"{name} is compute capability {capability[0]}.{capability[1]} (sm_{capability[0]}{capability[1]}), and this "
        f"torch {torch.__version__} was built for {', '.join(arch_list)} only: the first GPU operation would fail "
        f"with 'no kernel image is available'. Install a build that has it: {OLD_GPU_TORCH}; or choose another "
        "accelerator (Kaggle: GPU T4 x2)")
