"""Feature sets of the validation (no imports, so that parsers can name them cheaply)."""

__all__ = ["MUON_FEATURES", "PHYSICS_FEATURES"]

#: Features of a muon sample: position [cm], momentum [GeV/c], |p| and pT [GeV/c], charge [e].
MUON_FEATURES = ("x", "y", "z", "px", "py", "pz", "p", "pt", "charge")

#: The features the fidelity gate of the target generators is applied to: production depth z [cm],
#: momentum px, py, pz [GeV/c] and charge [e].  x, y are left out: the sample's x, y of prompt muons
#: are the sub-micrometre to micrometre transverse flight of short-lived parents from a pencil beam at
#: the origin, which FairShip replaces by its own painted and smeared beam spot of centimetres.
PHYSICS_FEATURES = ("z", "px", "py", "pz", "charge")
