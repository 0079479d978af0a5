"""Training of the target-muon GAN (conditional WGAN-GP) with early stopping.

Objective: Wasserstein GAN with gradient penalty (Gulrajani et al. 2017), chosen for
stable convergence on a low-dimensional tabular target: the critic's loss tracks
sample quality, there is no saturating discriminator, and no normalisation layers
are needed (which keeps the exported graph to Gemm + LeakyRelu).  The critic sees
the standardised features of `model` plus the class one-hot; during training the
fake batch takes the classes of the real batch, so the penalty interpolates within
one class.  The first four features are Gaussianised by monotone piecewise-linear
quantile maps fitted on the train split (`model.fit_quantile_map`, prompt and
displaced muons weighted equally); the generator learns in that space and carries
the inverse maps.  A weighted sample (muons' ``w`` not all equal) is honoured by exact
importance resampling: the real batches are drawn with probability proportional to
``w`` (`shipfastsim.sample_weights.row_sampler`), so the critic's and the generator's
expectations over real muons (and the classes the fake batch takes) are the weighted
ones; the maps, statistics and validation score are weighted (`sample.prepare_sample`).
The generator used for validation and saved is an exponential
moving average (EMA) of the trained weights, which removes most of the GAN's
step-to-step jitter; both learning rates decay linearly to ``lr_final_fraction`` of
their start value.  Validation metric (validation split only, never the holdout):
W1 / sigma per feature of `MUON_FEATURES` between the validation split and
``val_generated`` generated muons (fixed noise; many, so the 5k validation muons
dominate the noise), combined as (mean + max) / 2 over features, because the
acceptance criterion is on every feature, not just their mean, plus the excess over
0.5 of the boosted-trees two-sample AUC on the physics features (`sample.validation_score`,
shared with flow-target: the W1 distances of single features miss wrong correlations,
which the trees see).  Training stops when
it has not improved for ``patience`` evaluations, or at ``max_steps`` (``max_minutes``
is a safety limit; a run that hits it is not reproducible step for step).

Default architecture (generator 3 x 96 LeakyReLU, 21k parameters, 24-knot maps),
chosen on the validation split between 3 x 96 and 3 x 64 with the first feature set
(px, py in place of log pT, phi; 3 x 64 modelled pT and z less well).  The bundled
weights (seed 2024) were trained with these defaults on a heavily shared CPU, where
the 45-minute safety limit stopped the run at step 7425 (best step 6000: validation
W1/sigma <= 0.043 on every feature, boosted-trees AUC 0.524 on the physics features).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from shipfastsim.plugins.gan_target.data import SPLITS
from shipfastsim.plugins.gan_target.model import (
    N_CLASSES,
    N_MAPPED,
    Critic,
    GanConfig,
    MuonGenerator,
    save_generator,
)
from shipfastsim.plugins.gan_target.sample import (
    ModelSelection,
    configure,
    prepare_sample,
    rate_selection,
    sample_metadata,
    sample_provenance,
)
from shipfastsim.sample_weights import row_sampler

__all__ = ["TrainConfig", "TrainResult", "train", "WEIGHTS_NAME"]

WEIGHTS_NAME = "gan_target.safetensors"


@dataclass
class TrainConfig:
    """Hyper-parameters of `train` (saved with the weights)."""

    seed: int = 2024
    batch_size: int = 256
    lr_generator: float = 2e-4
    lr_critic: float = 2e-4
    lr_final_fraction: float = 0.1  # both learning rates fall linearly to this fraction at max_steps
    n_critic: int = 3
    gp_lambda: float = 10.0
    ema_decay: float = 0.998
    max_steps: int = 16000
    eval_every: int = 500
    patience: int = 12
    max_minutes: float = 45.0
    val_generated: int = 50000
    select_on_trees: bool = True  # add the boosted-trees AUC excess on the validation split to the score
    # Select on the after-transport rate too (`transport_rates.RateSelection`): generated
    # muons per evaluation (0: off), their phi copies, the truth's copies and its label.
    rate_generated: int = 0
    rate_copies: int = 2
    rate_truth_copies: int = 40
    rate_label: str = "P1"
    critic_hidden: int = 256
    critic_layers: int = 3
    threads: int = 1  # torch CPU threads; 1 is fastest on a shared 2-core machine
    gan: GanConfig = field(default_factory=GanConfig)


@dataclass
class TrainResult:
    weights_path: Path
    best_metric: float
    best_step: int
    steps: int
    history: list[dict]


def train(files: Sequence[str | Path], output: str | Path, config: TrainConfig | None = None,
          progress: bool = True, device: str = "cpu", spill_pot: float | None = None) -> TrainResult:
    """Train on the train split of ``files``; write weights, JSON config and checkpoint to ``output``.

    ``spill_pot``: protons on target per spill that the files' ``w`` refer to; the JSON then
    records muons_per_pot = sum(w) / spill_pot, the normalisation of runs of the model.
    """
    config = config or TrainConfig()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    if device == "cpu" and config.threads:
        torch.set_num_threads(config.threads)
    sample = prepare_sample(files, config.gan.knots)
    mapped = sample.features.copy()
    mapped[:, N_MAPPED:] = (mapped[:, N_MAPPED:] - sample.mean[N_MAPPED:]) / sample.std[N_MAPPED:]
    generator = MuonGenerator(config.gan)
    configure(generator, sample, standardise_directions=True)
    generator.to(device)
    critic = Critic(config.critic_hidden, config.critic_layers, config.gan.negative_slope).to(device)
    ema = copy.deepcopy(generator).requires_grad_(False)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_generator, betas=(0.5, 0.9))
    opt_c = torch.optim.Adam(critic.parameters(), lr=config.lr_critic, betas=(0.5, 0.9))
    decay = lambda step: 1.0 - (1.0 - config.lr_final_fraction) * min(step / config.max_steps, 1.0)  # noqa: E731
    schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, decay) for opt in (opt_g, opt_c)]

    real = torch.as_tensor(mapped, dtype=torch.float32, device=device)
    onehot_all = torch.nn.functional.one_hot(torch.as_tensor(sample.classes, device=device), N_CLASSES).float()
    # Weighted sample: exact importance resampling of the real batches (rows drawn with
    # probability proportional to w), so every expectation over real muons is the weighted one.
    rng = torch.Generator(device=device).manual_seed(config.seed)
    draw_rows = row_sampler(len(real), sample.weights, rng)
    selection = ModelSelection(sample, output / WEIGHTS_NAME, save_generator,
                               {"training": asdict(config) | {"device": device}, "files": [Path(f).name for f in files],
                                "skipped_rows": sample.skipped_rows, "split": SPLITS}
                               | sample_metadata(sample, files, spill_pot)
                               | {"provenance": sample_provenance(files, sample, config.seed)},
                               config.seed + 1, config.val_generated, config.select_on_trees, config.patience,
                               config.max_minutes, rates=rate_selection(files, config, "gan-target"))
    bar = tqdm(range(1, config.max_steps + 1), desc="gan-target", disable=not progress, dynamic_ncols=True)
    step = 0
    for step in bar:
        for _ in range(config.n_critic):
            rows = draw_rows(config.batch_size)
            x_real, onehot = real[rows], onehot_all[rows]
            gauss = torch.randn(config.batch_size, config.gan.noise_dim, generator=rng, device=device)
            with torch.no_grad():
                x_fake = generator.conditional(gauss, onehot)
            eps = torch.rand(config.batch_size, 1, generator=rng, device=device)
            mix = (eps * x_real + (1 - eps) * x_fake).requires_grad_(True)
            grad = torch.autograd.grad(critic(mix, onehot).sum(), mix, create_graph=True)[0]
            penalty = ((grad.norm(dim=1) - 1) ** 2).mean()
            loss_c = critic(x_fake, onehot).mean() - critic(x_real, onehot).mean() + config.gp_lambda * penalty
            opt_c.zero_grad(set_to_none=True)
            loss_c.backward()
            opt_c.step()
        rows = draw_rows(config.batch_size)
        gauss = torch.randn(config.batch_size, config.gan.noise_dim, generator=rng, device=device)
        loss_g = -critic(generator.conditional(gauss, onehot_all[rows]), onehot_all[rows]).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for scheduler in schedulers:
            scheduler.step()
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), generator.parameters(), strict=True):
                p_ema.lerp_(p, 1 - config.ema_decay)
        if step % config.eval_every == 0 or step == config.max_steps:
            selection.evaluate(step, ema, device, {"loss_critic": loss_c.item(), "loss_generator": loss_g.item()})
            torch.save({"step": step, "generator": generator.state_dict(), "ema": ema.state_dict(),
                        "critic": critic.state_dict(), "opt_g": opt_g.state_dict(), "opt_c": opt_c.state_dict(),
                        "history": selection.history}, output / "checkpoint.pt")
        bar.set_postfix(c=f"{loss_c.item():.3f}", g=f"{loss_g.item():.3f}", val=f"{selection.last:.4f}",
                        best=f"{selection.best:.4f}")
        if selection.stop:
            break
    bar.close()
    selection.finish(step)
    return TrainResult(selection.weights_path, selection.best, selection.best_step, step, selection.history)
