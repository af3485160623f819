"""Metrics to TensorBoard event files and to metrics.jsonl in the workdir,
and the trainer's progress line.

tensorboardX writes the event files without importing TensorFlow.
"""
import json
import os
import time

from absl import logging

import numpy as np
import tensorboardX


class MetricWriter:
  """Writes scalars and images; a no-op on every process but the first."""

  def __init__(self, workdir, enabled=True):
    self.enabled = enabled
    if not enabled:
      return
    self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')
    self._started = time.time()
    self._tensorboard = tensorboardX.SummaryWriter(
        os.path.join(workdir, 'tensorboard'))

  def scalars(self, step, scalars):
    if not self.enabled:
      return
    values = {name: float(value) for name, value in scalars.items()}
    # Seconds since this process started: wall time summed over resumes.
    seconds = round(time.time() - self._started, 1)
    self._jsonl.write(json.dumps(dict(step=int(step), **values,
                                      process_seconds=seconds)) + '\n')
    self._jsonl.flush()
    for name, value in values.items():
      self._tensorboard.add_scalar(name, value, int(step))

  def image(self, step, name, image_uint8):
    if self.enabled:
      self._tensorboard.add_image(name, np.asarray(image_uint8), int(step),
                                  dataformats='HWC')

  def flush(self):
    if self.enabled:
      self._jsonl.flush()
      self._tensorboard.flush()

  def close(self):
    if self.enabled:
      self._jsonl.close()
      self._tensorboard.close()


# Logged to metrics.jsonl and TensorBoard, left out of the progress line.
_NOT_SHOWN = ('train_loss', 'train_grad_norm', 'train_param_norm')


class Progress:
  """Averages step metrics and logs one progress line, with an ETA, per report."""

  def __init__(self, writer, total_steps, batch_size, first_step):
    self._total = total_steps
    self._writer = writer
    self._batch = batch_size
    self._sums = {}
    self._count = 0
    self._since = time.time()
    self._steps_at_since = first_step

  def add(self, step_metrics):
    for name, value in step_metrics.items():
      self._sums[name] = self._sums.get(name, 0.0) + float(value)
    self._count += 1

  def leave_out(self, seconds):
    """Leaves evaluation and sampling time out of the next steps/s figure."""
    self._since += seconds

  def report(self, step, extra=None):
    if not self._count:
      return
    elapsed = time.time() - self._since
    steps_per_sec = (step - self._steps_at_since) / max(elapsed, 1e-9)
    means = {f'train_{name}': value / self._count
             for name, value in self._sums.items()}
    means.update(steps_per_sec=steps_per_sec,
                 images_per_sec=steps_per_sec * self._batch, **(extra or {}))
    self._writer.scalars(step, means)
    remaining = (self._total - step) / max(steps_per_sec, 1e-9)
    parts = ', '.join(f'{name[len("train_"):]} {value:.4g}'
                      for name, value in means.items()
                      if name.startswith('train_') and name not in _NOT_SHOWN)
    logging.info('step %d/%d | %.2f steps/s | %.0f img/s | loss %.2f (%s) | '
                 '%s left', step, self._total, steps_per_sec,
                 means['images_per_sec'], means['train_loss'], parts,
                 _duration(remaining))
    self._sums, self._count = {}, 0
    self._since, self._steps_at_since = time.time(), step


def _duration(seconds):
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f'{hours}h{minutes:02d}m{seconds:02d}s'


def format_values(values):
  """name=value, ... with 4 significant digits, for log lines and errors."""
  return ', '.join(f'{k}={float(v):.4g}' for k, v in values.items())
