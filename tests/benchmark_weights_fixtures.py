"""Stand-in metric weights: randomly initialised networks saved under the real file names.

They go through exactly the loader the real weights use (digest check, the restricted
loader, the state dicts handed to the networks). Their digests are not the released ones:
:func:`standin_digests` points the weights table at them while a test runs.
"""

from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch


def make_standin_weights(wdir: Path) -> Path:
    import torchvision
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    from benchmark.weights import WEIGHTS

    torch.manual_seed(0)
    alex = WEIGHTS["alexnet-imagenet"].path(wdir)
    alex.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.alexnet().state_dict(), alex)

    old_hub = torch.hub.get_dir()
    torch.hub.set_dir(str(wdir / "torch" / "hub"))  # the LPIPS backbone loads the stand-in above
    try:
        from pyiqa.archs.lpips_arch import LPIPS

        lpips = LPIPS(net="alex", version="0.1", pretrained=False)
    finally:
        torch.hub.set_dir(old_hub)
    lin = {k: v.abs() for k, v in lpips.state_dict().items() if k.startswith("lin")}  # real ones are >= 0
    path = WEIGHTS["lpips-alex-v0.1"].path(wdir)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(lin, path)

    # Build the Inception with its weight loading skipped, then save its random state.
    real_url_loader, real_load = fe.load_state_dict_from_url, fe.FeatureExtractorInceptionV3.load_state_dict
    fe.load_state_dict_from_url = lambda *a, **k: {}
    fe.FeatureExtractorInceptionV3.load_state_dict = lambda self, sd, *a, **k: None
    try:
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    finally:
        fe.load_state_dict_from_url, fe.FeatureExtractorInceptionV3.load_state_dict = real_url_loader, real_load
    path = WEIGHTS["inception-v3-compat"].path(wdir)
    torch.save(net.state_dict(), path)
    return wdir


@contextmanager
def standin_digests(wdir: Path):
    """Within the block, the weights table expects the stand-ins' full sha256 (not the hub prefix)."""
    import benchmark.weights as bw
    from builders.io import sha256_file

    old = dict(bw.WEIGHTS)
    for key, w in old.items():
        if w.path(wdir).is_file():
            bw.WEIGHTS[key] = replace(w, sha256=sha256_file(w.path(wdir)))
    try:
        yield wdir
    finally:
        bw.WEIGHTS.clear()
        bw.WEIGHTS.update(old)
