"""The HTML reports of a small Optuna study and a small grid search, in headless Chromium.

Every embedded image decodes (``naturalWidth > 0``), the page logs no console
error and raises none, and the per-epoch curve figure's alt text names both
training and validation.
"""

import json
import re
import shutil
import subprocess

import numpy as np
import optuna
import pytest

import tunekit as tk
from tunekit.report import write_report

optuna.logging.set_verbosity(optuna.logging.WARNING)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Installed first in <head>: console errors, uncaught errors and failed image loads are kept.
_CATCH = """<script>
window.__errors = [];
var __error = console.error;
console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, " "));
  __error.apply(console, arguments);
};
window.addEventListener("error", function (e) {
  window.__errors.push(e.message || ("failed to load " + (e.target && e.target.tagName)));
}, true);
</script>"""

_PROBE = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {alt: img.alt, width: img.complete ? img.naturalWidth : -1};
  });
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({images: images, errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


def _render(binary, html_path, tmp_path):
    page = html_path.read_text(encoding="utf-8")
    page = page.replace("<head>", "<head>" + _CATCH, 1).replace("</body>", _PROBE + "</body>")
    probed = tmp_path / f"probed-{html_path.parent.name}.html"
    probed.write_text(page, encoding="utf-8")
    command = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=5000", "--dump-dom", probed.as_uri(),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.skip("chromium did not finish in 120 s")
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")), console


def _data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3)).astype("float32")
    y = (X[:, 0] - X[:, 2] > 0).astype(int)
    return X, y


@pytest.mark.parametrize("strategy", ["optuna", "grid"])
def test_the_html_report_renders_every_figure(strategy, tmp_path):
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("no chromium binary found")
    X, y = _data()
    clf = tk.KerasClassifier(tk.builders.mlp, model__hidden=(4,), epochs=3, batch_size=16,
                             random_state=0, verbose=0)  # fmt: skip
    extra = {"n_trials": 3} if strategy == "optuna" else {}
    result = tk.search(
        clf, X, y, space={"model__l2": tk.Choice([0.0, 0.01, 0.1])}, strategy=strategy, cv=2,
        test_size=None, verbose=0, baselines=False, **extra,
    )  # fmt: skip
    written = write_report(result, tmp_path / strategy)
    data, console = _render(binary, written["html"], tmp_path)
    widths = [image["width"] for image in data["images"]]
    assert len(widths) >= 3 and all(w > 0 for w in widths), data["images"]
    assert data["errors"] == [] and not [c for c in console if "rror" in c], (data, console)
    curves = [i["alt"] for i in data["images"] if "per epoch" in i["alt"]]
    assert len(curves) == 1, data["images"]
    assert "Training" in curves[0] and "validation" in curves[0]
    if strategy == "optuna":
        alts = " ".join(i["alt"] for i in data["images"])
        assert "(Optuna)" in alts and "Optimization history" in alts
