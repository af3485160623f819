"""The defaults of every config; configs/*.py import them and change a few.

A config file takes an optional argument of comma-separated overrides, so one
sweep point is one string:

  --config=configs/mnist_attn.py:T=16,read=3
  --config=configs/mnist_attn.py:model.z_size=50,lr=3e-4

Short names (see SHORT_NAMES) or full dotted field paths both work; values are
Python literals, type-checked by ml_collections against the field's type.
"""
import ast

import ml_collections

SHORT_NAMES = {
    'glimpses': 'classifier.T',
    'T': 'model.T',
    'read': 'model.read_n',
    'write': 'model.write_n',
    'enc': 'model.enc_size',
    'dec': 'model.dec_size',
    'z': 'model.z_size',
    'attention': 'model.attention',
    'batch': 'train.batch_size',
    'lr': 'train.learning_rate',
    'steps': 'train.num_steps',
    'epochs': 'train.num_epochs',
    'seed': 'train.seed',
    'minutes': 'train.time_budget_minutes',
    'data': 'data.name',
    'likelihood': 'model.likelihood',
}


def get_config(arg=None):
  """The paper's MNIST DRAW with attention; see configs/mnist_attn.py."""
  config = ml_collections.ConfigDict()
  # 'generate': DRAW (config.model) on the negative ELBO. 'classify': the
  # paper's glimpse classifier (config.classifier, section 4.1).
  config.task = 'generate'

  config.model = ml_collections.ConfigDict(dict(
      T=64, enc_size=256, dec_size=256, z_size=100,
      read_n=2, write_n=5, attention=True,
      # 'bernoulli' (the paper's) or 'discretized_logistic' (8-bit colour).
      likelihood='bernoulli',
      # 'bfloat16' runs the matmuls in bf16; parameters and loss stay float32.
      compute_dtype='float32',
      scan_unroll=1,  # time steps per scan loop trip: speed only
      # What the backward pass keeps per step: 'dots' (fastest on CPU),
      # 'full' (least memory: recompute all but the carry) or 'none'.
      remat='dots'))

  # The glimpse classifier: an LSTM of hidden_size units reads T glimpses of
  # glimpse x glimpse pixels, then a softmax names the class.
  config.classifier = ml_collections.ConfigDict(dict(
      T=8, hidden_size=256, glimpse=12,
      compute_dtype='float32', scan_unroll=1, remat='dots'))

  config.data = ml_collections.ConfigDict(dict(
      # binarized_mnist | mnist (grey) | mnist_two_digit | cluttered_mnist |
      # coloured_mnist | svhn | cifar10; see docs/data.md
      name='binarized_mnist',
      dir='',  # '' -> $DRAW_DATA_DIR -> tensorflow-datasets
      # '' -> the data set's default: none | dynamic | static | intensity
      binarization='',
      max_examples=0,  # > 0: only the first N of each split, for quick runs
      # Scene data sets (cluttered_mnist, mnist_two_digit): each training
      # batch is a new layout, built on the device, as RAM and DRAW trained;
      # False trains on one fixed set of scenes. Valid and test stay fixed.
      fresh_scenes=True,
      num_classes=10,  # for task='classify'
  ))

  config.train = ml_collections.ConfigDict(dict(
      batch_size=128,
      learning_rate=1e-3,
      # 'constant', or 'cosine': from the peak down to
      # lr_end_fraction x peak at the last step.
      lr_schedule='constant',
      lr_end_fraction=0.0,
      # With cosine: the cosine takes the rate down over this last fraction
      # of the run; before it the rate stays at the peak.
      lr_decay_fraction=1.0,
      # ((step, factor), ...): from each step on, the rate is multiplied by
      # its factor, on top of the schedule; e.g. ((3900, 0.5),) halves it.
      lr_drops=(),
      warmup_steps=0,
      grad_clip_norm=10.0,  # global-norm clipping
      # > 0 (DRAW only): train on reconstruction + beta x KL, beta rising
      # linearly from 0 to 1 over these steps (KL warm-up, Sonderby et al.
      # 2016), so that latent units start in use. Evaluation is always the
      # plain -ELBO.
      kl_warmup_steps=0,
      num_steps=100_000,
      num_epochs=0,  # > 0: train this many epochs, overriding num_steps
      time_budget_minutes=0.0,  # > 0: stop (and checkpoint) after this long
      checkpoint_every=1000,
      # > 0: also checkpoint whenever this long has passed since the last one,
      # so an abrupt stop loses at most this much training.
      checkpoint_every_minutes=0.0,
      keep_checkpoints=3,  # the latest N, plus the best by validation ELBO
      eval_every=5000,
      eval_test=False,  # True: each evaluation also reports the test split
      log_every=100,
      seed=0,
      skip_nonfinite_updates=False,  # True: skip and count NaN/Inf updates
      # > 0: also keep an exponential moving average of the parameters with
      # this decay (e.g. 0.999); evaluation, samples, the best checkpoint and
      # what eval, sample and init_from load are then the average's.
      ema_decay=0.0,
      # A workdir or pretrained/ folder whose parameters start a new run (with
      # a fresh optimizer); ignored once the run has checkpoints of its own.
      init_from='',
      # With init_from: also take its step, so the schedule and data order
      # go on where those parameters left off.
      init_continue=False,
  ))

  config.eval = ml_collections.ConfigDict(dict(
      batch_size=1000,  # eval batches divide over up to 8 devices
      iw_samples=0,  # K > 0: also the importance-weighted NLL estimate
      iw_samples_per_pass=100,  # memory ~ batch_size_iw x samples_per_pass
      iw_batch_size=200,
      iw_examples=0,  # > 0: an evenly strided subset of the split, for speed
      split='test',  # for --mode=eval
      step=-1,  # checkpoint step for --mode=eval/sample; -1 is the latest
  ))

  config.sample = ml_collections.ConfigDict(dict(
      num_samples=64,
      seed=0,
      upscale=4,
      outputs='grid,evolution,gif,reconstruction,filters',
      gif_frame_seconds=0.1,
      gif_hold_frames=10,
  ))

  config.lock()
  return apply_overrides(config, arg)


def apply_overrides(config, arg):
  """Applies 'name=value,name=value' from the config file's argument."""
  if not arg:
    return config
  for assignment in arg.split(','):
    name, separator, text = assignment.partition('=')
    if not separator:
      raise ValueError(f'config argument {assignment!r} is not name=value')
    path = SHORT_NAMES.get(name.strip(), name.strip())
    group_name, _, field = path.rpartition('.')
    group = config
    for part in filter(None, group_name.split('.')):
      group = group[part]
    try:
      value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
      value = text.strip()  # a bare string such as attention=..., name=mnist
    group[field] = value  # locked ConfigDict: unknown names and types raise
  return config
