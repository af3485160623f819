"""The program end to end on real data: train, resume, eval, sample, errors."""
import json
import os
import pathlib
import struct
import subprocess
import sys

import imageio.v3 as iio
import jax
import numpy as np
import pytest
from tensorboardX.proto import event_pb2

import dataclasses

import runs
from configs import cluttered_mnist_cls
from configs import smoke
from draw_jax import datasets
from draw_jax import checkpoints
from draw_jax import evaluate
from draw_jax import input_pipeline
from draw_jax import settings
from draw_jax import sharding
from draw_jax import train
from draw_jax import train_state
from draw_jax import workdirs

REPO = pathlib.Path(__file__).resolve().parents[1]


def _config(data_dir, arg=None, **train_fields):
  config = smoke.get_config(arg)
  config.data.dir = data_dir
  config.train.update(train_fields)
  return config


def _quick_config(data_dir, arg=None, **train_fields):
  """_config for tests about training alone: its end-of-run work kept small."""
  config = _config(data_dir, arg, **train_fields)
  config.data.max_examples = 1000  # evaluating 2 x 10,000 images is seconds
  config.eval.iw_samples = 0
  config.sample.outputs = 'grid'
  return config


def _leaves(state):
  return [np.asarray(leaf) for leaf in jax.tree.leaves(state['params'])]


def _read_events(path):
  """Decodes a TensorBoard event file (TFRecord framing) into Event protos."""
  events, data = [], path.read_bytes()
  offset = 0
  while offset < len(data):
    (length,) = struct.unpack('<Q', data[offset:offset + 8])
    record = data[offset + 12:offset + 12 + length]
    events.append(event_pb2.Event.FromString(record))
    offset += 12 + length + 4
  return events


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp('smoke')
  config = _config(data_dir)
  state = runs.train(config, str(workdir))
  return config, workdir, state


def test_training_writes_every_artefact(trained):
  config, workdir, state = trained
  assert int(state['step']) == config.train.num_steps
  assert set(os.listdir(workdir / 'checkpoints')) >= {'10', '20'}
  lines = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  train_lines = [line for line in lines if 'train_loss' in line]
  assert [line['step'] for line in train_lines] == [5, 10, 15, 20]
  assert all(np.isfinite(line['train_loss']) for line in train_lines)
  # The rate the updates used, averaged over each window like the rest.
  assert [line['train_learning_rate'] for line in train_lines] == pytest.approx(
      [config.train.learning_rate] * 4)
  assert any('valid_neg_elbo' in line for line in lines)
  events = _read_events(next((workdir / 'tensorboard').glob('events.out.tfevents.*')))
  tags = {value.tag for event in events for value in event.summary.value}
  assert {'train_loss', 'valid_neg_elbo', 'samples'} <= tags
  samples = workdir / 'samples' / 'step_20'
  grid = iio.imread(samples / 'samples.png')
  assert grid.ndim == 3 and grid.shape[-1] == 3 and grid.dtype == np.uint8
  frames = iio.imread(samples / 'samples.gif', index=None)
  assert 1 < frames.shape[0] <= config.model.T
  saved_config = json.loads((workdir / 'config.json').read_text())
  assert saved_config['model']['T'] == config.model.T
  final = json.loads((workdir / 'eval_20.json').read_text())
  assert np.isfinite(final['test_neg_elbo']) and final['test_neg_elbo'] > 0


def test_resume_gives_the_same_parameters(tmp_path, data_dir):
  straight = runs.train(
      _quick_config(data_dir, num_steps=12, checkpoint_every=6, eval_every=100),
      str(tmp_path / 'straight'))
  runs.train(
      _quick_config(data_dir, num_steps=6, checkpoint_every=6, eval_every=100),
      str(tmp_path / 'resumed'))
  resumed = runs.train(
      _quick_config(data_dir, num_steps=12, checkpoint_every=6, eval_every=100),
      str(tmp_path / 'resumed'))
  assert int(resumed['step']) == 12
  for a, b in zip(_leaves(straight), _leaves(resumed)):
    np.testing.assert_array_equal(a, b)


