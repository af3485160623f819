"""notebooks/draw_jax_demo.ipynb: committed clean, and runs top to bottom."""
import pathlib

import nbclient
import nbformat

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO_ROOT / 'notebooks' / 'draw_jax_demo.ipynb'
# The smoke run's slowest cell (training, with compilation) takes well under a
# minute on a CPU; this bound only stops a hung kernel.
CELL_TIMEOUT_S = 300
IMAGE_MIMES = {'image/png', 'image/gif'}


def _code_cells(notebook):
  return [cell for cell in notebook.cells if cell.cell_type == 'code']


def test_notebook_is_stored_without_outputs():
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(notebook)
  cells = _code_cells(notebook)
  assert 'parameters' in cells[0].metadata.get('tags', [])
  assert 'DRAW_NOTEBOOK_SMOKE' in cells[0].source
  for cell in cells:
    assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def test_notebook_runs_in_smoke_size(data_dir, tmp_path, monkeypatch):
  monkeypatch.setenv('DRAW_NOTEBOOK_SMOKE', '1')
  monkeypatch.setenv('DRAW_DATA_DIR', data_dir)
  monkeypatch.delenv('DRAW_NOTEBOOK_WORKDIR', raising=False)
  # The notebook's tempfile.mkdtemp() lands here, so pytest removes the run.
  monkeypatch.setenv('TMPDIR', str(tmp_path))
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(
      notebook, timeout=CELL_TIMEOUT_S, kernel_name='python3',
      resources={'metadata': {'path': str(REPO_ROOT)}})
  client.execute()  # raises CellExecutionError, with the cell, on any error

  outputs = [output for cell in _code_cells(notebook) for output in cell.outputs]
  assert not [output for output in outputs if output.output_type == 'error']
  mimes = {mime for output in outputs for mime in output.get('data', {})}
  assert mimes & IMAGE_MIMES, f'no image among the outputs ({sorted(mimes)})'
  # The run went to a temporary folder, and wrote its samples at step 5.
  workdirs = list(tmp_path.glob('draw_jax_demo_*'))
  assert len(workdirs) == 1, workdirs
  assert (workdirs[0] / 'samples' / 'step_5' / 'samples.gif').is_file()
