"""The two kinds of run the trainer drives, and what differs between them.

- 'generate': the DRAW model of the paper, trained on the negative ELBO;
- 'classify': the paper's "differentiable RAM" (section 4.1), a glimpse LSTM
  reading through the same attention.read, trained on cross-entropy.

Everything else (data on the device, the jitted step, checkpoints, resume,
metrics, evaluation batching) is shared and lives in train.py / evaluate.py.
"""
import math

import jax.numpy as jnp

from draw_jax import classifier
from draw_jax import model as draw_model
from draw_jax import objectives

GENERATE = 'generate'
CLASSIFY = 'classify'
TASKS = (GENERATE, CLASSIFY)
# The validation metric that picks the best checkpoint; lower is better.
BEST_METRICS = {GENERATE: 'neg_elbo', CLASSIFY: 'error'}


def task_of(model_config):
  if isinstance(model_config, classifier.ClassifierConfig):
    return CLASSIFY
  return GENERATE


def create_model(model_config, rngs):
  if task_of(model_config) == CLASSIFY:
    return classifier.GlimpseClassifier(model_config, rngs=rngs)
  return draw_model.Draw(model_config, rngs=rngs)


def train_loss(model, model_config, images, labels, key):
  """(mean loss, dict of batch-mean metrics) for one training batch."""
  terms = per_example_terms(model, model_config, images, labels, key)
  metrics = {name: jnp.mean(value) for name, value in terms.items()}
  loss_name = 'neg_elbo' if task_of(model_config) == GENERATE else 'cross_entropy'
  return metrics.pop(loss_name), metrics


def per_example_terms(model, model_config, images, labels, key):
  """The task's loss and its parts, each of shape [batch]."""
  if task_of(model_config) == CLASSIFY:
    logits = model(images).logits
    return dict(cross_entropy=classifier.cross_entropy(logits, labels),
                error=classifier.is_wrong(logits, labels))
  terms = objectives.negative_elbo(model(images, key), images,
                                   model_config.likelihood)
  return dict(neg_elbo=terms.total, reconstruction=terms.reconstruction,
              kl=terms.kl)


def bits_per_dim_metrics(model_config, results, split):
  """Bits/dim of the split's -ELBO and IW NLLs, for the 8-bit likelihood only."""
  if (task_of(model_config) != GENERATE or
      model_config.likelihood != 'discretized_logistic'):
    return {}
  dimensions = math.prod(model_config.image_shape)
  bits = {f'{split}_bits_per_dim': objectives.bits_per_dim(
      results[f'{split}_neg_elbo'], dimensions)}
  for name, value in results.items():
    if name.endswith('_nll'):  # e.g. test_iw100_nll -> test_iw100_bits_per_dim
      bits[name[:-len('nll')] + 'bits_per_dim'] = objectives.bits_per_dim(
          value, dimensions)
  return bits