def test_same_seed_is_bit_identical_and_another_seed_differs(tmp_path, data_dir):
  states = [runs.train(_quick_config(data_dir, num_steps=3, seed=seed,
                                      eval_every=100), tmp_path / f'run{i}')
            for i, seed in enumerate((0, 0, 1))]
  for a, b in zip(_leaves(states[0]), _leaves(states[1])):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b)
             for a, b in zip(_leaves(states[0]), _leaves(states[2])))


def test_seeds_share_their_compiled_programs(data_dir):
  """The seed reaches the programs as keys, not constants: one compile serves
  a sweep over seeds (and the persistent cache serves their reruns)."""
  programs = []
  for seed in (0, 1):
    run = settings.parse(_quick_config(data_dir, seed=seed))
    splits = datasets.load_splits(run.data.name, data_dir, 1000)
    training = train.build_training(run, splits)
    order = training.epoch_order(0)
    evaluator = evaluate.Evaluator(run, training.graphdef, training.mesh)
    data = input_pipeline.on_devices(splits.valid, None, training.mesh,
                                     run.eval.batch_size)
    programs.append([
        training.train_step.lower(training.state, training.train_data, order,
                                  training.train_key).as_text(),
        training.epoch_order.func.lower(training.epoch_order.args[0],
                                        0).as_text(),
        evaluator._terms_batch.lower(training.state['params'], data,
                                     evaluator._key, 0, run.eval.batch_size,
                                     1000).as_text()])
  for program, other in zip(*programs):
    assert program == other


def test_eval_mode_iw_bound_is_no_worse_than_elbo(trained):
  config, workdir, _ = trained
  config = _config(config.data.dir)
  config.data.max_examples = 500  # iw_examples=0: all of this 500-image split
  config.eval.update(iw_samples=8, iw_examples=0, split='valid')
  trainers_own = (workdir / 'eval_20.json').read_text()
  results = runs.evaluate(config, workdir)
  assert np.isfinite(results['valid_neg_elbo'])
  assert np.isfinite(results['valid_iw8_nll'])
  assert results['valid_iw8_nll'] <= results['valid_neg_elbo']
  written = json.loads((workdir / 'eval_20_valid_iw8.json').read_text())
  assert written['valid_iw8_nll'] == pytest.approx(results['valid_iw8_nll'])
  # Evaluating again adds a file: neither result nor the trainer's is lost.
  runs.evaluate(config, workdir)
  assert (workdir / 'eval_20_valid_iw8_2.json').exists()
  assert json.loads((workdir / 'eval_20_valid_iw8.json').read_text()) == written
  assert (workdir / 'eval_20.json').read_text() == trainers_own


def test_sample_mode_writes_decodable_images(trained):
  config, workdir, _ = trained
  config = _config(config.data.dir)
  config.sample.num_samples = 100  # more than one GIF holds: chunked generation
  paths = runs.sample(config, workdir)
  assert set(paths) == {'grid', 'evolution', 'gif', 'reconstruction',
                        'read_filters', 'write_filters'}
  grid = iio.imread(paths['grid'])
  assert grid.shape[0] > 10 * 28  # a 10 x 10 grid
  for name in ('gif', 'reconstruction'):
    assert iio.imread(paths[name], index=None).shape[0] > 1


def test_batch_indices_cover_each_epoch_once():
  mesh = sharding.make_mesh()
  epoch_order = input_pipeline.make_epoch_order(jax.random.key(0), 100, mesh)
  first = epoch_order(0)
  seen = np.concatenate([np.asarray(input_pipeline.batch_indices(step, first,
                                                                 10))
                         for step in range(10)])
  np.testing.assert_array_equal(np.sort(seen), np.arange(100))
  # Step 10 starts epoch 1: a new shuffle, the same for the same key.
  assert not np.array_equal(np.asarray(epoch_order(1)), np.asarray(first))
  np.testing.assert_array_equal(epoch_order(1), epoch_order(1))
  assert input_pipeline.steps_per_epoch(105, 10) == 10


# ---- bad input: a clear error, and the workdir left as it was -------------


def _snapshot(directory):
  """Every file's mtime, but the lock's, which each run rewrites."""
  return {str(path.relative_to(directory)): path.stat().st_mtime_ns
          for path in pathlib.Path(directory).rglob('*')
          if path.name != workdirs.LOCK_FILE}


