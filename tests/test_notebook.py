"""The notebooks run top to bottom on CPU with a tiny config."""

import pytest

from conftest import REPO


def _execute(name: str, monkeypatch, **environment):
  """Runs notebooks/<name> in a kernel; returns it and its code outputs."""
  nbformat = pytest.importorskip('nbformat')
  nbclient = pytest.importorskip('nbclient')
  for key, value in environment.items():
    monkeypatch.setenv(key, str(value))
  notebook = nbformat.read(REPO / 'notebooks' / name, as_version=4)
  client = nbclient.NotebookClient(
      notebook, timeout=600, kernel_name='python3',
      resources={'metadata': {'path': str(REPO / 'notebooks')}})
  client.execute()
  outputs = [o for cell in notebook.cells if cell.cell_type == 'code'
             for o in cell.get('outputs', [])]
  assert not [o for o in outputs if o.output_type == 'error']
  return notebook, outputs


def test_colab_notebook_executes_on_cpu(data_dir, tmp_path, monkeypatch):
  _, outputs = _execute('colab_tpu.ipynb', monkeypatch,
                        MIXAE_NOTEBOOK_TINY=1, MIXAE_DATA_DIR=data_dir,
                        MIXAE_NOTEBOOK_WORKDIR=tmp_path / 'run')
  assert any('image/png' in o.get('data', {}) for o in outputs)  # The grid.
  assert (tmp_path / 'run' / 'eval' / 'metrics.json').is_file()
  text = ''.join(o.get('text', '') for o in outputs)
  assert '(1, 32, 32, 3) (1, 32, 32, 3)' in text
  assert f'workdir: {tmp_path / "run"}' in text


def test_walkthrough_executes_its_seven_steps(data_dir, tmp_path, monkeypatch):
  notebook, outputs = _execute('walkthrough.ipynb', monkeypatch,
                               MIXAE_WALKTHROUGH_TINY=1,
                               MIXAE_DATA_DIR=data_dir,
                               MIXAE_WALKTHROUGH_WORKDIR=tmp_path / 'run')
  headings = [c.source.split('.')[0] for c in notebook.cells
              if c.cell_type == 'markdown' and c.source.startswith('## ')]
  assert headings == [f'## {i}' for i in range(1, 8)]
  # Every step shows a picture or numbers: six figures and the live curve.
  assert len([o for o in outputs if 'image/png' in o.get('data', {})]) >= 6
  text = ''.join(o.get('text', '') for o in outputs)
  assert 'Total Parameters' in text  # The encoder and decoders' table.
  assert 'mixture as answer' in text and 'pretrained/dual' in text
  assert (tmp_path / 'run' / 'eval' / 'metrics.json').is_file()
