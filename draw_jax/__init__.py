"""draw_jax: DRAW (Gregor et al., ICML 2015) in JAX and Flax NNX."""
