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
