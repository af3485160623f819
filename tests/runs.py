"""The program's three modes on a ConfigDict, in process, as main runs them."""
from draw_jax import checkpoints
from draw_jax import evaluate as evaluate_lib
from draw_jax import pictures
from draw_jax import settings
from draw_jax import train as train_lib


def train(config, workdir):
  return train_lib.train_and_evaluate(settings.parse(config), str(workdir))


def loaded(config, workdir):
  """(settings, the run in workdir), as --mode=eval and --mode=sample load it."""
  parsed = settings.parse(config)
  return parsed, checkpoints.load_trained(parsed.model, str(workdir),
                                          parsed.eval.step)


def evaluate(config, workdir):
  parsed, run = loaded(config, workdir)
  return evaluate_lib.evaluate(run, parsed, str(workdir))


def sample(config, workdir):
  parsed, run = loaded(config, workdir)
  return pictures.sample(run, parsed, str(workdir))
