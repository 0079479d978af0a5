"""Maximum-likelihood training of the target-muon flow, on gan-target's sample and split.

The data are the train split's features of `shipfastsim.plugins.gan_target.sample`
(the same quantile maps, classes and 80/10/10 split as the GAN), with a fresh
chi(4) radius for each unit vector in every batch (`model.radial_dequantise`).
Loss: mean negative log-likelihood, each muon's weighted by its ``w`` (scaled to mean 1:
weighted maximum likelihood, whose optimum is the density of the weighted population;
an unweighted sample runs the plain mean); Adam with a linear learning-rate decay to
``lr_final_fraction`` and gradient-norm clipping; the model validated and saved is an
exponential moving average (EMA) of the weights.  Model selection (validation split
only, never the holdout) uses the same score as the GAN (`sample.validation_score`:
W1 / sigma over `MUON_FEATURES` and the boosted-trees AUC excess on
`PHYSICS_FEATURES`), so the two generators are chosen by one rule.  Training stops
after ``patience`` evaluations without improvement or at ``max_steps``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from shipfastsim.plugins.flow_target.model import FlowConfig, FlowGenerator, radial_dequantise, save_flow
from shipfastsim.plugins.gan_target.data import SPLITS
from shipfastsim.plugins.gan_target.model import N_CLASSES
from shipfastsim.plugins.gan_target.sample import (
    ModelSelection,
    configure,
    prepare_sample,
    rate_selection,
    sample_metadata,
    sample_provenance,
)
from shipfastsim.plugins.gan_target.train import TrainResult as FlowTrainResult  # same fields

__all__ = ["FlowTrainConfig", "FlowTrainResult", "train_flow", "WEIGHTS_NAME"]

WEIGHTS_NAME = "flow_target.safetensors"


@dataclass
class FlowTrainConfig:
    """Hyper-parameters of `train_flow` (saved with the weights)."""

    seed: int = 2024
    batch_size: int = 512
    lr: float = 1e-3
    lr_final_fraction: float = 0.02
    max_steps: int = 8000
    eval_every: int = 500
    patience: int = 12
    max_minutes: float = 45.0
    clip_norm: float = 5.0
    ema_decay: float = 0.998
    val_generated: int = 50000
    select_on_trees: bool = True
    # Select on the after-transport rate too (`transport_rates.RateSelection`): generated
    # muons per evaluation (0: off), their phi copies, the truth's copies and its label.
    rate_generated: int = 0
    rate_copies: int = 2
    rate_truth_copies: int = 40
    rate_label: str = "P1"
    threads: int = 1  # torch CPU threads; 1 is fastest on a shared 2-core machine
    flow: FlowConfig = field(default_factory=FlowConfig)


def train_flow(files: Sequence[str | Path], output: str | Path, config: FlowTrainConfig | None = None,
               progress: bool = True, device: str = "cpu", spill_pot: float | None = None) -> FlowTrainResult:
    """Train on the train split of ``files``; write weights and JSON config (with history) to ``output``.

    ``spill_pot``: protons on target per spill that the files' ``w`` refer to; the JSON then
    records muons_per_pot = sum(w) / spill_pot, the normalisation of runs of the model.
    """
    config = config or FlowTrainConfig()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    if device == "cpu" and config.threads:
        torch.set_num_threads(config.threads)
    sample = prepare_sample(files, config.flow.knots)
    flow = FlowGenerator(config.flow)
    configure(flow, sample, standardise_directions=False)
    flow.to(device)
    ema = copy.deepcopy(flow).requires_grad_(False)
    features = torch.as_tensor(sample.features, dtype=torch.float32, device=device)
    onehot_all = torch.nn.functional.one_hot(torch.as_tensor(sample.classes, device=device), N_CLASSES).float()
    weights = None if sample.weights is None else torch.as_tensor(sample.weights, dtype=torch.float32, device=device)
    optimiser = torch.optim.Adam(flow.parameters(), lr=config.lr)
    decay = lambda step: 1.0 - (1.0 - config.lr_final_fraction) * min(step / config.max_steps, 1.0)  # noqa: E731
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, decay)
    rng = torch.Generator(device=device).manual_seed(config.seed)
    selection = ModelSelection(sample, output / WEIGHTS_NAME, save_flow,
                               {"training": asdict(config) | {"device": device}, "files": [Path(f).name for f in files],
                                "skipped_rows": sample.skipped_rows, "split": SPLITS}
                               | sample_metadata(sample, files, spill_pot)
                               | {"provenance": sample_provenance(files, sample, config.seed)},
                               config.seed + 1, config.val_generated, config.select_on_trees, config.patience,
                               config.max_minutes, rates=rate_selection(files, config, "flow-target"))
    step = 0
    bar = tqdm(range(1, config.max_steps + 1), desc="flow-target", disable=not progress, dynamic_ncols=True)
    for step in bar:
        rows = torch.randint(len(features), (config.batch_size,), generator=rng, device=device)
        log_prob = flow.log_prob(radial_dequantise(features[rows], rng), onehot_all[rows])
        # Weighted maximum likelihood: each muon's log-likelihood counts w times (w of mean 1).
        loss = -log_prob.mean() if weights is None else -(weights[rows] * log_prob).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(flow.parameters(), config.clip_norm)
        optimiser.step()
        scheduler.step()
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), flow.parameters(), strict=True):
                p_ema.lerp_(p, 1 - config.ema_decay)
        if step % config.eval_every == 0 or step == config.max_steps:
            selection.evaluate(step, ema, device, {"loss": loss.item()})
        bar.set_postfix(nll=f"{loss.item():.3f}", val=f"{selection.last:.4f}", best=f"{selection.best:.4f}")
        if selection.stop:
            break
    bar.close()
    selection.finish(step)
    return FlowTrainResult(selection.weights_path, selection.best, selection.best_step, step, selection.history)
