# `import shipfastsim` sets MKL's reproducibility mode (MKL_CBWR) before anything loads
# torch (and MKL): the reproducibility tests compare processes bit for bit.
import shipfastsim  # noqa: F401
