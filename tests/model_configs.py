"""Model configs for tests: the config's defaults with a few fields changed."""
from draw_jax import classifier
from draw_jax import defaults
from draw_jax import model as draw_model


def draw(**fields):
  """A DrawConfig of a 28x28 grey image, defaults.py's values but `fields`."""
  return draw_model.DrawConfig(**{
      **defaults.get_config().model.to_dict(),
      'height': 28, 'width': 28, 'channels': 1, **fields})


def glimpse_classifier(**fields):
  """A ClassifierConfig of a 28x28 grey image with 10 classes, but `fields`."""
  return classifier.ClassifierConfig(**{
      **defaults.get_config().classifier.to_dict(),
      'height': 28, 'width': 28, 'channels': 1, 'num_classes': 10, **fields})
