"""What the trainer, evaluation and the pictures ask of a model.

DRAW (model.DrawConfig, model.Draw) and the glimpse classifier
(classifier.ClassifierConfig, classifier.GlimpseClassifier) implement these
protocols; a third model implements them, and nothing else changes.
"""
from typing import ClassVar, Protocol, runtime_checkable

import jax
import numpy as np
from flax import nnx


class Pictures(Protocol):
  """Writes what a model draws at each evaluation and in --mode=sample.

  test_images is None where no data is at hand; what needs them is then
  skipped, with a line that says so. Returns {what: path} of the files.
  """

  def __call__(self, params, directory: str,
               test_images: np.ndarray | None, writer=None,
               step: int = 0) -> dict[str, str]:
    ...


class ModelConfig(Protocol):
  """A frozen dataclass of the fields that fix a model's shape."""
  # The config group its fields come from, e.g. 'model': check messages and
  # the defaults of fields that an older checkpoint lacks.
  CONFIG_GROUP: ClassVar[str]
  # The per_example_terms entry that training minimises.
  LOSS: ClassVar[str]
  # The per_example_terms entry whose validation mean ranks checkpoints;
  # lower is better.
  SELECTION_METRIC: ClassVar[str]
  height: int
  width: int
  channels: int

  def build(self, rngs: nnx.Rngs) -> 'Model':
    ...

  def derived_metrics(self, results: dict[str, float],
                      split: str) -> dict[str, float]:
    """More figures from a split's results, e.g. bits/dim; may be empty."""
    ...

  def make_pictures(self, graphdef, mesh, binarization: str,
                    sample_settings) -> Pictures:
    ...


class Model(Protocol):
  """An nnx.Module built by its ModelConfig."""
  config: ModelConfig

  def per_example_terms(self, images: jax.Array, labels: jax.Array | None,
                        key: jax.Array) -> dict[str, jax.Array]:
    """Each of the model's figures per example, [batch]; LOSS among them."""
    ...


@runtime_checkable
class LikelihoodModel(Protocol):
  """A generative model that also estimates -log p(x) with K samples."""

  def importance_weighted_nll(self, images: jax.Array, key: jax.Array,
                              num_samples: int,
                              samples_per_pass: int) -> jax.Array:
    ...
