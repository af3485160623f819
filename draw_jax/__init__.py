"""draw_jax: DRAW (Gregor et al., ICML 2015) in JAX and Flax NNX.

`draw_jax.load(directory)` gives a shipped or trained model as a Python
object (draw_jax/trained_model.py).
"""


def __getattr__(name):
  # Imported on first use: `import draw_jax.attention` stays light.
  if name == 'load':
    from draw_jax import trained_model  # pylint: disable=g-import-not-at-top
    return trained_model.load
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
