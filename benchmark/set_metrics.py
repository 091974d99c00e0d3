"""FID and KID per degradation type, on 2048-d Inception pool features.

Features come from torch-fidelity's ``inception-v3-compat`` network (the TF Inception of the
FID reference, whose weights pytorch-fid also converts) and are cached per image, so adding a
method computes features for its outputs only. The Frechet distance is torch-fidelity's
``fid_statistics_to_metric``: |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2), the same
formula pytorch-fid evaluates with scipy.linalg.sqrtm. With fewer than 2048 images the
covariance is rank-deficient and FID is biased upwards: the report prints n beside it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from builders.io import atomic_write_bytes

from .metric_base import Metric, MetricUnavailable, register_metric

EXTRACTOR = "inception-v3-compat"


class InceptionFeatures:
    def __init__(self):
        self.net = None
        self.device = "cpu"
        self.source: tuple = ()  # (digest, device) the network was built from

    def prepare(self, weights_dir: Path, device: str) -> None:
        from .weights import WeightsProblem, file_digest, load_state_dict, unavailable_reason

        reason = unavailable_reason("fid", weights_dir)
        if reason:
            raise MetricUnavailable(reason)
        source = (file_digest("inception-v3-compat", weights_dir), str(device))
        if self.net is not None and self.source == source:
            return  # the same file: reuse (another folder or file is loaded afresh)
        self.net = None
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        try:
            state = load_state_dict("inception-v3-compat", weights_dir)  # verified, restricted loader
        except WeightsProblem as exc:
            raise MetricUnavailable(str(exc)) from None
        # torch-fidelity unpickles whatever it is given, without restrictions: it gets the
        # tensors just read, re-serialised in memory, never the file.
        buf = io.BytesIO()
        torch.save(state, buf)
        buf.seek(0)
        try:
            net = FeatureExtractorInceptionV3(EXTRACTOR, ["2048"], feature_extractor_weights_path=buf)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise MetricUnavailable(f"{weights_dir}: the Inception weights do not fit torch-fidelity's "
                                    f"{EXTRACTOR} ({str(exc).splitlines()[0]})") from None
        self.net = net.eval()
        self.device = device
        self.net.to(device)
        self.source = source

    @torch.no_grad()
    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        """2048-d features of HxWx3 uint8 images (any sizes)."""
        out = []
        for img in images:
            x = torch.tensor(img, dtype=torch.uint8).permute(2, 0, 1)[None].to(self.device)
            out.append(self.net(x)[0].double().cpu().numpy()[0])
        return np.stack(out) if out else np.zeros((0, 2048))


FEATURES = InceptionFeatures()


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    s1 = fid_features_to_statistics(torch.from_numpy(np.asarray(f1, np.float64)))
    s2 = fid_features_to_statistics(torch.from_numpy(np.asarray(f2, np.float64)))
    return float(fid_statistics_to_metric(s1, s2, verbose=False)["frechet_inception_distance"])


def kernel_inception_distance(f1: np.ndarray, f2: np.ndarray, subsets: int = 100, seed: int = 0) -> float:
    from torch_fidelity.metric_kid import kid_features_to_metric

    size = min(len(f1), len(f2), 1000)
    res = kid_features_to_metric(torch.from_numpy(np.asarray(f1)), torch.from_numpy(np.asarray(f2)),
                                 kid_subsets=subsets, kid_subset_size=size, kid_degree=3, kid_gamma=None,
                                 kid_coef0=1, rng_seed=seed, verbose=False)
    return float(res["kernel_inception_distance_mean"])


class FeatureCache:
    """Per-image features of one (method, weights) in <run>/features/<extractor>/<method>__<wid>.npz."""

    def __init__(self, run_dir: Path, method: str, weights_id: str):
        self.path = Path(run_dir) / "features" / EXTRACTOR / f"{method}__{weights_id}.npz"
        self.data: dict[str, np.ndarray] = {}
        if self.path.exists():
            with np.load(self.path) as z:
                self.data = {k: z[k] for k in z.files}
        self.dirty = False

    def get(self, key: str) -> np.ndarray | None:
        return self.data.get(key)

    def put(self, key: str, vec: np.ndarray) -> None:
        self.data[key] = vec
        self.dirty = True

    def save(self) -> None:
        if self.dirty:
            buf = io.BytesIO()
            np.savez(buf, **self.data)
            atomic_write_bytes(self.path, buf.getvalue())
            self.dirty = False



register_metric(Metric("fid", "FID", False, None, ".2f", kind="set", prepare=FEATURES.prepare,
                       description="per type, 2048-d Inception (torch-fidelity compat) features"))
register_metric(Metric("kid", "KID", False, None, ".4f", kind="set", headline=False, prepare=FEATURES.prepare,
                       description="per type, polynomial-kernel MMD on the same features"))

SET_FUNCTIONS = {"fid": frechet_distance, "kid": kernel_inception_distance}
