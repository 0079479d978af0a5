"""Training of the dangerous-muon classifier on labelled target muons.

Splits (`FILTER_SPLITS`): rows go to train / validation / holdout (60/25/15 %) by the
hash of their GAN muon index (`shipfastsim.validation.split.split_codes`), so all phi
copies of a muon share a part.  The validation part is larger than the surrogates'
10 %: it sets the working point, and a recall of 0.99 needs hundreds of rare
dangerous muons to be shown.

* **Class imbalance.** Dangerous muons are rare (P1 ~ 10^-3 of the target muons), so
  the loss is a binary cross-entropy with the dangerous class weighted by
  n_negative / n_positive (both classes weigh the same in total); each epoch sees all
  positives and a fresh random fraction ``negative_fraction`` of the negatives, whose
  loss weight is divided by that fraction (unbiased, ~1/f faster epochs).
* **Row weights.**  Each row's loss is multiplied by its sampling weight (scaled to
  mean 1; a weighted production's ``w``, or 1/f of a stratified subsample), the class
  totals are weighted sums, and so are the validation loss and the calibration: the
  classifier learns the weighted population's probability.  Equal weights change nothing.
* **Model selection** on the validation split: the epoch with the lowest validation
  loss (the training loss, class weights included, on all validation rows; the
  reduction factor at recall 0.99 hangs on the few lowest-scored dangerous muons and
  is too noisy to select on); early stopping after ``patience`` epochs without
  improvement.  The reduction at the target recall is recorded per epoch.
* **Calibration.**  The class weighting shifts raw scores, so the probability is
  recalibrated on the validation split by Platt scaling (sigmoid(a logit + b), a and b
  fitted by cross-entropy with the row weights only).
* **Working point** (`workpoint.threshold_for_recall`) from the validation
  positives; their calibrated scores are saved with the weights, so the run can set
  the threshold for any recall.  The holdout is only scored at the end.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from shipfastsim.plugins.mlp_filter.labels import LabelledMuons
from shipfastsim.plugins.mlp_filter.model import FilterConfig, FilterNet, derived_features, save_filter
from shipfastsim.plugins.mlp_filter.workpoint import filter_figures, threshold_for_recall
from shipfastsim.sample_weights import training_weights
from shipfastsim.validation.split import split_codes

__all__ = ["FILTER_SPLITS", "TrainConfig", "TrainResult", "split_of", "train_filter", "score", "calibration_error",
           "WEIGHTS_NAME"]

WEIGHTS_NAME = "mlp_filter.safetensors"
#: Split name -> [low, high) interval of the GAN-muon hash.
FILTER_SPLITS: dict[str, tuple[float, float]] = {"train": (0.0, 0.6), "validation": (0.6, 0.85),
                                                 "holdout": (0.85, 1.0)}


@dataclass
class TrainConfig:
    """Hyper-parameters (saved with the weights)."""

    label: str = "P1"
    hidden: int = 64
    layers: int = 3
    epochs: int = 30
    patience: int = 6
    batch_size: int = 2048
    lr: float = 2e-3
    weight_decay: float = 1e-4
    negative_fraction: float = 0.25
    recall: float = 0.99
    confidence: float = 0.9
    seed: int = 2025
    max_minutes: float = 30.0
    threads: int = 1


@dataclass
class TrainResult:
    weights_path: Path
    net: FilterNet
    validation: dict
    holdout: dict
    history: list[dict]


def split_of(sample: LabelledMuons, part: str) -> np.ndarray:
    """Mask of the rows of ``part`` (train, validation, holdout), by GAN muon index."""
    low, high = FILTER_SPLITS[part]
    code = split_codes(int(sample.group.max()) + 1)[sample.group]
    return (code >= low) & (code < high)


def score(net: FilterNet, state: np.ndarray, calibrated: bool = True, batch: int = 65536) -> np.ndarray:
    """Probabilities (or raw logits) of rows ``[n, 7]``."""
    out = []
    with torch.inference_mode():
        for part in torch.as_tensor(state, dtype=torch.float32).split(batch):
            out.append((net.probability(part) if calibrated else net.logit(part)).squeeze(1))
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def calibration_error(prob: np.ndarray, label: np.ndarray, weight: np.ndarray, bins: int = 10) -> dict:
    """Predicted vs observed dangerous fraction in bins of predicted probability (weighted)."""
    edges = np.quantile(prob[label], np.linspace(0, 1, bins + 1)) if label.any() else np.linspace(0, 1, bins + 1)
    index = np.clip(np.searchsorted(edges, prob, side="right") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        m = index == b
        if weight[m].sum() > 0:
            rows.append({"predicted": float(np.average(prob[m], weights=weight[m])),
                         "observed": float(np.average(label[m], weights=weight[m])), "weight": float(weight[m].sum())})
    return {"bins": rows, "predicted_total": float((prob * weight).sum()), "observed_total": float(weight[label].sum())}


def _platt(logit: np.ndarray, label: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    z, y = torch.as_tensor(logit, dtype=torch.float64), torch.as_tensor(label, dtype=torch.float64)
    w = torch.as_tensor(weight, dtype=torch.float64)
    params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([params], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z * params[0] + params[1], y, w)
        loss.backward()
        return loss

    optimiser.step(closure)
    a, b = params.detach().tolist()
    return a, b


def _row_weights(weight: np.ndarray) -> np.ndarray:
    """A split's row weights for the loss and calibration: scaled to mean 1, ones when all equal."""
    scaled = training_weights(weight)
    return np.ones(len(weight), dtype=np.float32) if scaled is None else scaled.astype(np.float32)