@pytest.mark.parametrize('arg,message', [
    ('T=0', 'model.T must be an integer >= 1'),
    ('read=29', 'model.read_n=29 is larger than the 28x28 image'),
    ('write=0', 'model.write_n must be an integer >= 1'),
    ('lr=0.0', 'train.learning_rate must be > 0'),
    ('batch=0', 'train.batch_size must be > 0'),
    ('data.name="cifar"', "data.name='cifar' is unknown"),
    ('data.binarization="otsu"', "data.binarization='otsu' is unknown"),
    ('train.ema_decay=1.0', 'train.ema_decay must be in \\[0, 1\\), got 1.0'),
])
def test_bad_config_values_are_named(arg, message, data_dir, trained):
  _, workdir, _ = trained
  before = _snapshot(workdir)
  with pytest.raises(settings.ConfigError, match=message.replace('(', r'\(')):
    runs.train(_config(data_dir, arg), str(workdir))
  assert _snapshot(workdir) == before


@pytest.mark.parametrize('arg,error', [('nonsense=1', KeyError),
                                       ('T="sixty"', TypeError)])
def test_unknown_field_and_wrong_type_are_refused(arg, error):
  with pytest.raises(error):
    smoke.get_config(arg)


def test_incompatible_checkpoint_is_refused_and_kept(trained, data_dir):
  _, workdir, _ = trained
  before = _snapshot(workdir)
  with pytest.raises(checkpoints.CheckpointMismatchError,
                     match='z_size: checkpoint has 8, config has 9'):
    runs.train(_config(data_dir, 'z=9'), str(workdir))
  assert _snapshot(workdir) == before


def test_missing_data_names_the_file(tmp_path):
  with pytest.raises(datasets.DataError, match='binarized_mnist'):
    runs.train(_config(str(tmp_path / 'empty')), str(tmp_path / 'w'))
  assert not (tmp_path / 'w').exists()


def _run_main(*args, env_data_dir):
  env = dict(os.environ, DRAW_DATA_DIR=env_data_dir, JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', 'draw_jax.main', *args],
                        cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=120)


def test_program_exits_nonzero_with_one_line(tmp_path, data_dir):
  result = _run_main('--config=configs/smoke.py:T=0', f'--workdir={tmp_path}',
                     env_data_dir=data_dir)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      'error: model.T must be an integer >= 1, got 0')
  unknown = _run_main('--config=configs/smoke.py', '--config.model.depth=3',
                      f'--workdir={tmp_path}', env_data_dir=data_dir)
  assert unknown.returncode != 0 and 'depth' in unknown.stderr
  assert list(tmp_path.iterdir()) == []


# ---- the long-run recipe: epochs, schedule, timed checkpoints, init_from ----


def test_num_epochs_sets_the_length_and_the_cosine_reaches_its_floor(
    data_dir, tmp_path):
  run = settings.parse(smoke.get_config(
      'epochs=3,batch=10,train.lr_schedule="cosine",train.warmup_steps=5,'
      'train.lr_end_fraction=0.1'))
  assert input_pipeline.num_steps(run.train, 105) == 30  # 10 whole batches
  schedule = train_state.learning_rate_schedule(run.train, 30)
  peak = run.train.learning_rate
  assert float(schedule(0)) == 0.0
  assert float(schedule(5)) == pytest.approx(peak)
  assert float(schedule(30)) == pytest.approx(0.1 * peak)
  assert float(schedule(17)) < peak
  # lr_drops multiply the schedule from their steps on, cumulatively.
  dropped = dataclasses.replace(run.train, lr_drops=((10, 0.5), (20, 0.1)))
  with_drops = train_state.learning_rate_schedule(dropped, 30)
  for step, factor in ((5, 1.0), (9, 1.0), (10, 0.5), (19, 0.5), (20, 0.05),
                       (29, 0.05)):
    assert float(with_drops(step)) == pytest.approx(factor * float(schedule(step)))
  for drops in (((0, 0.5),), ((20, 0.5), (10, 0.5)), ((10, 0.0),), (10, 0.5),
                ((10.5, 0.5),)):
    config = smoke.get_config()
    config.train.lr_drops = drops
    with pytest.raises(settings.ConfigError, match='train.lr_drops'):
      settings.parse(config)
  # A constant phase, then the cosine over the last third only.
  late = train_state.learning_rate_schedule(
      dataclasses.replace(run.train, lr_decay_fraction=1 / 3), 30)
  assert float(late(5)) == float(late(20)) == pytest.approx(peak)
  assert float(late(25)) == pytest.approx(peak * (0.1 + 0.9 * 0.5))
  assert float(late(30)) == pytest.approx(0.1 * peak)
  for schedule, bad in (('cosine', 0.0), ('cosine', 1.5), ('constant', 0.5),
                        ('cosine', 1e-9)):
    config = smoke.get_config()
    config.train.update(lr_schedule=schedule, lr_decay_fraction=bad)
    with pytest.raises(settings.ConfigError, match='lr_decay_fraction'):
      settings.parse(config)
  by_steps = dataclasses.replace(run.train, num_epochs=0)
  assert input_pipeline.num_steps(by_steps, 105) == by_steps.num_steps
  config = _config(data_dir, 'epochs=1,batch=10', warmup_steps=5)
  config.data.max_examples = 50  # one epoch of 5 steps
  with pytest.raises(settings.ConfigError,
                     match="warmup_steps=5 is not below the run's 5 steps"):
    runs.train(config, tmp_path / 'w')
  assert not (tmp_path / 'w').exists()


