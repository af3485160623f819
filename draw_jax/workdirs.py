"""The training workdir: created, proved writable, locked, its disk checked,
and the signals that stop a run in it.

The lock is an fcntl.flock on workdir/.lock, which the kernel drops when its
process ends however it ends, so a run killed with -9 leaves no stale lock.
"""
import contextlib
import errno
import fcntl
import os
import shutil
import signal
import socket
import sys
import threading
import warnings

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


@contextlib.contextmanager
def training_in(workdir, is_chief=True):
  """Holds workdir for a training run: created, proved writable, locked.

  Multi-process runs lock on their first process only.
  """
  prepare(workdir)
  with Lock(workdir) if is_chief else contextlib.nullcontext():
    yield


class StopSignals:
  """Turns SIGTERM (preemption) and SIGINT (Ctrl-C) into checkpoint-and-exit.

  A second signal while that checkpoint is written exits at once: Orbax
  writes into a temporary folder and renames it only when complete, so the
  half-written step is never taken for a checkpoint. A context manager: the
  previous handlers come back on leaving it.
  """
  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received = None  # the name of the first signal
    self._previous = {}
    try:
      for signum in self.SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    except ValueError:  # not the main thread: leave signals alone
      pass

  def _handle(self, signum, frame):
    del frame
    name = signal.Signals(signum).name
    if self.received:
      os.write(2, f'error: second {name} while checkpointing: exiting now; the '
                  'checkpoints already complete are kept\n'.encode())
      os._exit(128 + signum)  # pylint: disable=protected-access
    self.received = name

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)


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
  Inside, while the disk is full, what a failed save leaves behind in
  background threads is left to that one line, not printed as tracebacks.
  """
  def disk_is_full():
    return free_bytes(workdir) < checkpoint_bytes + _HEADROOM_BYTES

  with _background_errors_dropped(
      lambda error, thread: disk_is_full() and _failed_save_noise(error,
                                                                  thread)):
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
          f'complete checkpoint, step {newest_checkpoint()}, is kept: free '
          'some space, or move the workdir to a roomier disk, and run the same '
          'command to resume') from None


def quiet_failed_save():
  """Once a full disk is reported, what the failed save leaves behind, found
  as the process ends, prints nothing after the one error line."""
  _drop_background_errors(_failed_save_noise)
  warnings.filterwarnings('ignore', 'coroutine .* was never awaited',
                          RuntimeWarning)


def _failed_save_noise(error, thread=None):
  """A save cut short by a full disk: its own errors, TensorStore's callbacks
  into Orbax's closed event loop, TensorBoard's writer thread losing its queue."""
  return (is_disk_full(error) or
          (isinstance(error, RuntimeError) and
           str(error) == 'Event loop is closed') or
          type(thread).__name__ == '_EventLoggerThread')


def _drop_background_errors(dropped):
  """Background threads' and unraisable errors for which dropped(error,
  thread) is True print nothing; returns what puts the previous hooks back."""
  previous_unraisable, previous_thread = sys.unraisablehook, threading.excepthook

  def unraisable(info):
    if not dropped(info.exc_value, None):
      previous_unraisable(info)

  def thread(info):
    if not dropped(info.exc_value, info.thread):
      previous_thread(info)

  sys.unraisablehook, threading.excepthook = unraisable, thread

  def put_back():
    sys.unraisablehook, threading.excepthook = (previous_unraisable,
                                                previous_thread)
  return put_back


@contextlib.contextmanager
def _background_errors_dropped(dropped):
  put_back = _drop_background_errors(dropped)
  try:
    yield
  finally:
    put_back()
