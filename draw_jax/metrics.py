"""Metrics to TensorBoard event files and to metrics.jsonl in the workdir.

tensorboardX writes the event files without importing TensorFlow.
"""
import json
import os
import time

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
