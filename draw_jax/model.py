"""The DRAW network (paper section 2) as a Flax NNX module.

Initial state: the LSTM states and the canvas all start at zero (fixed, not
learned), so sigma(c_0) = 0.5 everywhere, as in the paper's formulation.
"""
import dataclasses
import math
from typing import Optional

import jax
import jax.numpy as jnp
from flax import nnx
from flax import struct

from draw_jax import attention
from draw_jax import layers
from draw_jax import objectives
from draw_jax import pictures

@dataclasses.dataclass(frozen=True)
class DrawConfig:
  """Everything that fixes the network's shape: config.model and the data's.

  Its values come from the config (draw_jax/defaults.py) through
  settings.parse, which checks them; it implements interface.ModelConfig.
  """
  CONFIG_GROUP = 'model'
  LOSS = 'neg_elbo'
  SELECTION_METRIC = 'neg_elbo'

  height: int
  width: int
  channels: int
  T: int
  enc_size: int
  dec_size: int
  z_size: int
  read_n: int
  write_n: int
  attention: bool
  # D(x | c_T): 'bernoulli' (the paper's) or 'discretized_logistic' (8-bit).
  likelihood: str
  # Matmul input dtype; parameters, canvas, KL and loss stay float32.
  compute_dtype: str
  # Time steps per trip of the scan's loop: speed only, same results.
  scan_unroll: int
  # A layers.REMAT_POLICIES key: speed and memory only, same results.
  remat: str

  def build(self, rngs):
    return Draw(self, rngs=rngs)

  def derived_metrics(self, results, split):
    """Bits/dim of the split's -ELBO and IW NLLs, for the 8-bit likelihood."""
    if self.likelihood != 'discretized_logistic':
      return {}
    dimensions = math.prod(self.image_shape)
    bits = {f'{split}_bits_per_dim': objectives.bits_per_dim(
        results[f'{split}_neg_elbo'], dimensions)}
    for name, value in results.items():
      if name.endswith('_nll'):  # e.g. test_iw100_nll -> test_iw100_bits_per_dim
        bits[name[:-len('nll')] + 'bits_per_dim'] = objectives.bits_per_dim(
            value, dimensions)
    return bits

  def make_pictures(self, graphdef, mesh, binarization, sample_settings):
    return pictures.DrawPictures(graphdef, self, mesh, binarization,
                                 sample_settings)

  @property
  def image_shape(self):
    return (self.height, self.width, self.channels)

  @property
  def canvas_channels(self):
    return objectives.canvas_channels(self.channels, self.likelihood)

  @property
  def canvas_shape(self):
    return (self.height, self.width, self.canvas_channels)

  @property
  def read_size(self):
    """Length of r_t: glimpses of x and x_hat, or both whole images."""
    per_image = self.read_n**2 if self.attention else self.height * self.width
    return 2 * per_image * self.channels

  @property
  def write_size(self):
    side_area = self.write_n**2 if self.attention else self.height * self.width
    return side_area * self.canvas_channels


@struct.dataclass
class DrawOutput:
  """What one training pass computes; leading axes [T, batch] per step."""
  # The canvas has C channels, or 2C with the discretized logistic.
  canvas_logits_per_step: jnp.ndarray  # [T, batch, H, W, C]
  canvas_logits: jnp.ndarray  # [batch, H, W, C], c_T
  kl_per_step: jnp.ndarray  # [T, batch]
  posterior_mean: jnp.ndarray  # [T, batch, z]
  posterior_log_std: jnp.ndarray  # [T, batch, z]
  z: jnp.ndarray  # [T, batch, z]
  read_params: Optional[attention.AttentionParams]  # fields [T, batch]
  write_params: Optional[attention.AttentionParams]  # fields [T, batch]


@struct.dataclass
class GenerationOutput:
  canvas_logits_per_step: jnp.ndarray  # [T, num_samples, H, W, C]
  write_params: Optional[attention.AttentionParams]  # fields [T, num_samples]
  # Where step t's read would look, from h_dec_{t-1}: the decoder alone
  # reads nothing, but shows the window the training pass would read.
  read_params: Optional[attention.AttentionParams]  # fields [T, num_samples]