def test_num_epochs_ends_the_run_after_whole_epochs(tmp_path, data_dir):
  config = _config(data_dir, 'epochs=2', eval_every=1000)
  config.data.max_examples = 100  # 6 steps of 16 per epoch
  state = runs.train(config, str(tmp_path))
  assert int(state['step']) == 12
  assert (tmp_path / 'eval_12.json').exists()


def test_checkpoints_by_the_clock_as_well_as_by_step(tmp_path, data_dir):
  by_step = _quick_config(data_dir, num_steps=6, checkpoint_every=1000,
                          eval_every=1000, keep_checkpoints=10)
  runs.train(by_step, str(tmp_path / 'by_step'))
  assert os.listdir(tmp_path / 'by_step' / 'checkpoints') == ['6']
  # A clock period shorter than a step: every step is checkpointed.
  by_clock = _quick_config(data_dir, num_steps=6, checkpoint_every=1000,
                           eval_every=1000, keep_checkpoints=10,
                           checkpoint_every_minutes=1e-6)
  runs.train(by_clock, str(tmp_path / 'by_clock'))
  saved = {int(name) for name in os.listdir(tmp_path / 'by_clock' / 'checkpoints')
           if name.isdigit()}
  assert saved == set(range(1, 7))


def test_eval_test_reports_the_test_split_at_each_evaluation(tmp_path, data_dir):
  # No IW bound: else the end adds a test row with the IW NLL.
  config = _quick_config(data_dir, num_steps=10, eval_every=5, eval_test=True)
  runs.train(config, str(tmp_path))
  lines = [json.loads(line)
           for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert [line['step'] for line in lines if 'test_neg_elbo' in line] == [5, 10]
  assert [line['step'] for line in lines if 'valid_neg_elbo' in line] == [5, 10]


def _build(config, workdir):
  splits = datasets.load_splits(config.data.name, config.data.dir,
                                      config.data.max_examples)
  manager = checkpoints.make_manager(str(workdir), config.train.keep_checkpoints)
  try:
    return train.build_training(settings.parse(config), splits, manager)
  finally:
    manager.close()


def test_init_from_starts_from_those_parameters_with_a_fresh_optimizer(
    trained, tmp_path, data_dir):
  source_config, source, source_state = trained
  started = _build(_config(data_dir, init_from=str(source)), tmp_path / 'a')
  assert int(started.state['step']) == 0
  for a, b in zip(_leaves(started.state), _leaves(source_state)):
    np.testing.assert_array_equal(a, b)
  adam = started.state['opt_state'][1][0]
  assert int(adam.count) == 0
  assert all(not np.any(np.asarray(m)) for m in jax.tree.leaves(adam.mu))
  continued = _build(_config(data_dir, init_from=str(source), init_continue=True),
                     tmp_path / 'b')
  assert int(continued.state['step']) == source_config.train.num_steps


def test_init_continue_goes_on_with_the_schedule_and_fresh_moments(
    trained, tmp_path, data_dir):
  # A fresh optimizer's own count would warm up again from 0 and move every
  # decay and drop back by the source's steps.
  source_config, source, _ = trained
  at = source_config.train.num_steps
  config = _config(data_dir, init_from=str(source), init_continue=True,
                   num_steps=4 * at, lr_schedule='cosine', warmup_steps=5,
                   lr_drops=((at + 1, 0.5),))
  continued = _build(config, tmp_path)
  opt_state = continued.state['opt_state']
  assert int(train_state.schedule_count(opt_state)) == at
  assert int(opt_state[1][0].count) == 0  # Adam's bias correction starts over
  schedule = train_state.learning_rate_schedule(settings.parse(config).train,
                                                4 * at)
  rates = []
  state = continued.state
  for _ in range(2):
    state, step_metrics = continued.train_step(
        state, continued.train_data, continued.epoch_order(0),
        continued.train_key)
    rates.append(float(step_metrics['learning_rate']))
  assert rates == pytest.approx([float(schedule(at)), float(schedule(at + 1))])
  assert rates[1] < 0.6 * rates[0]  # the drop at step at + 1 came on time


def test_init_from_is_ignored_once_the_run_has_checkpoints(tmp_path, data_dir,
                                                           trained):
  _, source, _ = trained
  own = runs.train(_quick_config(data_dir, num_steps=3, eval_every=100),
                                 str(tmp_path))
  resumed = _build(_config(data_dir, init_from=str(source)), tmp_path)
  assert int(resumed.state['step']) == 3
  for a, b in zip(_leaves(resumed.state), _leaves(own)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('arg,error,message', [
    ('z=9', checkpoints.CheckpointMismatchError,
     'z_size: checkpoint has 8, config has 9'),
    ('', FileNotFoundError, 'train.init_from=.*holds no checkpoints'),
])
def test_init_from_a_wrong_source_is_named(arg, error, message, trained,
                                           tmp_path, data_dir):
  _, source, _ = trained
  init_from = str(source) if arg else str(tmp_path / 'nothing')
  with pytest.raises(error, match=message):
    runs.train(_config(data_dir, arg, init_from=init_from),
                             str(tmp_path / 'w'))
  assert not (tmp_path / 'w' / 'checkpoints').exists() or not os.listdir(
      tmp_path / 'w' / 'checkpoints')


def test_the_best_checkpoint_is_known_from_the_disk_after_the_run(tmp_path,
                                                                  data_dir):
  runs.train(_config(data_dir, num_steps=6, eval_every=2, checkpoint_every=1,
                     keep_checkpoints=1), tmp_path)
  valid = {row['step']: row['valid_neg_elbo'] for row in map(
      json.loads, (tmp_path / 'metrics.jsonl').read_text().splitlines())
           if 'valid_neg_elbo' in row}
  assert sorted(valid) == [2, 4, 6]
  best = min(valid, key=valid.get)
  # A new process (a resumed run, an export) reads the metrics from the disk.
  manager = checkpoints.make_manager(str(tmp_path), read_only=True)
  assert manager.best_step() == best
  assert manager.metrics(best)[checkpoints.RANKING_KEY] == pytest.approx(
      valid[best])
  assert set(manager.all_steps()) == {best, 6}


def _ema_leaves(state):
  return [np.asarray(leaf) for leaf in
          jax.tree.leaves(state[train_state.EMA])]


def _assert_leaves_equal(got, want):
  assert len(got) == len(want)
  for a, b in zip(got, want):
    np.testing.assert_array_equal(a, b)


def test_kl_warmup_weighs_the_kl_from_zero_and_evaluates_the_plain_elbo(
    tmp_path, data_dir):
  config = _quick_config(data_dir, num_steps=4, eval_every=4, log_every=1,
                         kl_warmup_steps=2)
  runs.train(config, tmp_path)
  rows = [json.loads(line) for line in
          (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  trained = [row for row in rows if 'train_loss' in row]
  assert [row['train_kl_weight'] for row in trained] == [0.0, 0.5, 1.0, 1.0]
  for row in trained:
    weighted = (row['train_reconstruction'] +
                row['train_kl_weight'] * row['train_kl'])
    assert row['train_loss'] == pytest.approx(weighted, rel=1e-5)
    assert row['train_neg_elbo'] == pytest.approx(
        row['train_reconstruction'] + row['train_kl'], rel=1e-5)
  evaluated = next(row for row in rows if 'valid_neg_elbo' in row)
  assert evaluated['valid_neg_elbo'] == pytest.approx(
      evaluated['valid_reconstruction'] + evaluated['valid_kl'], rel=1e-5)
  classifier = cluttered_mnist_cls.get_config('train.kl_warmup_steps=5')
  with pytest.raises(settings.ConfigError, match='kl_warmup_steps'):
    settings.parse(classifier)


def test_ema_averages_the_parameters_after_each_update(tmp_path, data_dir):
  decay = 0.9
  built = _build(_quick_config(data_dir, ema_decay=decay), tmp_path)
  state = built.state
  expected = _leaves(state)
  _assert_leaves_equal(_ema_leaves(state), expected)
  for step in range(3):
    state, _ = built.train_step(state, built.train_data, built.epoch_order(0),
                                built.train_key)
    # Ramped up: 0.1, 0.18..., then the full decay would take over.
    d = min(decay, (1 + step) / (10 + step))
    expected = [d * e + (1 - d) * p for e, p in zip(expected, _leaves(state))]
    for got, want in zip(_ema_leaves(state), expected):
      np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  assert any(not np.array_equal(a, b)
             for a, b in zip(_ema_leaves(state), _leaves(state)))


def test_ema_run_is_evaluated_sampled_and_loaded_by_its_average(tmp_path,
                                                                data_dir):
  config = _quick_config(data_dir, num_steps=8, eval_every=8, ema_decay=0.5)
  state = runs.train(config, tmp_path)
  rows = [json.loads(line) for line in
          (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  evaluated = next(row for row in rows if 'valid_neg_elbo' in row)
  params = {name: train_state.model_params(state) if name == 'ema'
            else state['params'] for name in ('ema', 'live')}
  parsed = settings.parse(config)
  splits = datasets.load_splits('binarized_mnist', data_dir, 1000)
  evaluator = evaluate.Evaluator(parsed, train_state.graphdef(parsed.model),
                                 sharding.make_mesh())
  figures = {name: evaluator.split_means(p, splits.valid)['neg_elbo']
             for name, p in params.items()}
  assert figures['ema'] != figures['live']
  assert evaluated['valid_neg_elbo'] == pytest.approx(figures['ema'])
  assert evaluated['live_valid_neg_elbo'] == pytest.approx(figures['live'])
  # --mode=eval, --mode=sample, init_from and the export load the average.
  _, run = runs.loaded(config, tmp_path)
  for got, want in zip(jax.tree.leaves(run.params), _ema_leaves(state)):
    np.testing.assert_array_equal(np.asarray(got), want)
  final = json.loads((tmp_path / 'eval_8.json').read_text())
  assert final['valid_neg_elbo'] == pytest.approx(figures['ema'])


def test_ema_resumes_bit_identically(tmp_path, data_dir):
  def run(num_steps, workdir):
    return runs.train(_quick_config(data_dir, num_steps=num_steps,
                                     checkpoint_every=6, eval_every=100,
                                     ema_decay=0.8), str(tmp_path / workdir))
  straight = run(12, 'straight')
  run(6, 'resumed')
  resumed = run(12, 'resumed')
  for a, b in zip(_ema_leaves(straight), _ema_leaves(resumed)):
    np.testing.assert_array_equal(a, b)


def test_ema_switched_on_and_off_over_a_run_s_checkpoints(tmp_path, data_dir):
  # A checkpoint without an average gets one at its parameters; a checkpoint
  # with one resumes without it, leaving it on the disk.
  plain = runs.train(_quick_config(data_dir, num_steps=3, eval_every=100),
                     str(tmp_path))
  switched_on = _build(_quick_config(data_dir, ema_decay=0.9), tmp_path)
  assert int(switched_on.state['step']) == 3
  _assert_leaves_equal(_ema_leaves(switched_on.state), _leaves(plain))
  with_ema = runs.train(_quick_config(data_dir, num_steps=6, eval_every=100,
                                      ema_decay=0.9), str(tmp_path))
  switched_off = _build(_quick_config(data_dir), tmp_path)
  assert int(switched_off.state['step']) == 6
  assert train_state.EMA not in switched_off.state
  for a, b in zip(_leaves(switched_off.state), _leaves(with_ema)):
    np.testing.assert_array_equal(a, b)
