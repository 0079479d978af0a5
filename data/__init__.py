"""Small data files shipped with shipfastsim.

``target_muons_10k.root``: the first 10,000 rows of the SHiP muon-GAN sample
``MSO_muons.root`` (public repository alexmarshallbristol/muGAN, 50,001 muons at their
production point in the target, momentum-enhanced, p from 10 to 360 GeV), rewritten
by shipfastsim's own FairShip writer with the identical schema.
"""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
TARGET_SAMPLE = DATA_DIR / "target_muons_10k.root"
