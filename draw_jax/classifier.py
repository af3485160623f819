"""DRAW's attention as a classifier: the 'differentiable RAM' of section 4.1.

An LSTM takes T glimpses of the image through the read attention of section
3.2, each placed by a linear layer on its previous hidden state, and a linear
softmax layer on the last hidden state names the class (Table 1: cluttered
MNIST 100x100). The LSTM state starts at zero, as in model.Draw.

One change from DRAW's read: log gamma passes through tanh, so a glimpse's
intensity stays within [1/e, e]. Unbounded, gamma grew to 41 while the
training loss blew up (gradient norm 1,334 at step 3,900 of a run at 5e-4;
docs/experiments.md); the LSTM's input weights can scale a glimpse anyway.
"""
import dataclasses
import math

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from flax import struct

from draw_jax import attention
from draw_jax import layers
from draw_jax import pictures

@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
  """Everything that fixes the classifier's shape: config.classifier, the
  data's image shape and data.num_classes.

  Its values come from the config (draw_jax/defaults.py) through
  settings.parse, which checks them; it implements interface.ModelConfig.
  """
  CONFIG_GROUP = 'classifier'
  LOSS = 'cross_entropy'
  SELECTION_METRIC = 'error'

  height: int
  width: int
  channels: int
  T: int  # glimpses
  hidden_size: int
  glimpse: int  # N of the N x N read
  num_classes: int
  # Matmul input dtype of the LSTM; attention, glimpses and logits stay float32.
  compute_dtype: str
  # Time steps per trip of the scan's loop: speed only, same results.
  scan_unroll: int
  # A layers.REMAT_POLICIES key: speed and memory only, same results.
  remat: str

  def build(self, rngs):
    return GlimpseClassifier(self, rngs=rngs)

  def derived_metrics(self, results, split):
    del results, split
    return {}

  def make_pictures(self, graphdef, mesh, binarization, sample_settings):
    return pictures.GlimpsePictures(graphdef, self, mesh, binarization,
                                    sample_settings.seed)

  @property
  def image_shape(self):
    return (self.height, self.width, self.channels)

  @property
  def glimpse_size(self):
    """Length of the flattened glimpse, the LSTM's input."""
    return self.glimpse**2 * self.channels


@struct.dataclass
class ClassifierOutput:
  logits: jnp.ndarray  # [batch, num_classes], float32
  glimpse_params: attention.AttentionParams  # fields [T, batch]
  glimpses: jnp.ndarray  # [T, batch, N, N, C], gamma included


def whole_image_attention_bias(config: ClassifierConfig):
  """The raw attention outputs whose glimpse is a blurred view of the image.

  g~ = 0 centres the glimpse and d~ = 1 spreads the N filter centres from the
  first pixel to the last (eq. (21)-(23)). The filters' variance is then set
  to sigma = stride / 2: with the default sigma = 1 a 12x12 read of a 100x100
  image would sample single pixels 9 apart and could miss a digit's strokes
  altogether, whereas overlapping filters average every pixel, so the first
  glimpse shows where the digit is. gamma = 1 keeps glimpse values in [0, 1].
  """
  largest_side = max(config.height, config.width)
  full_stride = (largest_side - 1.0) / max(config.glimpse - 1, 1)
  # sigma^2 = (stride / 2)^2; a 1-pixel image has stride 0, so floor sigma.
  sigma = max(full_stride / 2.0, 0.5)
  return jnp.array([0.0, 0.0, 2.0 * math.log(sigma), 0.0, 0.0], jnp.float32)


class GlimpseClassifier(nnx.Module):
  """An LSTM that reads T attention glimpses, then classifies its last state."""
  def __init__(self, config: ClassifierConfig, *, rngs: nnx.Rngs):
    self.config = config
    dtype = layers.DTYPES[config.compute_dtype]
    self.lstm = layers.LSTMCell(config.glimpse_size, config.hidden_size,
                                dtype=dtype, rngs=rngs)
    # Zero weights make every glimpse start as the whole-image view set by
    # the bias, whatever the state; training then learns where to look.
    # Attention stays float32, as in model.Draw: bfloat16 would round glimpse
    # positions on a 100-pixel image to about half a pixel.
    whole_image_bias = whole_image_attention_bias(config)
    self.attention = nnx.Linear(
        config.hidden_size, attention.NUM_RAW_PARAMS,
        kernel_init=nnx.initializers.zeros_init(),
        bias_init=lambda key, shape, dtype: whole_image_bias.astype(dtype),
        rngs=rngs)
    # float32: a 10-way layer costs nothing and the logits feed the loss.
    self.classify = nnx.Linear(config.hidden_size, config.num_classes,
                               rngs=rngs)

  def initial_state(self, batch_size):
    zeros = jnp.zeros((batch_size, self.config.hidden_size), jnp.float32)
    return (zeros, zeros)

  def read(self, images, hidden):
    """The glimpses [batch, N, N, C] placed by h_{t-1}, and their params."""
    c = self.config
    raw = self.attention(hidden)
    log_gamma = attention.RAW_LOG_GAMMA
    raw = raw.at[..., log_gamma].set(jnp.tanh(raw[..., log_gamma]))
    params = attention.attention_params(raw, c.height, c.width, c.glimpse)
    glimpses = jax.vmap(attention.read, in_axes=(0, 0, None))(
        images, params, c.glimpse)
    return glimpses, params

  def step(self, state, images):
    """One glimpse: read where h_{t-1} points, then update the LSTM."""
    glimpses, params = self.read(images, state[0])
    state = self.lstm(state, glimpses.reshape(glimpses.shape[0], -1))
    return state, dict(glimpse_params=params, glimpses=glimpses)

  def logits(self, state):
    """Class scores from the final hidden state h_T, float32."""
    return self.classify(state[0]).astype(jnp.float32)

  def __call__(self, images) -> ClassifierOutput:
    """Classifies images [batch, H, W, C] in [0, 1] after T glimpses."""
    c = self.config
    images = jnp.asarray(images, jnp.float32)
    step = layers.rematerialised(
        lambda state, _: self.step(state, images), c.remat)
    final_state, per_step = jax.lax.scan(
        step,
        self.initial_state(images.shape[0]), None, length=c.T,
        unroll=c.scan_unroll)
    return ClassifierOutput(logits=self.logits(final_state),
                            glimpse_params=per_step['glimpse_params'],
                            glimpses=per_step['glimpses'])

  # ---- the task: what training minimises and evaluation reports ---------

  def per_example_terms(self, images, labels, key):
    """Cross-entropy and 0/1 error, each [batch]."""
    del key  # the glimpses are deterministic
    logits = self(images).logits
    return dict(cross_entropy=cross_entropy(logits, labels),
                error=is_wrong(logits, labels))


def cross_entropy(logits, labels):
  """Per-example softmax cross-entropy [batch] for integer labels."""
  return optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), labels)


def is_wrong(logits, labels):
  """Per-example 1.0 where the top class is not the label, else 0.0 [batch].

  Per example rather than a mean, so masked eval batches can be summed.
  """
  return (jnp.argmax(logits, axis=-1) != labels).astype(jnp.float32)
