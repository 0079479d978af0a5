"""Bundled plugins of shipfastsim, registered exactly like third-party ones
(see :data:`shipfastsim.registry.DEFAULT_PLUGINS`)."""
