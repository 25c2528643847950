import os, sys, subprocess
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault('MPLBACKEND', 'Agg')

def cli(*args, timeout=600):
    "Run the installed `droppos_nb` command; returns the CompletedProcess."
    exe = Path(sys.executable).with_name('droppos_nb')
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)

@pytest.fixture
def run_cli(): return cli