@struct.dataclass
class StepState:
  """The scan carry: the canvas c_{t-1} and both LSTM states."""
  canvas_logits: jnp.ndarray  # [batch, H, W, C']
  encoder: tuple
  decoder: tuple


def canvas_images(canvas_logits, channels):
  """Canvases [..., H, W, C'] as images [..., H, W, C] in [0, 1]: the
  sigmoid of their first C channels, the means (the rest are log-scales)."""
  return jax.nn.sigmoid(canvas_logits[..., :channels])


class Draw(nnx.Module):
  """DRAW: encoder and decoder LSTMs with read/write attention."""
  def __init__(self, config: DrawConfig, *, rngs: nnx.Rngs):
    self.config = config
    dtype = layers.DTYPES[config.compute_dtype]
    self.encoder = layers.LSTMCell(config.read_size + config.dec_size,
                                   config.enc_size, dtype=dtype, rngs=rngs)
    self.decoder = layers.LSTMCell(config.z_size, config.dec_size,
                                   dtype=dtype, rngs=rngs)
    # mu and log sigma are linear in h_enc (eq. (1)-(2)).
    self.posterior = nnx.Linear(config.enc_size, 2 * config.z_size,
                                dtype=dtype, rngs=rngs)
    self.write_patch = nnx.Linear(config.dec_size, config.write_size,
                                  dtype=dtype, rngs=rngs)
    if config.attention:
      self.read_attention = nnx.Linear(
          config.dec_size, attention.NUM_RAW_PARAMS, rngs=rngs)
      self.write_attention = nnx.Linear(
          config.dec_size, attention.NUM_RAW_PARAMS, rngs=rngs)

  # ---- state -------------------------------------------------------------

  def initial_state(self, batch_size):
    c = self.config
    zeros = lambda size: jnp.zeros((batch_size, size), jnp.float32)
    return StepState(
        canvas_logits=jnp.zeros((batch_size,) + c.canvas_shape, jnp.float32),
        encoder=(zeros(c.enc_size), zeros(c.enc_size)),
        decoder=(zeros(c.dec_size), zeros(c.dec_size)))

  # ---- read and write (eq. (3), (4) and section 3) -----------------------

  def _read(self, images, error_images, decoder_hidden):
    """r_t = read(x, x_hat, h_dec_{t-1}), flattened to [batch, read_size]."""
    batch = images.shape[0]
    if not self.config.attention:
      both = jnp.concatenate([images, error_images], axis=-1)
      return both.reshape(batch, -1), None
    c = self.config
    params = attention.attention_params(
        self.read_attention(decoder_hidden), c.height, c.width, c.read_n)
    glimpses = jax.vmap(self._read_image_and_error)(images, error_images,
                                                     params)
    return glimpses.reshape(batch, -1), params

  def _read_image_and_error(self, image, error_image, params):
    """[read(x), read(x_hat)] as channels, through one filterbank.

    Reading them one at a time, rather than stacked as channels, never copies
    x (the same every step) into a per-step array.
    """
    c = self.config
    fx_NxA, fy_NxB = attention.filterbank(params, c.height, c.width, c.read_n)
    return jnp.concatenate(
        [attention.read_with_filters(one, fx_NxA, fy_NxB, params.gamma)
         for one in (image, error_image)], axis=-1)

  def _write(self, decoder_hidden):
    """write(h_dec_t): the canvas update [batch, H, W, C'] and its window."""
    c = self.config
    batch = decoder_hidden.shape[0]
    patch = self.write_patch(decoder_hidden).astype(jnp.float32)
    if not c.attention:
      return patch.reshape((batch,) + c.canvas_shape), None
    params = attention.attention_params(
        self.write_attention(decoder_hidden), c.height, c.width, c.write_n)
    patch = patch.reshape(batch, c.write_n, c.write_n, c.canvas_channels)
    canvas_update = jax.vmap(attention.write, in_axes=(0, 0, None, None))(
        patch, params, c.height, c.width)
    return canvas_update, params

  # ---- one step of the training pass -------------------------------------

  def step(self, state: StepState, images, noise):
    """One time step of eq. (3)-(8); returns the new state and per-step values."""
    error_images = images - self.canvas_images(state.canvas_logits)  # eq. (3)
    read_vector, read_params = self._read(images, error_images,
                                          state.decoder[0])  # eq. (4)
    encoder_state = self.encoder(
        state.encoder,
        jnp.concatenate([read_vector, state.decoder[0]], axis=-1))  # eq. (5)
    mean, log_std = jnp.split(
        self.posterior(encoder_state[0]).astype(jnp.float32), 2, axis=-1)
    z = mean + jnp.exp(log_std) * noise  # eq. (6), reparameterised
    decoder_state = self.decoder(state.decoder, z)  # eq. (7)
    canvas_update, write_params = self._write(decoder_state[0])
    canvas_logits = state.canvas_logits + canvas_update  # eq. (8)
    new_state = StepState(canvas_logits, encoder_state, decoder_state)
    per_step = dict(canvas_logits=canvas_logits,
                    mean=mean, log_std=log_std, z=z,
                    read_params=read_params, write_params=write_params)
    return new_state, per_step

  def __call__(self, images, key) -> DrawOutput:
    """The training pass over T steps on images [batch, H, W, C] in [0, 1]."""
    c = self.config
    batch = images.shape[0]
    # All T steps' noise is drawn up front, so the scan body holds no RNG.
    noise_TxBxZ = jax.random.normal(key, (c.T, batch, c.z_size))
    step = layers.rematerialised(
        lambda state, noise: self.step(state, images, noise), c.remat)
    final_state, per_step = jax.lax.scan(
        step,
        self.initial_state(batch), noise_TxBxZ, unroll=c.scan_unroll)
    return DrawOutput(
        canvas_logits_per_step=per_step['canvas_logits'],
        canvas_logits=final_state.canvas_logits,
        # Once over all T steps rather than inside the scan: one fusion
        # forward and one backward instead of T small ones of each.
        kl_per_step=objectives.gaussian_kl(per_step['mean'],
                                           per_step['log_std']),
        posterior_mean=per_step['mean'],
        posterior_log_std=per_step['log_std'],
        z=per_step['z'],
        read_params=per_step['read_params'],
        write_params=per_step['write_params'])

  def canvas_images(self, canvas_logits):
    """Canvases [..., H, W, C'] as images [..., H, W, C] in [0, 1]."""
    return canvas_images(canvas_logits, self.config.channels)

  # ---- generation (section 2.3) ------------------------------------------

  def generate(self, key, num_samples) -> GenerationOutput:
    """Runs the decoder alone with z_t ~ N(0, I)."""
    c = self.config
    return self.generate_from_noise(
        jax.random.normal(key, (c.T, num_samples, c.z_size)))

  def generate_from_noise(self, noise_TxBxZ) -> GenerationOutput:
    """generate() with the T steps' z given, e.g. already sharded."""
    c = self.config
    num_samples = noise_TxBxZ.shape[1]

    def decoder_step(carry, z):
      canvas_logits, decoder_state = carry
      read_params = None
      if c.attention:
        read_params = attention.attention_params(
            self.read_attention(decoder_state[0]), c.height, c.width, c.read_n)
      decoder_state = self.decoder(decoder_state, z)
      canvas_update, write_params = self._write(decoder_state[0])
      canvas_logits = canvas_logits + canvas_update
      return (canvas_logits, decoder_state), (canvas_logits, write_params,
                                              read_params)

    initial = self.initial_state(num_samples)
    _, (canvases, write_params, read_params) = jax.lax.scan(
        decoder_step, (initial.canvas_logits, initial.decoder), noise_TxBxZ,
        unroll=c.scan_unroll)
    return GenerationOutput(canvas_logits_per_step=canvases,
                            write_params=write_params, read_params=read_params)

  # ---- the task: what training minimises and evaluation reports ---------

  def per_example_terms(self, images, labels, key):
    """The -ELBO and its two terms, each [batch], in nats."""
    del labels  # generative: the images are all there is
    terms = objectives.negative_elbo(self(images, key), images,
                                     self.config.likelihood)
    return dict(neg_elbo=terms.total, reconstruction=terms.reconstruction,
                kl=terms.kl)

  def importance_weighted_nll(self, images, key, num_samples,
                              samples_per_pass):
    """-log p(x) estimated with K = num_samples posterior draws, [batch]."""
    return objectives.importance_weighted_nll(self, images, key, num_samples,
                                              samples_per_pass)
