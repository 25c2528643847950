"The notebooks are the source of truth: exporting them must not change the committed library."
import shutil, subprocess, sys
from pathlib import Path
import pytest
ROOT = Path(__file__).resolve().parents[1]

def test_nbdev_export_leaves_library_unchanged(tmp_path):
    if not (ROOT / '.git').exists(): pytest.skip('not a git checkout')
    exe = Path(sys.executable).with_name('nbdev_export')
    before = subprocess.run(['git', 'status', '--porcelain', '--', 'droppos_nb', 'nbs'], cwd=ROOT, capture_output=True, text=True).stdout
    subprocess.run([str(exe)], cwd=ROOT, check=True, capture_output=True)
    after = subprocess.run(['git', 'status', '--porcelain', '--', 'droppos_nb', 'nbs'], cwd=ROOT, capture_output=True, text=True).stdout
    assert after == before, f"nbdev_export changed the library; export and commit the notebooks and modules together:\n{after}"

NOTEBOOKS = sorted(p for p in (ROOT / 'nbs').rglob('*.ipynb') if '.ipynb_checkpoints' not in p.parts)

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT / 'nbs')))
def test_jupyterlab_save_leaves_notebook_unchanged(nb):
    """Open and save in JupyterLab, simulated: Lab rewrites the kernel's display name and adds `language_info`, then the
    pre-save hook that `nbdev_install_hooks` installs (on: `jupyter_hooks = True` in settings.ini) cleans the notebook,
    and Jupyter writes it with nbformat. The file must come out byte-identical, so git sees no change."""
    import nbformat
    from nbdev.clean import clean_jupyter
    from nbdev.config import get_config
    assert get_config(path=ROOT).jupyter_hooks, "settings.ini must set jupyter_hooks = True"
    txt = nb.read_text()
    content = nbformat.reads(txt, as_version=nbformat.NO_CONVERT)
    content.metadata.kernelspec = dict(display_name='Python 3 (ipykernel)', language='python', name='python3')
    content.metadata.language_info = dict(name='python', version='3.11.7', mimetype='text/x-python', file_extension='.py')
    clean_jupyter(path=str(nb), model=dict(type='notebook', content=content))
    saved = nbformat.writes(content, version=nbformat.NO_CONVERT) + '\n'
    assert saved == txt, f"{nb.name} changes when JupyterLab saves it: run nbdev_clean after writing it with nbformat"
