import pytest

from equissl.errors import UserError
from equissl.reports import plot_sensitivity

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEGREES = [0.0, 90.0, 180.0]


def test_plot_sensitivity_writes_png(tmp_path):
    curves = {
        "care": {"degrees": DEGREES, "emb": [1.0, 0.6, 0.4], "feat": [1.0, 0.8, 0.7]},
        "simclr": {"degrees": DEGREES, "emb": [1.0, 0.99, 0.98], "feat": [1.0, 0.9, 0.9]},
    }
    out = plot_sensitivity(curves, tmp_path / "sub" / "hue.png")
    assert out == tmp_path / "sub" / "hue.png"
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    # one space only, chosen explicitly
    single = {"run": {"degrees": DEGREES, "feat": [1.0, 0.5, 0.2]}}
    out = plot_sensitivity(single, tmp_path / "feat.png", space="feat", title="feat only")
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_plot_sensitivity_errors(tmp_path):
    with pytest.raises(UserError):
        plot_sensitivity({}, tmp_path / "x.png")
    with pytest.raises(UserError, match="missing"):
        plot_sensitivity({"run": {"degrees": DEGREES, "feat": [1, 1, 1]}}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
