"""The quick checks of the chapters: feedback only after an attempt, right and wrong told apart, bad arguments named."""

import ipywidgets
import pytest

from nclab import widgets
from nclab._checks import ArgumentTypeError

OPTIONS = ["infinite, as under cross-entropy", "finite: log(K/δ − K + 1)", "zero"]
EXPLANATION = "The LS loss has its minimum where the softmax equals the smoothed target."


def parts(box):
    question, entry, buttons, feedback = box.children
    check, reveal = buttons.children
    return question, entry, check, reveal, feedback


def test_nothing_of_the_answer_shows_before_an_attempt():
    box = widgets.quick_check("Under LS, the optimal margin is", OPTIONS, 1, EXPLANATION, static=False)
    assert isinstance(box, ipywidgets.VBox)
    question, entry, check, reveal, feedback = parts(box)
    assert entry.value is None and feedback.value == "" and reveal.disabled
    reveal.click()                      # disabled: clicking does nothing
    assert feedback.value == ""
    check.click()                       # nothing chosen: asked to choose, not told the answer
    assert "Choose an answer first" in feedback.value and reveal.disabled
    assert EXPLANATION not in feedback.value
    shown = question.value + "".join(entry.options)
    assert "answer" not in question.value.lower() and EXPLANATION not in shown


def test_a_wrong_choice_is_told_not_yet_and_then_the_answer_may_be_shown():
    _, entry, check, reveal, feedback = parts(
        widgets.quick_check("Under LS, the optimal margin is", OPTIONS, 1, EXPLANATION, static=False))
    entry.value = OPTIONS[0]
    check.click()
    assert "Not yet" in feedback.value and EXPLANATION not in feedback.value and OPTIONS[1] not in feedback.value
    assert not reveal.disabled
    reveal.click()
    assert "The answer: finite: log(K/δ − K + 1)." in feedback.value and EXPLANATION in feedback.value


def test_the_right_choice_is_told_right_with_the_explanation():
    _, entry, check, _, feedback = parts(
        widgets.quick_check("Under LS, the optimal margin is", OPTIONS, 1, EXPLANATION, static=False))
    entry.value = OPTIONS[1]
    check.click()
    assert "✔ Right" in feedback.value and EXPLANATION in feedback.value
    entry.value = OPTIONS[2]
    check.click()
    assert "Not yet" in feedback.value


@pytest.mark.parametrize("typed, verdict", [("-0.25", "Right"), ("-1/4", "Right"), (" -0.2501 ", "Right"),
                                            ("-0.26", "Not yet"), ("0.25", "Not yet")])
def test_a_number_is_right_within_the_tolerance(typed, verdict):
    _, entry, check, _, feedback = parts(
        widgets.quick_check("K = 5: the cosine?", None, -0.25, "−1/(K−1).", static=False))
    assert isinstance(entry, ipywidgets.Text)
    entry.value = typed
    check.click()
    assert verdict in feedback.value


def test_text_that_is_no_number_is_not_an_attempt():
    _, entry, check, reveal, feedback = parts(
        widgets.quick_check("K = 5: the cosine?", None, -0.25, "−1/(K−1).", static=False))
    for typed in ["", "a quarter", "1/0", "inf"]:
        entry.value = typed
        check.click()
        assert "Right" not in feedback.value and "Not yet" not in feedback.value and reveal.disabled
    assert "not a number" in feedback.value


def test_an_explicit_tolerance():
    _, entry, check, _, feedback = parts(
        widgets.quick_check("How many?", None, 9, "Nine.", tolerance=0.5, static=False))
    entry.value = "9.4"
    check.click()
    assert "Right" in feedback.value
    entry.value = "9.6"
    check.click()
    assert "Not yet" in feedback.value


def test_the_static_view_shows_the_question_and_options_but_not_the_answer():
    html = widgets.quick_check("Under LS, the optimal margin is", OPTIONS, 1, EXPLANATION, static=True).data
    assert "Under LS, the optimal margin is" in html
    assert all(option in html for option in OPTIONS)
    assert EXPLANATION not in html and "<script" not in html
    number = widgets.quick_check("K = 5: the cosine?", None, -0.25, "It is −1/(K−1).", static=True).data
    assert "0.25" not in number and "−1/(K−1)" not in number and "a number" in number


def test_the_static_view_escapes_html():
    html = widgets.quick_check("Is 1 < 2 & 3 > 2?", ["yes", "no"], 0, "Both hold.", static=True).data
    assert "1 &lt; 2 &amp; 3 &gt; 2" in html


@pytest.mark.parametrize("kwargs, message", [
    (dict(question=""), r"^question must be a non-empty string, got str ''$"),
    (dict(question=3), r"^question must be a non-empty string, got int 3$"),
    (dict(options="abc"), r"^options must be a list of strings or None \(a number\), got str 'abc'$"),
    (dict(options=["only one"]), r"^options must hold at least two different strings, got \['only one'\]$"),
    (dict(options=["a", "a"]), r"^options must hold at least two different strings"),
    (dict(options=["a", 2]), r"^options\[1\] must be a non-empty string, got int 2$"),
    (dict(answer=3), r"^answer must be the index of the right option, from 0 to 2, got 3$"),
    (dict(answer=-1), r"^answer must be the index of the right option, from 0 to 2, got -1$"),
    (dict(answer="finite"), r"^answer must be the index of the right option, an integer from 0 to 2, got str"),
    (dict(answer=True), r"^answer must be the index of the right option, an integer from 0 to 2, got bool"),
    (dict(options=None, answer="0.25"), r"^answer must be a finite number \(the options are None\), got str"),
    (dict(options=None, answer=float("nan")), r"^answer must be a finite number \(the options are None\), got nan$"),
    (dict(explanation="  "), r"^explanation must be a non-empty string, got str '  '$"),
    (dict(tolerance=0.1), r"^tolerance applies only to a number answer \(options=None\)"),
    (dict(options=None, answer=1.0, tolerance=0.0), r"^tolerance must be a finite number in \(0, inf\), got 0.0$"),
])
def test_bad_arguments_are_rejected_with_one_line_naming_the_argument(kwargs, message):
    arguments = dict(question="Under LS, the optimal margin is", options=OPTIONS, answer=1,
                     explanation=EXPLANATION, static=False)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message) as error:
        widgets.quick_check(**arguments)
    assert "\n" not in str(error.value)


def test_a_wrong_type_is_a_type_error_too():
    with pytest.raises(TypeError, match="^question must"):
        widgets.quick_check(None, OPTIONS, 1, EXPLANATION)
    assert issubclass(ArgumentTypeError, TypeError)
