"""notebooks/colab_tpu.ipynb runs top to bottom on CPU with a tiny config."""


import pytest

from conftest import REPO


def test_colab_notebook_executes_on_cpu(data_dir, tmp_path, monkeypatch):
  nbformat = pytest.importorskip('nbformat')
  nbclient = pytest.importorskip('nbclient')
  monkeypatch.setenv('MIXAE_NOTEBOOK_TINY', '1')
  monkeypatch.setenv('MIXAE_DATA_DIR', str(data_dir))
  monkeypatch.setenv('MIXAE_NOTEBOOK_WORKDIR', str(tmp_path / 'run'))
  notebook = nbformat.read(REPO / 'notebooks' / 'colab_tpu.ipynb', as_version=4)
  client = nbclient.NotebookClient(notebook, timeout=600, kernel_name='python3',
                                   resources={'metadata': {'path': str(REPO / 'notebooks')}})
  client.execute()
  outputs = [o for cell in notebook.cells if cell.cell_type == 'code'
             for o in cell.get('outputs', [])]
  assert not [o for o in outputs if o.output_type == 'error']
  assert any('image/png' in o.get('data', {}) for o in outputs)  # The sample grid.
  assert (tmp_path / 'run' / 'eval' / 'metrics.json').is_file()
  text = ''.join(o.get('text', '') for o in outputs)
  assert '(1, 32, 32, 3) (1, 32, 32, 3)' in text