def _reduction_at_recall(scores, label, weight, recall) -> float:
    return filter_figures(scores, label, weight, threshold_for_recall(scores[label], recall)).reduction


def _weighted_loss(logit: np.ndarray, label: np.ndarray, pos_weight: float, row_weight: np.ndarray) -> float:
    """Mean class- and row-weighted binary cross-entropy of logits (the training loss)."""
    z, y = torch.as_tensor(logit), torch.as_tensor(label, dtype=torch.float64)
    weight = torch.where(y > 0, pos_weight, 1.0) * torch.as_tensor(row_weight, dtype=torch.float64)
    return float(torch.nn.functional.binary_cross_entropy_with_logits(z, y, weight, reduction="sum") / len(y))


def _provenance(sample: LabelledMuons, seed: int) -> dict | None:
    """What the filter learnt from: the sample's record (None for samples made before it)."""
    from shipfastsim.provenance import make_provenance

    record = sample.meta.get("provenance")
    return None if record is None else make_provenance(sample_size=len(sample), seed=seed, **record)


def train_filter(sample: LabelledMuons, output: str | Path, config: TrainConfig | None = None,
                 progress: bool = True) -> TrainResult:
    """Train on the train split of ``sample``; write weights and sidecar to ``output``."""
    config = config or TrainConfig()
    if config.label not in sample.labels:
        raise ValueError(f"label {config.label!r} not in the sample; it has {sorted(sample.labels)}")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    parts = {name: sample.select(split_of(sample, name)) for name in FILTER_SPLITS}
    train, val = parts["train"], parts["validation"]
    y_train, y_val = train.labels[config.label], val.labels[config.label]
    if y_train.sum() < 10 or y_val.sum() < 10:
        raise ValueError(f"too few {config.label} muons to train on: {int(y_train.sum())} train, "
                         f"{int(y_val.sum())} validation; label more muons")
    net = FilterNet(FilterConfig(config.hidden, config.layers))
    x_train = torch.as_tensor(train.state, dtype=torch.float32)
    net.set_standardisation(derived_features(x_train))
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.epochs)
    pos, neg = np.nonzero(y_train)[0], np.nonzero(~y_train)[0]
    # Row weights (mean 1; exactly 1 for an unweighted sample, which then trains as before).
    w_train, w_val = (_row_weights(part.weight) for part in (train, val))
    pos_weight = float(w_train[neg].sum(dtype=np.float64) / w_train[pos].sum(dtype=np.float64))
    best, best_state, history, start, stale = float("inf"), None, [], time.perf_counter(), 0
    for epoch in range(config.epochs):
        net.train()
        rows = np.concatenate([pos, neg[rng.random(len(neg)) < config.negative_fraction]])
        rows = torch.as_tensor(rng.permutation(rows))
        targets = torch.as_tensor(y_train, dtype=torch.float32)
        weights = torch.where(targets > 0, pos_weight, 1.0 / config.negative_fraction) * torch.as_tensor(w_train)
        total = 0.0
        for batch in rows.split(config.batch_size):
            logit = net.logit(x_train[batch]).squeeze(1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, targets[batch], weights[batch],
                                                                        reduction="sum") / len(batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        scheduler.step()
        net.eval()
        logit_val = score(net, val.state, calibrated=False)
        val_loss = _weighted_loss(logit_val, y_val, pos_weight, w_val)
        reduction = _reduction_at_recall(logit_val, y_val, val.weight, config.recall)
        history.append({"epoch": epoch, "loss": total / len(rows), "validation_loss": val_loss,
                        "validation_reduction": reduction})
        if progress:
            print(f"epoch {epoch:3d} loss {total / len(rows):.4f} validation loss {val_loss:.4f}, reduction at "
                  f"recall {config.recall}: {reduction:.1f}", flush=True)
        if val_loss < best:
            best, stale = val_loss, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            stale += 1
        if stale >= config.patience or time.perf_counter() - start > 60 * config.max_minutes:
            break
    net.load_state_dict(best_state)
    net.eval().requires_grad_(False)
    net.calibration.copy_(torch.tensor(_platt(score(net, val.state, calibrated=False), y_val, w_val)))
    p_val = score(net, val.state)
    # Rounded as stored, so that the run's threshold (computed from the stored list) is this one.
    positive_scores = sorted(float(f"{v:.6g}") for v in p_val[y_val])
    threshold = threshold_for_recall(np.asarray(positive_scores), config.recall, config.confidence)
    figures = {}
    for name, part in parts.items():
        p = p_val if name == "validation" else score(net, part.state)
        y = part.labels[config.label]
        figures[name] = filter_figures(p, y, part.weight, threshold).to_dict() | {
            "calibration": calibration_error(p, y, part.weight)}
    metadata = {
        "component": "mlp-filter", "version": "mlp-filter-1", "label": config.label,
        "inputs": "x, y, z [cm, FairShip frame], px, py, pz [GeV/c], charge [e] at the production point",
        "training": asdict(config), "sample": sample.meta | {"rows": len(sample)},
        "epochs_run": len(history), "best_validation_loss": best,
        "working_point": {"recall": config.recall, "confidence": config.confidence, "threshold": threshold},
        # Calibrated validation scores of the dangerous muons: the run sets its threshold from them.
        "validation_positive_scores": positive_scores,
        "figures": figures, "history": history,
        "provenance": _provenance(sample, config.seed),
    }
    weights_path = save_filter(net, Path(output) / WEIGHTS_NAME, metadata)
    return TrainResult(weights_path, net, figures["validation"], figures["holdout"], history)
