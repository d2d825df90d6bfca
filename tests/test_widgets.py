"""The delta explorer: a live ipywidget in a kernel, a kernel-free player for the static site."""

import ipywidgets
import pytest
import traitlets

import nclab
from nclab import widgets


def _draw(calls):
    def draw(delta, fig=None):
        calls.append(delta)
        fig.add_subplot().plot([0, 1], [0, delta])
        return fig
    return draw


def test_static_player_has_one_frame_per_delta_and_a_slider():
    calls = []
    html = widgets.delta_explorer(_draw(calls), deltas=[0.0, 0.1, 0.2], static=True)
    assert sorted(set(calls)) == [0.0, 0.1, 0.2]
    assert 'type="range"' in html.data and html.data.count("data:image/png;base64") == 3
    assert "http" not in html.data.split("<script")[1].split(">")[0]


def test_live_widget_redraws_when_the_slider_moves():
    calls = []
    w = widgets.delta_explorer(_draw(calls), deltas=[0.0, 0.05, 0.1], value=0.05, static=False)
    assert isinstance(w, ipywidgets.interactive)
    slider = w.children[0]
    assert slider.value == pytest.approx(0.05) and list(slider.options) == [("0", 0.0), ("0.05", 0.05), ("0.1", 0.1)]
    slider.value = 0.1
    assert calls[-1] == pytest.approx(0.1)
    with pytest.raises(traitlets.TraitError, match="Invalid selection: value not found"):
        slider.value = 0.07  # only grid values can be chosen
    assert slider.value == pytest.approx(0.1) and calls[-1] == pytest.approx(0.1)


def test_environment_switch(monkeypatch):
    monkeypatch.setenv("NCLAB_STATIC", "1")
    assert widgets.is_static()
    monkeypatch.setenv("NCLAB_STATIC", "0")
    assert not widgets.is_static()


def test_bad_input():
    with pytest.raises(ValueError, match="draw"):
        widgets.delta_explorer("not a function")
    with pytest.raises(ValueError, match="increasing"):
        widgets.delta_explorer(_draw([]), deltas=[0.2, 0.1])
    with pytest.raises(ValueError, match="deltas"):
        widgets.delta_explorer(_draw([]), deltas=[0.0, 1.2])


def test_a_figure_of_nclab_plots_is_an_explorer_and_draws_into_subfigures():
    calls = []

    def composite(delta, fig):
        calls.append(type(fig).__name__)
        return nclab.plots.theorem1_at_delta(delta, num_classes=3, per_class=4, lambda_W=1e-2, lambda_H=1e-2,
                                             fig=fig)

    html = widgets.delta_explorer(composite, deltas=[0.0, 0.3], static=True, figsize=(9.5, 7))
    assert html.data.count("data:image/png;base64") == 2
    # the player hands over one pyplot figure; the drawing splits it into SubFigures
    assert set(calls) == {"Figure"}
    fig = nclab.plots.theorem1_at_delta(0.3, num_classes=3, per_class=4, lambda_W=1e-2, lambda_H=1e-2)
    assert [type(sub).__name__ for sub in fig.subfigs] == ["SubFigure", "SubFigure"]
