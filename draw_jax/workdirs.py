"""The training workdir: created, proved writable, locked, and its disk checked.

The lock is an fcntl.flock on workdir/.lock, which the kernel drops when its
process ends however it ends, so a run killed with -9 leaves no stale lock.
"""
import contextlib
import errno
import fcntl
import os
import shutil
import socket

from absl import logging

LOCK_FILE = '.lock'
# Free space a run needs beyond the checkpoints it is about to write: metrics,
# TensorBoard events and the pictures of one evaluation.
_HEADROOM_BYTES = 4 << 20


class WorkdirError(OSError):
  """The workdir cannot be created, written or locked."""


class DiskFullError(OSError):
  """The workdir's disk cannot hold what training must write."""


def prepare(workdir):
  """Creates workdir and proves it writable before any training time is spent."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f'.write_test_{os.getpid()}')
    with open(probe, 'w') as f:
      f.write('ok')
    os.remove(probe)
  except OSError as error:
    raise WorkdirError(f'workdir {workdir} is not writable: {error.strerror}') from None


class Lock:
  """An exclusive lock on the workdir for the life of the process."""

  def __init__(self, workdir):
    self._path = os.path.join(workdir, LOCK_FILE)
    self._file = None

  def acquire(self):
    handle = open(self._path, 'a+')
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      handle.seek(0)
      holder = handle.read().strip() or 'another process'
      handle.close()
      raise WorkdirError(
          f'workdir {os.path.dirname(self._path)} is in use by {holder}; wait '
          'for that run to end (or stop it), or use another --workdir') from None
    except OSError as error:
      if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
        raise
      logging.warning('the filesystem of %s has no flock (%s): two runs on this '
                      'workdir would not be stopped', self._path, error.strerror)
    handle.seek(0)
    handle.truncate()
    handle.write(f'process {os.getpid()} on {socket.gethostname()}\n')
    handle.flush()
    self._file = handle
    return self

  def release(self):
    if self._file is not None:
      self._file.close()  # closing drops the flock
      self._file = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc_info):
    self.release()


def free_bytes(workdir):
  return shutil.disk_usage(workdir).free


def check_space(workdir, checkpoint_bytes, checkpoints=2, newest=None):
  """Raises DiskFullError unless the disk holds `checkpoints` more of them."""
  needed = checkpoints * checkpoint_bytes + _HEADROOM_BYTES
  free = free_bytes(workdir)
  if free < needed:
    kept = '' if newest is None else (
        f'; the newest complete checkpoint, step {newest}, is kept')
    raise DiskFullError(
        f'the disk of workdir {workdir} has {_mb(free)} free; training needs '
        f'{_mb(needed)} ({checkpoints} checkpoint(s) of '
        f'{_mb(checkpoint_bytes)} and room for metrics){kept}. Free some space '
        'or use another --workdir, and run the same command to resume')


def _mb(count):
  return f'{count / 2**20:.1f} MB'


def is_disk_full(error):
  """True if error, or one it was raised from, is the disk filling up."""
  while error is not None:
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
      return True
    if 'No space left on device' in str(error):  # TensorStore's wording
      return True
    error = error.__cause__ or error.__context__
  return False


@contextlib.contextmanager
def full_disk_reported(workdir, checkpoint_bytes, newest_checkpoint):
  """Turns a full disk, raised anywhere inside, into one DiskFullError line.

  newest_checkpoint() names the newest complete step, which stays as it was.
  """
  try:
    yield
  except DiskFullError:
    raise
  except Exception as error:  # pylint: disable=broad-except
    if not is_disk_full(error):
      raise
    raise DiskFullError(
        f'the disk of workdir {workdir} is full ({_mb(free_bytes(workdir))} '
        f'free; a checkpoint needs {_mb(checkpoint_bytes)}). The newest '
        f'complete checkpoint, step {newest_checkpoint()}, is kept: free some '
        'space, or move the workdir to a roomier disk, and run the same command '
        'to resume') from None
