"""Small data files shipped with shipfastsim (so that every test runs on a fresh clone).

``target_muons_10k.root``: the first 10,000 rows of the SHiP muon-GAN sample
``MSO_muons.root`` (public repository alexmarshallbristol/muGAN, 50,001 muons at their
production point in the target, momentum-enhanced, p from 10 to 360 GeV), rewritten
by shipfastsim's own FairShip writer with the identical schema.

``ship_gan_target_muons_50k.root``: the whole SHiP muon-GAN sample ``MSO_muons.root``
(alexmarshallbristol/muGAN, ``MSO_output/MSO_muons.root``; the same file as
``../shared/data/ship_gan_target_muons_50k.root``, 1.2 MB): the training, validation
and holdout splits of the target generators, so that their fidelity tests and
``shipfastsim train`` run on a fresh clone.

``ship_holdout_4908.root``: the *holdout* part of the shared 50k SHiP GAN sample
(``../shared/data/ship_gan_target_muons_50k.root``) as `shipfastsim.validation.split`
defines it (muon number i, padding skipped, in the holdout when its hash is >= 0.9):
its 4,908 muons in file order, then the id-0 padding row the SHiP file ends with, the
float32 values copied bit for bit (zlib, 138 kB).  Surrogates are validated on it;
nothing is ever trained on it.  Being already the holdout, it is read whole (do not
split it again).
"""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
TARGET_SAMPLE = DATA_DIR / "target_muons_10k.root"
SHIP_SAMPLE = DATA_DIR / "ship_gan_target_muons_50k.root"
HOLDOUT_SAMPLE = DATA_DIR / "ship_holdout_4908.root"
#: Muon rows of `HOLDOUT_SAMPLE` (it has one more row: the padding row at the end).
HOLDOUT_MUONS = 4908
