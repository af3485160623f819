"""draw_jax: DRAW (Gregor et al., ICML 2015) in JAX and Flax NNX."""
from draw_jax.trained_model import load  # noqa: F401  the Python API
