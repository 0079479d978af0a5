
import os

# As `import shipfastsim` does, before anything loads torch (and MKL): bit-identical
# float32 products in every process (the reproducibility tests compare processes).
os.environ.setdefault("MKL_CBWR", "AUTO")
